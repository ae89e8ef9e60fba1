"""Bringing the database and the container engine back into agreement: once at start (the server may
have died mid-operation) and continuously from the engine's event stream."""

from __future__ import annotations

import asyncio
import logging

from app.domain.devbox import container_name, now_ms
from app.domain.errors import BackendError
from app.domain.statuses import DevboxStatus, FailureReason
from app.drivers.base import SandboxDriver
from app.services.devboxes import DevboxService
from app.store.devboxes import DevboxStore
from app.store.executions import ExecutionStore

log = logging.getLogger(__name__)
S = DevboxStatus


class Reconciler:
    def __init__(
        self,
        devboxes: DevboxService,
        store: DevboxStore,
        executions: ExecutionStore,
        driver: SandboxDriver,
        instance: str,
        stop_timeout_seconds: int,
    ) -> None:
        self._devboxes = devboxes
        self._store = store
        self._executions = executions
        self._driver = driver
        self._instance = instance
        self._stop_timeout = stop_timeout_seconds

    async def reconcile(self) -> None:
        """Make every non-terminal devbox truthful and remove our labelled containers nobody owns."""
        # Outputs of executions that were running when the server died were lost with it.
        await self._executions.complete_unfinished(None, 137, "the server restarted while this command ran", now_ms())
        for devbox in await self._store.list_not_terminal():
            try:
                await self._reconcile_one(devbox.id, devbox.status, bool(devbox.entrypoint))
            except BackendError as exc:
                log.warning("reconciling %s failed: %s", devbox.id, exc)
        await self.remove_orphans()

    async def _reconcile_one(self, devbox_id: str, status: DevboxStatus, has_entrypoint: bool) -> None:
        name = container_name(devbox_id)
        state = await self._driver.inspect(name)
        fail = self._devboxes.fail
        if status in (S.PROVISIONING, S.INITIALIZING):
            # Which launch commands ran is unknown: a half-made devbox cannot be trusted.
            await fail(
                devbox_id, FailureReason.EXECUTION_FAILED, "the server restarted while the devbox was being set up"
            )
        elif state is None:
            await fail(
                devbox_id, FailureReason.EXECUTION_FAILED, "the devbox's container vanished while the server was down"
            )
        elif status == S.RUNNING and not state.running:
            await self._devboxes.on_container_stopped(devbox_id, removed=False)
        elif status == S.SUSPENDING:
            await self._driver.stop(name, self._stop_timeout)
            await self._devboxes.finish_suspend(devbox_id)
        elif status == S.SUSPENDED and state.running:
            await self._driver.stop(name, self._stop_timeout)
        elif status == S.RESUMING:
            await self._devboxes.finish_resume(devbox_id)

    async def remove_orphans(self) -> None:
        managed = await self._driver.list_managed(self._instance)
        live = {d.id for d in await self._store.list_not_terminal()}
        for container_id, devbox_id in managed.items():
            if devbox_id not in live:
                log.info("removing container %s of ended or unknown devbox %r", container_id[:12], devbox_id)
                await self._driver.remove(container_id)

    async def follow_engine_events(self) -> None:
        """Runs for the server's life: react to containers that die or vanish without our asking."""
        while True:
            try:
                async for event in self._driver.events(self._instance):
                    if event.action in ("die", "destroy") and event.devbox_id:
                        await self._devboxes.on_container_stopped(event.devbox_id, removed=event.action == "destroy")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following engine events failed; retrying")
                await asyncio.sleep(1)
