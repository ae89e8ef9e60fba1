"""Wakes long-polling waiters (wait_for_status) when a devbox or execution they watch changes."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from enum import StrEnum
from typing import TypeVar

from app.domain.errors import InvalidRequest

T = TypeVar("T")


class StatusWatch:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self.closing = False

    def close(self) -> None:
        """The server is stopping: every held long-poll answers now (a 408 the clients re-poll on)
        instead of being cut off when the grace period ends."""
        self.closing = True
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    def notify(self, key: str) -> None:
        for event in self._waiters.get(key, ()):
            event.set()

    @contextmanager
    def subscribe(self, key: str) -> Iterator[asyncio.Event]:
        """Subscribe before reading the state, then clear-read-wait, so no change slips between them."""
        event = asyncio.Event()
        self._waiters.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[key]

    async def wait_until(
        self, key: str, read: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float
    ) -> tuple[T, bool]:
        """Re-read on every change of `key` (and at least once a second) until `done`; returns the last
        value read and whether it was done before `timeout` seconds passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with self.subscribe(key) as changed:
            while True:
                changed.clear()
                value = await read()
                if done(value):
                    return value, True
                remaining = deadline - loop.time()
                if remaining <= 0 or self.closing:
                    return value, False
                with suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout=min(remaining, 1.0))


def check_statuses(statuses: list[str], valid: type[StrEnum], what: str) -> None:
    """The wait endpoints' input rule: at least one status, each a known one (InvalidRequest otherwise)."""
    if not statuses:
        raise InvalidRequest("statuses must name at least one status")
    names = [s.value for s in valid]
    unknown = [s for s in statuses if s not in names]
    if unknown:
        raise InvalidRequest(f"unknown {what} status {unknown[0]!r}; valid: {', '.join(names)}")


def hold_seconds(requested: float | None, default: float, maximum: float) -> float:
    """How long a long-poll holds: the request's value (floats welcome) clamped to [0, maximum]."""
    if requested is None:
        return default
    if math.isnan(requested):
        raise InvalidRequest("timeout must be a number of seconds, got NaN")
    return min(max(requested, 0.0), maximum)
