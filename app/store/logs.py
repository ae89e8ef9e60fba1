"""Devbox log entries (setup commands, entrypoint, exec, ...)."""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.devbox import LogEntry
from app.store.tables import devbox_logs


class LogStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def append(self, *entries: LogEntry) -> None:
        if not entries:
            return
        async with self._engine.begin() as conn:
            await conn.execute(insert(devbox_logs), [asdict(e) for e in entries])

    async def list_entries(
        self, devbox_id: str, execution_id: str | None = None, shell_name: str | None = None
    ) -> list[LogEntry]:
        query = select(devbox_logs).where(devbox_logs.c.devbox_id == devbox_id)
        if execution_id:
            query = query.where(devbox_logs.c.cmd_id == execution_id)
        if shell_name:
            query = query.where(devbox_logs.c.shell_name == shell_name)
        async with self._engine.connect() as conn:
            rows = await conn.execute(query.order_by(devbox_logs.c.seq))
            return [LogEntry(**{k: v for k, v in r._mapping.items() if k != "seq"}) for r in rows]
