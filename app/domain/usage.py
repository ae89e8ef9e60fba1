"""Resource usage derived from a devbox's state transitions (pure, so it is unit-testable)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.domain.statuses import ACTIVE, DevboxStatus


@dataclass(frozen=True)
class Usage:
    total_active_seconds: int
    total_elapsed_seconds: int
    vcpu_seconds: int
    memory_gb_seconds: int
    disk_gb_seconds: int


def compute_usage(
    transitions: Sequence[tuple[DevboxStatus, int]],
    now_ms: int,
    end_time_ms: int | None,
    cpus: float,
    memory_gb: float,
    disk_gb: float,
) -> Usage:
    """Active time counts every status in ACTIVE (not suspended, not ended); elapsed counts everything."""
    if not transitions:
        return Usage(0, 0, 0, 0, 0)
    stop_ms = end_time_ms if end_time_ms is not None else now_ms
    active_ms = 0
    for (status, start), nxt in zip(transitions, [*transitions[1:], None], strict=True):
        until = nxt[1] if nxt else stop_ms
        if status in ACTIVE:
            active_ms += max(0, until - start)
    elapsed_ms = max(0, stop_ms - transitions[0][1])
    active = active_ms // 1000
    elapsed = elapsed_ms // 1000
    return Usage(
        total_active_seconds=active,
        total_elapsed_seconds=elapsed,
        vcpu_seconds=int(active_ms * cpus) // 1000,
        memory_gb_seconds=int(active_ms * memory_gb) // 1000,
        disk_gb_seconds=int(elapsed_ms * disk_gb) // 1000,
    )
