"""Devbox lifecycle, listing and metadata routes: parse, call one service method, shape the view."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query
from sse_starlette import EventSourceResponse

from app.api.deps import Svc, Tenant
from app.api.schemas.common import EmptyRecord, MetadataKeysView, MetadataValuesView
from app.api.schemas.devboxes import (
    DevboxCreateParameters,
    DevboxListView,
    DevboxResourceUsageView,
    DevboxUpdateParameters,
    DevboxView,
    DevboxViewStatus,
    DevboxWaitForStatusRequest,
)
from app.api.views import devbox_view, usage_view
from app.domain.errors import InvalidRequest
from app.domain.statuses import DevboxStatus
from app.services.devboxes import CreateDevbox
from app.services.tunnels import new_tunnel

router = APIRouter(prefix="/v1/devboxes", tags=["Devbox-Lifecycle"])

_HANDLED_FIELDS = {
    "name",
    "metadata",
    "environment_variables",
    "entrypoint",
    "launch_parameters",
    "file_mounts",
    "mounts",
    "code_mounts",
    "secrets",
    "snapshot_id",
    "tunnel",
}
_LAUNCH_FIELDS_WITHOUT_SUPPORT = ("required_services", "network_policy_id")
CREATE_AND_AWAIT_SECONDS = 25.0


def _set(value: Any) -> bool:
    return value is not None and value != {} and value != []


def _create_request(body: DevboxCreateParameters | None) -> CreateDevbox:
    body = body or DevboxCreateParameters()
    launch = body.launch_parameters
    other = [name for name in type(body).model_fields if name not in _HANDLED_FIELDS and _set(getattr(body, name))]
    if launch is not None:
        other += [f"launch_parameters.{n}" for n in _LAUNCH_FIELDS_WITHOUT_SUPPORT if _set(getattr(launch, n))]
        if launch.lifecycle is not None and _set(launch.lifecycle.resume_triggers):
            other.append("launch_parameters.lifecycle.resume_triggers")
    return CreateDevbox(
        name=body.name,
        metadata=body.metadata or {},
        environment=body.environment_variables or {},
        entrypoint=body.entrypoint,
        launch_parameters=launch.model_dump(exclude_none=True) if launch else {},
        file_mounts=body.file_mounts or {},
        mounts=body.mounts or [],
        code_mounts=body.code_mounts or [],
        secrets=body.secrets or {},
        snapshot_id=body.snapshot_id,
        tunnel=new_tunnel(body.tunnel.auth_mode, body.tunnel.http_keep_alive, body.tunnel.wake_on_http)
        if body.tunnel
        else None,
        other_fields=other,
    )


@router.post("", response_model=DevboxView, tags=["Devbox"])
async def create_devbox(svc: Svc, owner: Tenant, body: DevboxCreateParameters | None = None) -> DevboxView:
    return devbox_view(await svc.devboxes.create(owner, _create_request(body)))


@router.post("/create_and_await_running", response_model=DevboxView, tags=["Devbox"])
async def create_and_await_running(svc: Svc, owner: Tenant, body: DevboxCreateParameters | None = None) -> DevboxView:
    """Create, then hold until running (or ended); the client re-polls wait_for_status if we return early."""
    devbox = await svc.devboxes.create(owner, _create_request(body))
    devbox = await svc.devboxes.await_settled(owner, devbox.id, CREATE_AND_AWAIT_SECONDS)
    return devbox_view(devbox)


@router.get("", response_model=DevboxListView, tags=["Devbox"])
async def list_devboxes(
    svc: Svc,
    owner: Tenant,
    status: DevboxViewStatus | None = None,
    limit: int = 20,
    starting_after: str | None = None,
    include_total_count: bool = True,
) -> DevboxListView:
    devboxes, has_more, total = await svc.devboxes.list_devboxes(
        owner, DevboxStatus(status) if status else None, limit, starting_after or None, include_total_count
    )
    return DevboxListView(devboxes=[devbox_view(d) for d in devboxes], has_more=has_more, total_count=total)


@router.get("/evictions/watch", tags=["Devbox"])
async def watch_evictions(owner: Tenant) -> EventSourceResponse:
    """SSE of evictions. This server never evicts a devbox to make room, so the stream only carries
    keep-alive comments until the client leaves; it exists because the clients open it."""

    async def nothing_to_report() -> AsyncIterator[dict[str, str]]:
        await asyncio.Event().wait()
        yield {}  # never reached

    return EventSourceResponse(nothing_to_report(), ping=10)


@router.get("/metadata/keys", response_model=MetadataKeysView, tags=["Devbox"])
async def devbox_metadata_keys(svc: Svc, owner: Tenant) -> MetadataKeysView:
    return MetadataKeysView(keys=await svc.devboxes.metadata_keys(owner))


@router.get("/metadata/keys/{key}/values", response_model=MetadataValuesView, tags=["Devbox"])
async def devbox_metadata_values(svc: Svc, owner: Tenant, key: str) -> MetadataValuesView:
    return MetadataValuesView(key=key, values=await svc.devboxes.metadata_values(owner, key))


@router.get("/{id}", response_model=DevboxView)
async def get_devbox(svc: Svc, owner: Tenant, id: str) -> DevboxView:
    return devbox_view(await svc.devboxes.get(owner, id))


@router.post("/{id}", response_model=DevboxView)
async def update_devbox(svc: Svc, owner: Tenant, id: str, body: DevboxUpdateParameters | None = None) -> DevboxView:
    body = body or DevboxUpdateParameters()
    return devbox_view(await svc.devboxes.update(owner, id, body.name, body.metadata or {}))


@router.post("/{id}/wait_for_status", response_model=DevboxView)
async def wait_for_devbox_status(svc: Svc, owner: Tenant, id: str, body: DevboxWaitForStatusRequest) -> DevboxView:
    return devbox_view(await svc.devboxes.wait_for_status(owner, id, body.statuses, body.timeout_seconds))


@router.post("/{id}/suspend", response_model=DevboxView)
async def suspend_devbox(svc: Svc, owner: Tenant, id: str) -> DevboxView:
    return devbox_view(await svc.devboxes.suspend(owner, id))


@router.post("/{id}/resume", response_model=DevboxView)
async def resume_devbox(svc: Svc, owner: Tenant, id: str) -> DevboxView:
    return devbox_view(await svc.devboxes.resume(owner, id))


@router.post("/{id}/shutdown", response_model=DevboxView)
async def shutdown_devbox(svc: Svc, owner: Tenant, id: str, force: str | None = Query(None)) -> DevboxView:
    if force is not None and force.lower() not in ("true", "false"):
        raise InvalidRequest(f"force must be 'true' or 'false', got {force!r}")
    return devbox_view(await svc.devboxes.shutdown(owner, id, force=(force or "").lower() == "true"))


@router.post("/{id}/keep_alive", response_model=EmptyRecord)
async def keep_alive_devbox(svc: Svc, owner: Tenant, id: str) -> EmptyRecord:
    await svc.devboxes.keep_alive(owner, id)
    return EmptyRecord()


@router.get("/{id}/usage", response_model=DevboxResourceUsageView, tags=["Devbox-ObservabilityTools"])
async def devbox_usage(svc: Svc, owner: Tenant, id: str) -> DevboxResourceUsageView:
    devbox, usage = await svc.devboxes.usage(owner, id)
    return usage_view(devbox, usage)
