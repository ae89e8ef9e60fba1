"""A disk snapshot: a devbox's filesystem saved as an image that new devboxes start from."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.domain.statuses import SnapshotStatus


@dataclass
class DiskSnapshot:
    id: str
    owner: str
    source_devbox_id: str
    status: SnapshotStatus
    create_time_ms: int
    name: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    commit_message: str | None = None
    source_blueprint_id: str | None = None
    image: str | None = None
    size_bytes: int | None = None
    error_message: str | None = None
    public: bool = False
