"""Disk snapshot rows."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import ColumnElement, insert, select, update
from sqlalchemy.engine import Row

from app.domain.snapshot import DiskSnapshot
from app.domain.statuses import SnapshotStatus
from app.store.database import Database
from app.store.tables import disk_snapshots

T = disk_snapshots


def _to_snapshot(row: Row[Any]) -> DiskSnapshot:
    values = dict(row._mapping)
    values["status"] = SnapshotStatus(values["status"])
    values["metadata"] = values["metadata"] or {}
    return DiskSnapshot(**values)


class SnapshotStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, snapshot: DiskSnapshot) -> None:
        query = insert(T).values(**asdict(snapshot))
        await self._db.write(lambda conn: conn.execute(query))

    async def get(self, snapshot_id: str) -> DiskSnapshot | None:
        row = await self._db.read(lambda conn: conn.execute(select(T).where(T.c.id == snapshot_id)).first())
        return _to_snapshot(row) if row else None

    async def visible(self, owner: str, public: bool) -> list[DiskSnapshot]:
        """The owner's (or all public) snapshots that were not deleted, newest first. Metadata filters
        run in the service: JSON queries differ between SQLite and PostgreSQL, and the lists are small."""
        condition: ColumnElement[bool] = T.c.public.is_(True) if public else T.c.owner == owner
        query = select(T).where(condition, T.c.status != SnapshotStatus.DELETED.value).order_by(T.c.id.desc())
        return [_to_snapshot(r) for r in await self._db.read(lambda conn: conn.execute(query).all())]

    async def update_fields(self, snapshot_id: str, only_if: SnapshotStatus | None = None, **fields: Any) -> bool:
        """Update; with `only_if`, only while the snapshot has that status. True if a row changed."""
        query = update(T).where(T.c.id == snapshot_id)
        if only_if is not None:
            query = query.where(T.c.status == only_if.value)
        query = query.values(**fields)
        return await self._db.write(lambda conn: bool(conn.execute(query).rowcount))

    async def in_progress_for(self, devbox_id: str) -> list[DiskSnapshot]:
        query = select(T).where(T.c.source_devbox_id == devbox_id, T.c.status == SnapshotStatus.IN_PROGRESS.value)
        return [_to_snapshot(r) for r in await self._db.read(lambda conn: conn.execute(query).all())]

    async def fail_in_progress(self, devbox_id: str | None, message: str) -> int:
        """End snapshots that can no longer complete (server restart, forced shutdown); returns how many."""
        query = update(T).where(T.c.status == SnapshotStatus.IN_PROGRESS.value)
        if devbox_id is not None:
            query = query.where(T.c.source_devbox_id == devbox_id)
        query = query.values(status=SnapshotStatus.ERROR.value, error_message=message)
        return await self._db.write(lambda conn: int(conn.execute(query).rowcount or 0))

    async def deleted_with_images(self) -> list[DiskSnapshot]:
        query = select(T).where(T.c.status == SnapshotStatus.DELETED.value, T.c.image.is_not(None))
        return [_to_snapshot(r) for r in await self._db.read(lambda conn: conn.execute(query).all())]

    async def set_public(self, snapshot_id: str, public: bool) -> bool:
        query = update(T).where(T.c.id == snapshot_id)
        query = query.values(public=public)
        return await self._db.write(lambda conn: bool(conn.execute(query).rowcount))
