"""Devbox log entries (setup commands, entrypoint, exec, ...)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from sqlalchemy import insert, select

from app.domain.devbox import LogEntry
from app.store.database import Database
from app.store.tables import devbox_logs


class LogStore:
    def __init__(self, db: Database, on_append: Callable[[str], None] | None = None) -> None:
        self._db = db
        self._on_append = on_append  # told the devbox id after each append (live tails wait on it)

    async def append(self, *entries: LogEntry) -> None:
        if not entries:
            return
        rows = [asdict(e) for e in entries]
        await self._db.write(lambda conn: conn.execute(insert(devbox_logs), rows))
        for devbox_id in {e.devbox_id for e in entries}:
            self.announce(devbox_id)

    def announce(self, devbox_id: str) -> None:
        """Tell live tails that entries were written, also by another store in its own transaction."""
        if self._on_append is not None:
            self._on_append(devbox_id)

    async def list_entries(
        self, devbox_id: str, execution_id: str | None = None, shell_name: str | None = None
    ) -> list[LogEntry]:
        return [entry for _, entry in await self.list_after(devbox_id, 0, execution_id, shell_name)]

    async def list_after(
        self, devbox_id: str, after_seq: int, execution_id: str | None = None, shell_name: str | None = None
    ) -> list[tuple[int, LogEntry]]:
        """(sequence number, entry) pairs newer than `after_seq`, oldest first."""
        query = select(devbox_logs).where(devbox_logs.c.devbox_id == devbox_id, devbox_logs.c.seq > after_seq)
        if execution_id:
            query = query.where(devbox_logs.c.cmd_id == execution_id)
        if shell_name:
            query = query.where(devbox_logs.c.shell_name == shell_name)
        rows = await self._db.read(lambda conn: conn.execute(query.order_by(devbox_logs.c.seq)).all())
        return [(r.seq, LogEntry(**{k: v for k, v in r._mapping.items() if k != "seq"})) for r in rows]
