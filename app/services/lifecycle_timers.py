"""Ends devboxes by themselves: keep-alive timeouts and idle policies (app/domain/timers.py).

One loop checks the running devboxes every tick against deadlines computed from stored times, so a
server restart changes nothing, and a deadline fires within a tick of passing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from app.domain.devbox import now_ms
from app.domain.errors import BackendError, Conflict, DomainError
from app.domain.statuses import DevboxStatus, ShutdownReason
from app.domain.timers import deadline
from app.services.devboxes import DevboxService
from app.store.devboxes import DevboxStore

log = logging.getLogger(__name__)


class LifecycleTimers:
    def __init__(
        self,
        devboxes: DevboxService,
        store: DevboxStore,
        busy_devboxes: Callable[[], set[str]],
        tick_seconds: float = 1.0,
    ) -> None:
        self._devboxes = devboxes
        self._store = store
        self._busy = busy_devboxes  # devboxes with commands running: active, whatever the clock says
        self._tick = tick_seconds

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # one bad round must not stop the timers for good
                log.exception("lifecycle timer check failed")
            await asyncio.sleep(self._tick)

    async def check(self) -> None:
        now = now_ms()
        busy = self._busy()
        for devbox in await self._store.list_not_terminal():
            if devbox.status != DevboxStatus.RUNNING:
                continue
            if devbox.id in busy:
                await self._devboxes.touch(devbox.id)
                continue
            due = deadline(devbox)
            if due.at_ms > now:
                continue
            log.info("devbox %s: %s", devbox.id, due.action)
            try:
                if due.action == "idle_suspend":
                    await self._devboxes.suspend(devbox.owner, devbox.id)
                else:
                    reason = ShutdownReason.IDLE if due.action == "idle_shutdown" else ShutdownReason.KEEP_ALIVE_TIMEOUT
                    await self._devboxes.shutdown(devbox.owner, devbox.id, reason)
            except Conflict:
                pass  # a snapshot is being taken: the devbox ends on a later tick, once it is done
            except (BackendError, DomainError) as exc:
                log.warning("devbox %s: %s failed: %s", devbox.id, due.action, exc)
