"""The warm pool: containers of the default image, created, started and with their command agent
connected before anyone asks, so a create that fits skips the engine's slowest steps.

Each warm container is made for a devbox id chosen when it is filled: its name, labels, hostname and
private directory are those of the devbox that will claim it, so a claimed devbox is indistinguishable
from a cold one. Until claimed it has no row in the store; the reconciler leaves the ids in `held()`
alone, and a restart removes unclaimed ones like any container without a devbox. Refills run one at a
time, only while no create is being provisioned, so the pool never competes with API requests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.domain.devbox import container_name
from app.domain.errors import BackendError
from app.domain.ids import new_id
from app.domain.resources import SIZES, fit_to_host
from app.drivers.base import ContainerSpec, SandboxDriver
from app.services.agent_channel import AgentChannels
from app.services.private_dirs import PrivateDirs

log = logging.getLogger(__name__)

FAILURE_BACKOFF_SECONDS = 5.0
RECHECK_SECONDS = 5.0


@dataclass(frozen=True)
class PoolShape:
    """Containers of one size the pool keeps ready: `target` of them."""

    size: str
    cpus: float
    memory_bytes: int
    target: int

    @property
    def key(self) -> tuple[float, int]:
        return (self.cpus, self.memory_bytes)


@dataclass(frozen=True)
class WarmContainer:
    devbox_id: str
    container_id: str


class WarmPool:
    def __init__(
        self,
        driver: SandboxDriver,
        channels: AgentChannels,
        private_dirs: PrivateDirs,
        sizes: dict[str, int],
        spec_for: Callable[[str, float, int, Path], ContainerSpec],
        creates_in_flight: Callable[[], int],
        refill_gap_seconds: float,
    ) -> None:
        self._driver = driver
        self._channels = channels
        self._private_dirs = private_dirs
        self._sizes = {name: count for name, count in sizes.items() if count > 0}
        self._shapes: list[PoolShape] = []  # known once the engine tells the host's capacity
        self._spec_for = spec_for
        self._creates_in_flight = creates_in_flight
        self._gap = refill_gap_seconds
        self._ready: dict[tuple[float, int], deque[WarmContainer]] = {}
        self._filling: set[str] = set()
        self._claiming: set[str] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self._discarding: set[asyncio.Task[None]] = set()

    def take(self, cpus: float, memory_bytes: int) -> WarmContainer | None:
        """A ready container of exactly this size whose agent is still connected, or None."""
        ready = self._ready.get((cpus, memory_bytes))
        while ready:
            warm = ready.popleft()
            self._wake.set()
            if self._channels.is_open(warm.devbox_id):
                self._claiming.add(warm.devbox_id)  # still the pool's until its row exists (see settled)
                return warm
            self._discard_soon(warm)  # died while waiting (e.g. an engine restart)
        return None

    def settled(self, warm: WarmContainer, recorded: bool) -> None:
        """The create that took `warm` stored its devbox (it is an ordinary devbox now), or failed to
        (the container goes: nobody owns it)."""
        self._claiming.discard(warm.devbox_id)
        if not recorded:
            self._discard_soon(warm)

    def _discard_soon(self, warm: WarmContainer) -> None:
        task = asyncio.create_task(self._discard(warm))
        self._discarding.add(task)
        task.add_done_callback(self._discarding.discard)

    def _drop_dead(self) -> None:
        """Ready containers whose agent went away (killed, engine restart) no longer count: they are
        removed and replaced, rather than holding a place in the pool until a create trips over them."""
        for ready in self._ready.values():
            dead = [warm for warm in ready if not self._channels.is_open(warm.devbox_id)]
            for warm in dead:
                ready.remove(warm)
                self._discard_soon(warm)

    async def claim(self, warm: WarmContainer, env: dict[str, str]) -> None:
        """Give the claimed container its devbox's environment (secrets included), as a cold create would."""
        await asyncio.to_thread(self._private_dirs.write_environment, warm.devbox_id, env)
        channel = await self._channels.get(warm.devbox_id)
        await channel.reload_environment()

    def held(self) -> set[str]:
        """Devbox ids of containers that belong to the pool, ready or being made."""
        ready = {w.devbox_id for queue in self._ready.values() for w in queue}
        return ready | self._filling | self._claiming

    def ready_count(self) -> int:
        return sum(len(ready) for ready in self._ready.values())

    async def run(self) -> None:
        """Runs for the server's life: top every size up to its target, one container at a time."""
        if not self._sizes:
            return
        await self._learn_shapes()
        while not self._stopping:
            self._wake.clear()
            self._drop_dead()
            for shape in self._shapes:
                while len(self._ready[shape.key]) < shape.target and not self._stopping:
                    if self._creates_in_flight() > 0:
                        await asyncio.sleep(self._gap)  # API creates first
                        continue
                    if not await self._fill(shape):
                        await asyncio.sleep(FAILURE_BACKOFF_SECONDS)
                        break
                    await asyncio.sleep(self._gap)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), RECHECK_SECONDS)

    async def _learn_shapes(self) -> None:
        """Sizes as creates will ask for them: capped to this host the same way (fit_to_host)."""
        while True:
            try:
                capacity = await self._driver.capacity()
                break
            except BackendError:
                await asyncio.sleep(FAILURE_BACKOFF_SECONDS)
        for name, count in self._sizes.items():
            placement = fit_to_host(SIZES[name], capacity.cpus, capacity.memory_bytes)
            shape = PoolShape(name, placement.cpus, placement.memory_bytes, count)
            self._shapes.append(shape)
            self._ready.setdefault(shape.key, deque())

    async def _fill(self, shape: PoolShape) -> bool:
        devbox_id = new_id("dbx")
        self._filling.add(devbox_id)
        made = False
        try:
            env_dir = await asyncio.to_thread(self._private_dirs.prepare, devbox_id, {})
            container_id = await self._driver.run_container(
                self._spec_for(devbox_id, shape.cpus, shape.memory_bytes, env_dir)
            )
            await self._channels.get(devbox_id)  # the agent answers before the container counts as ready
            self._ready[shape.key].append(WarmContainer(devbox_id, container_id))
            made = True
        except (BackendError, OSError) as exc:
            log.warning("warm pool: filling a %s container failed: %s", shape.size, exc)
        finally:
            self._filling.discard(devbox_id)
            if not made:  # also when cancelled at server stop
                await asyncio.shield(self._discard(WarmContainer(devbox_id, container_name(devbox_id))))
        return made

    async def _discard(self, warm: WarmContainer) -> None:
        with contextlib.suppress(BackendError):
            await self._driver.remove(container_name(warm.devbox_id))
        await asyncio.to_thread(self._private_dirs.remove, warm.devbox_id)

    async def close(self) -> None:
        """Server stop: no warm container outlives the server."""
        self._stopping = True
        self._wake.set()
        warm = [w for ready in self._ready.values() for w in ready]
        for ready in self._ready.values():
            ready.clear()
        await asyncio.gather(*(self._discard(w) for w in warm), *self._discarding, return_exceptions=True)
