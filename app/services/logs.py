"""Reading a devbox's log: setup commands, entrypoint output, executions, notes from the server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import suppress

from app.domain.devbox import LogEntry
from app.services.devboxes import DevboxService
from app.services.status_watch import StatusWatch
from app.store.logs import LogStore

# A safety net only: appends wake the tail at once.
TAIL_POLL_SECONDS = 5.0


class LogService:
    def __init__(self, devboxes: DevboxService, store: LogStore, watch: StatusWatch) -> None:
        self._devboxes = devboxes
        self._store = store
        self._watch = watch

    async def list_entries(
        self, owner: str, devbox_id: str, execution_id: str | None, shell_name: str | None
    ) -> list[LogEntry]:
        await self._devboxes.get(owner, devbox_id)  # 404 for unknown or foreign devboxes
        return await self._store.list_entries(devbox_id, execution_id or None, shell_name or None)

    async def tail(
        self, owner: str, devbox_id: str, execution_id: str | None, shell_name: str | None
    ) -> AsyncIterator[LogEntry]:
        """Past entries, then new ones as they are written, until the caller stops reading. Checks the
        devbox before the first entry, so an unknown id answers 404 rather than an empty stream."""
        await self._devboxes.get(owner, devbox_id)
        return self._follow(devbox_id, execution_id or None, shell_name or None)

    async def _follow(
        self, devbox_id: str, execution_id: str | None, shell_name: str | None
    ) -> AsyncIterator[LogEntry]:
        seen = 0
        while True:
            with self._watch.subscribe(f"logs:{devbox_id}") as changed:
                changed.clear()
                for seq, entry in await self._store.list_after(devbox_id, seen, execution_id, shell_name):
                    seen = seq
                    yield entry
                with suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout=TAIL_POLL_SECONDS)
