"""Reading a devbox's log: setup commands, entrypoint output, executions, notes from the server."""

from __future__ import annotations

from app.domain.devbox import LogEntry
from app.services.devboxes import DevboxService
from app.store.logs import LogStore


class LogService:
    def __init__(self, devboxes: DevboxService, store: LogStore) -> None:
        self._devboxes = devboxes
        self._store = store

    async def list_entries(
        self, owner: str, devbox_id: str, execution_id: str | None, shell_name: str | None
    ) -> list[LogEntry]:
        await self._devboxes.get(owner, devbox_id)  # 404 for unknown or foreign devboxes
        return await self._store.list_entries(devbox_id, execution_id or None, shell_name or None)
