"""Bringing the database and the container engine back into agreement: once at start (the server may
have died mid-operation), continuously from the engine's event stream, and again whenever that stream
reconnects (the engine may have restarted meanwhile, stopping every container, and its events are lost)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from app.domain.devbox import container_name, now_ms
from app.domain.errors import BackendError
from app.domain.statuses import DevboxStatus, FailureReason
from app.drivers.base import ENGINE_CONNECTED, SandboxDriver
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
        # Devbox ids whose containers have no row yet but are ours (the warm pool's): never orphans.
        self.held_elsewhere: Callable[[], set[str]] = set

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
        live = {d.id for d in await self._store.list_not_terminal()} | self.held_elsewhere()
        for container_id, devbox_id in managed.items():
            if devbox_id not in live:
                log.info("removing container %s of ended or unknown devbox %r", container_id[:12], devbox_id)
                await self._driver.remove(container_id)

    async def sweep_orphans_forever(self, every_seconds: float) -> None:
        """Runs for the server's life: a container whose removal failed (the engine timed out or was away)
        is removed on a later pass rather than at the next restart."""
        while True:
            await asyncio.sleep(every_seconds)
            try:
                await self.remove_orphans()
            except BackendError as exc:
                log.warning("sweeping orphan containers failed: %s", exc)

    async def recheck_after_outage(self) -> None:
        """The event stream was down, so containers may have stopped or vanished unseen: look at each live
        devbox's container. Safe while the server works: a devbox with a task of ours on it (provisioning,
        suspending, resuming) is left to that task, and one whose status moves while we look is skipped."""
        for devbox in await self._store.list_not_terminal():
            if devbox.status not in (S.RUNNING, S.INITIALIZING, S.SUSPENDED):
                continue
            try:
                await self._recheck_one(devbox.id, devbox.status, len(devbox.transitions))
            except BackendError as exc:
                log.warning("re-checking %s after the engine came back failed: %s", devbox.id, exc)
        await self.remove_orphans()  # e.g. containers of devboxes that failed while the engine was away

    async def _recheck_one(self, devbox_id: str, status: DevboxStatus, transitions: int) -> None:
        state = await self._driver.inspect(container_name(devbox_id))
        if state is not None and (state.running or status == S.SUSPENDED):
            return
        now = await self._store.get(devbox_id)
        if now is None or len(now.transitions) != transitions:
            return  # it moved meanwhile (a suspend stops the container on purpose): not ours to judge
        if state is not None and state.oom_killed:
            await self._devboxes.on_container_stopped(devbox_id, removed=False)
            return
        what = "vanished" if state is None else f"stopped (exit code {state.exit_code})"
        await self._devboxes.fail(
            devbox_id,
            FailureReason.EXECUTION_FAILED,
            f"the devbox's container {what} while the Docker engine was unreachable "
            "(restarting the engine stops every container)",
        )

    async def follow_engine_events(self) -> None:
        """Runs for the server's life: react to containers that die or vanish without our asking, and
        re-check everything when the stream comes back after an interruption."""
        connected_before = False
        while True:
            try:
                async for event in self._driver.events(self._instance):
                    if event.action == ENGINE_CONNECTED:
                        if connected_before:
                            log.info("the engine's event stream is back: re-checking live devboxes")
                            await self.recheck_after_outage()
                        connected_before = True
                    elif event.action in ("die", "destroy") and event.devbox_id:
                        await self._devboxes.on_container_stopped(event.devbox_id, removed=event.action == "destroy")
            except asyncio.CancelledError:
                raise
            except BackendError as exc:  # the engine went away while we handled an event: seen at reconnect
                log.warning("following engine events: %s; reconnecting", exc)
                await asyncio.sleep(1)
            except Exception:
                log.exception("following engine events failed; reconnecting")
                await asyncio.sleep(1)
