"""What `devboxd` does for operators outside the API: across tenants, straight on the store and the
engine, from another process than the server. Status changes are compare-and-set in the store, so they
are safe beside a running server, which learns of them from the engine's events (on_container_stopped)."""

from __future__ import annotations

import asyncio
import contextlib

from app.domain.devbox import Devbox, LogEntry, container_name, now_ms
from app.domain.errors import BackendError, InvalidState, NotFound
from app.domain.statuses import TERMINAL, DevboxStatus, LogSource, ShutdownReason
from app.drivers.base import SandboxDriver
from app.services.private_dirs import PrivateDirs
from app.store.devboxes import DevboxStore
from app.store.logs import LogStore


class OperatorActions:
    def __init__(self, store: DevboxStore, logs: LogStore, driver: SandboxDriver, private_dirs: PrivateDirs) -> None:
        self._store = store
        self._logs = logs
        self._driver = driver
        self._private_dirs = private_dirs

    async def shutdown(self, devbox_id: str) -> Devbox:
        devbox = await self._store.get(devbox_id)
        if devbox is None:
            raise NotFound(f"devbox {devbox_id} not found")
        if devbox.status in TERMINAL:
            raise InvalidState(f"devbox {devbox_id} is already {devbox.status.value}")
        live = [s for s in DevboxStatus if s not in TERMINAL]
        at = now_ms()
        moved = await self._store.transition(
            devbox_id,
            DevboxStatus.SHUTDOWN,
            live,
            at,
            end_time_ms=at,
            shutdown_reason=ShutdownReason.API_SHUTDOWN.value,
        )
        if moved is None:
            raise InvalidState(f"devbox {devbox_id} changed status meanwhile; look again")
        await self._logs.append(
            LogEntry(
                devbox_id=devbox_id,
                timestamp_ms=at,
                source=LogSource.SETUP_COMMANDS.value,
                level="info",
                message="shut down by an operator (devboxd devboxes shutdown)",
            )
        )
        with contextlib.suppress(BackendError):  # the engine may be away: the server removes it later
            await self._driver.remove(container_name(devbox_id))
        await asyncio.to_thread(self._private_dirs.remove, devbox_id)
        return moved
