"""Disk snapshot request and response models, named as the spec's schemas."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from app.api.schemas.common import StrictRequest


class DevboxSnapshotRequest(StrictRequest):
    """name (256) and commit_message (1000) are bounded by SnapshotFields.check in the service (400)."""

    name: str | None = None
    # Any JSON here: the service answers 400 (not 422) naming a value that is not a string.
    metadata: dict[str, Any] | None = None
    commit_message: str | None = None


class DevboxDiskSnapshotView(BaseModel):
    id: str
    name: str | None = None
    create_time_ms: int
    metadata: dict[str, str]
    source_devbox_id: str
    source_blueprint_id: str | None = None
    commit_message: str | None = None
    size_bytes: int | None = None


class DevboxDiskSnapshotListView(BaseModel):
    snapshots: list[DevboxDiskSnapshotView]
    has_more: bool
    total_count: int | None = None


class DevboxSnapshotAsyncStatusView(BaseModel):
    status: Literal["in_progress", "error", "complete", "deleted"]
    snapshot: DevboxDiskSnapshotView | None = None
    error_message: str | None = None
