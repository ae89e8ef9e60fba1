"""Disk snapshot routes (Devbox-PersistenceTools). Registered before the `/{id}` devbox routes, which
would otherwise take `/v1/devboxes/disk_snapshots` for a devbox id."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request

from app.api.deps import Svc, Tenant
from app.api.schemas.common import EmptyRecord, MetadataKeysView, MetadataValuesView
from app.api.schemas.snapshots import (
    DevboxDiskSnapshotListView,
    DevboxDiskSnapshotView,
    DevboxSnapshotAsyncStatusView,
    DevboxSnapshotRequest,
)
from app.api.views import snapshot_status_view, snapshot_view
from app.domain.errors import InvalidRequest
from app.services.snapshots import SnapshotFields, SnapshotQuery

router = APIRouter(prefix="/v1/devboxes", tags=["Devbox-PersistenceTools"])
_METADATA_PARAM = re.compile(r"^metadata\[(?P<key>[^\]]+)\](?P<in>\[in\])?$")


def _fields(body: DevboxSnapshotRequest | None) -> SnapshotFields:
    body = body or DevboxSnapshotRequest()
    return SnapshotFields(name=body.name, metadata=body.metadata or {}, commit_message=body.commit_message)


def _bool(value: str | None, name: str, default: bool) -> bool:
    if value is None or value == "":
        return default
    if value.lower() not in ("true", "false"):
        raise InvalidRequest(f"{name} must be true or false, got {value!r}")
    return value.lower() == "true"


def _query(request: Request) -> SnapshotQuery:
    """The list filters, `metadata[<key>]=v` and `metadata[<key>][in]=a,b` for any key included."""
    params = request.query_params
    metadata: dict[str, list[str]] = {}
    for name, value in params.multi_items():
        if match := _METADATA_PARAM.match(name):
            values = value.split(",") if match["in"] else [value]
            key = match["key"]
            metadata[key] = [v for v in metadata[key] if v in values] if key in metadata else values
        elif name.startswith("metadata"):
            raise InvalidRequest(f"unknown filter {name!r}: use metadata[<key>]=value or metadata[<key>][in]=a,b")
    try:
        limit = int(params.get("limit") or 20)
    except ValueError:
        raise InvalidRequest(f"limit must be an integer, got {params.get('limit')!r}") from None
    return SnapshotQuery(
        devbox_id=params.get("devbox_id") or None,
        source_blueprint_id=params.get("source_blueprint_id") or None,
        metadata=metadata,
        limit=limit,
        starting_after=params.get("starting_after") or None,
        include_total_count=_bool(params.get("include_total_count"), "include_total_count", default=True),
    )


async def _list(svc: Svc, owner: str, request: Request, public: bool) -> DevboxDiskSnapshotListView:
    snapshots, has_more, total = await svc.snapshots.list_snapshots(owner, _query(request), public)
    return DevboxDiskSnapshotListView(
        snapshots=[snapshot_view(s) for s in snapshots], has_more=has_more, total_count=total
    )


@router.get("/disk_snapshots", response_model=DevboxDiskSnapshotListView)
async def list_disk_snapshots(svc: Svc, owner: Tenant, request: Request) -> DevboxDiskSnapshotListView:
    return await _list(svc, owner, request, public=False)


@router.get("/disk_snapshots/list_public", response_model=DevboxDiskSnapshotListView)
async def list_public_snapshots(svc: Svc, owner: Tenant, request: Request) -> DevboxDiskSnapshotListView:
    return await _list(svc, owner, request, public=True)


@router.get("/disk_snapshots/metadata/keys", response_model=MetadataKeysView)
async def snapshot_metadata_keys(svc: Svc, owner: Tenant) -> MetadataKeysView:
    return MetadataKeysView(keys=await svc.snapshots.metadata_keys(owner, public=False))


@router.get("/disk_snapshots/metadata/keys/{key}/values", response_model=MetadataValuesView)
async def snapshot_metadata_values(svc: Svc, owner: Tenant, key: str) -> MetadataValuesView:
    return MetadataValuesView(key=key, values=await svc.snapshots.metadata_values(owner, key, public=False))


@router.get("/disk_snapshots/public/metadata/keys", response_model=MetadataKeysView)
async def public_snapshot_metadata_keys(svc: Svc, owner: Tenant) -> MetadataKeysView:
    return MetadataKeysView(keys=await svc.snapshots.metadata_keys(owner, public=True))


@router.get("/disk_snapshots/public/metadata/keys/{key}/values", response_model=MetadataValuesView)
async def public_snapshot_metadata_values(svc: Svc, owner: Tenant, key: str) -> MetadataValuesView:
    return MetadataValuesView(key=key, values=await svc.snapshots.metadata_values(owner, key, public=True))


@router.post("/disk_snapshots/{id}", response_model=DevboxDiskSnapshotView)
async def update_disk_snapshot(
    svc: Svc, owner: Tenant, id: str, body: DevboxSnapshotRequest | None = None
) -> DevboxDiskSnapshotView:
    return snapshot_view(await svc.snapshots.update(owner, id, _fields(body)))


@router.post("/disk_snapshots/{id}/delete", response_model=EmptyRecord)
async def delete_disk_snapshot(svc: Svc, owner: Tenant, id: str) -> EmptyRecord:
    await svc.snapshots.delete(owner, id)
    return EmptyRecord()


@router.get("/disk_snapshots/{id}/status", response_model=DevboxSnapshotAsyncStatusView)
async def snapshot_status(svc: Svc, owner: Tenant, id: str) -> DevboxSnapshotAsyncStatusView:
    return snapshot_status_view(await svc.snapshots.status(owner, id))


@router.post("/{id}/snapshot_disk", response_model=DevboxDiskSnapshotView)
async def snapshot_disk(
    svc: Svc, owner: Tenant, id: str, body: DevboxSnapshotRequest | None = None
) -> DevboxDiskSnapshotView:
    return snapshot_view(await svc.snapshots.snapshot(owner, id, _fields(body), wait=True))


@router.post("/{id}/snapshot_disk_async", response_model=DevboxDiskSnapshotView)
async def snapshot_disk_async(
    svc: Svc, owner: Tenant, id: str, body: DevboxSnapshotRequest | None = None
) -> DevboxDiskSnapshotView:
    return snapshot_view(await svc.snapshots.snapshot(owner, id, _fields(body), wait=False))
