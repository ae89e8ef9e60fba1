"""Disk snapshot rows."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import ColumnElement, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.snapshot import DiskSnapshot
from app.domain.statuses import SnapshotStatus
from app.store.tables import disk_snapshots

T = disk_snapshots


def _to_snapshot(row: Row[Any]) -> DiskSnapshot:
    values = dict(row._mapping)
    values["status"] = SnapshotStatus(values["status"])
    values["metadata"] = values["metadata"] or {}
    return DiskSnapshot(**values)


class SnapshotStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def insert(self, snapshot: DiskSnapshot) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(insert(T).values(**asdict(snapshot)))

    async def get(self, snapshot_id: str) -> DiskSnapshot | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(T).where(T.c.id == snapshot_id))).first()
        return _to_snapshot(row) if row else None

    async def visible(self, owner: str, public: bool) -> list[DiskSnapshot]:
        """The owner's (or all public) snapshots that were not deleted, newest first. Metadata filters
        run in the service: JSON queries differ between SQLite and PostgreSQL, and the lists are small."""
        condition: ColumnElement[bool] = T.c.public.is_(True) if public else T.c.owner == owner
        query = select(T).where(condition, T.c.status != SnapshotStatus.DELETED.value).order_by(T.c.id.desc())
        async with self._engine.connect() as conn:
            return [_to_snapshot(r) for r in await conn.execute(query)]

    async def update_fields(self, snapshot_id: str, only_if: SnapshotStatus | None = None, **fields: Any) -> bool:
        """Update; with `only_if`, only while the snapshot has that status. True if a row changed."""
        query = update(T).where(T.c.id == snapshot_id)
        if only_if is not None:
            query = query.where(T.c.status == only_if.value)
        async with self._engine.begin() as conn:
            return bool((await conn.execute(query.values(**fields))).rowcount)

    async def in_progress_for(self, devbox_id: str) -> list[DiskSnapshot]:
        query = select(T).where(T.c.source_devbox_id == devbox_id, T.c.status == SnapshotStatus.IN_PROGRESS.value)
        async with self._engine.connect() as conn:
            return [_to_snapshot(r) for r in await conn.execute(query)]

    async def fail_in_progress(self, devbox_id: str | None, message: str) -> int:
        """End snapshots that can no longer complete (server restart, forced shutdown); returns how many."""
        query = update(T).where(T.c.status == SnapshotStatus.IN_PROGRESS.value)
        if devbox_id is not None:
            query = query.where(T.c.source_devbox_id == devbox_id)
        async with self._engine.begin() as conn:
            result = await conn.execute(query.values(status=SnapshotStatus.ERROR.value, error_message=message))
            return int(result.rowcount or 0)

    async def deleted_with_images(self) -> list[DiskSnapshot]:
        query = select(T).where(T.c.status == SnapshotStatus.DELETED.value, T.c.image.is_not(None))
        async with self._engine.connect() as conn:
            return [_to_snapshot(r) for r in await conn.execute(query)]

    async def set_public(self, snapshot_id: str, public: bool) -> bool:
        query = update(T).where(T.c.id == snapshot_id)
        async with self._engine.begin() as conn:
            return bool((await conn.execute(query.values(public=public))).rowcount)
