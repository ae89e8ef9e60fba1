"""When a running devbox should end by itself: its idle policy, or else its keep-alive time.

Pure functions of stored times, so the deadlines survive a server restart and fire the same."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.domain.devbox import Devbox
from app.domain.errors import InvalidRequest

DEFAULT_KEEP_ALIVE_SECONDS = 3600
MAX_KEEP_ALIVE_SECONDS = 172_800


@dataclass(frozen=True)
class IdlePolicy:
    idle_seconds: int
    on_idle: str  # "shutdown" or "suspend"


@dataclass(frozen=True)
class Deadline:
    at_ms: int
    action: str  # "keep_alive_timeout", "idle_shutdown" or "idle_suspend"


def idle_policy(launch_parameters: dict[str, Any]) -> IdlePolicy | None:
    """after_idle or lifecycle.after_idle; both set and different is an error."""
    top = launch_parameters.get("after_idle")
    nested = (launch_parameters.get("lifecycle") or {}).get("after_idle")
    if top and nested and top != nested:
        raise InvalidRequest("after_idle and lifecycle.after_idle are both set and differ; set one, or the same")
    chosen = top or nested
    if not chosen:
        return None
    return IdlePolicy(int(chosen["idle_time_seconds"]), str(chosen["on_idle"]))


def check_keep_alive(seconds: int | None) -> None:
    if seconds is not None and not 0 < seconds <= MAX_KEEP_ALIVE_SECONDS:
        raise InvalidRequest(f"keep_alive_time_seconds must be 1..{MAX_KEEP_ALIVE_SECONDS}, got {seconds}")


def deadline(devbox: Devbox) -> Deadline:
    """With an idle policy, keep_alive_time_seconds is ignored (as the spec says)."""
    policy = idle_policy(devbox.launch_parameters)
    if policy is not None:
        return Deadline(devbox.last_activity_ms + policy.idle_seconds * 1000, f"idle_{policy.on_idle}")
    seconds = devbox.launch_parameters.get("keep_alive_time_seconds") or DEFAULT_KEEP_ALIVE_SECONDS
    since = devbox.keep_alive_ms or devbox.create_time_ms
    return Deadline(since + int(seconds) * 1000, "keep_alive_timeout")
