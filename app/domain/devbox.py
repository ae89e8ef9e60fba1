"""Plain records the services pass around; the store maps them to rows, the API to views."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from app.domain.statuses import DevboxStatus, ExecutionStatus


def now_ms() -> int:
    return int(time.time() * 1000)


def container_name(devbox_id: str) -> str:
    """Containers are addressed by name, so no operation depends on having stored the engine's id."""
    return f"devbox-{devbox_id}"


@dataclass
class Transition:
    status: DevboxStatus
    time_ms: int


@dataclass
class Devbox:
    id: str
    owner: str
    status: DevboxStatus
    create_time_ms: int
    name: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    # Launch parameters exactly as the client sent them (minus nulls), echoed back in the view.
    launch_parameters: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    entrypoint: str | None = None
    snapshot_id: str | None = None
    blueprint_id: str | None = None
    image: str = ""
    username: str = "user"
    uid: int = 1000
    cpus: float = 1.0
    memory_bytes: int = 0
    disk_gb: int = 4
    container_id: str | None = None
    end_time_ms: int | None = None
    failure_reason: str | None = None
    shutdown_reason: str | None = None
    last_activity_ms: int = 0
    keep_alive_ms: int | None = None  # when the keep-alive countdown last restarted
    tunnel_key: str | None = None
    tunnel: dict[str, Any] | None = None  # TunnelView fields (auth_token included when authenticated)
    transitions: list[Transition] = field(default_factory=list)

    @property
    def home(self) -> str:
        return "/root" if self.uid == 0 or self.username == "root" else f"/home/{self.username}"


@dataclass
class Execution:
    id: str
    devbox_id: str
    owner: str
    command: str
    status: ExecutionStatus
    create_time_ms: int
    command_id: str | None = None
    shell_name: str | None = None
    exit_status: int | None = None
    stdout: str | None = None
    stderr: str | None = None
    end_time_ms: int | None = None


@dataclass
class LogEntry:
    devbox_id: str
    timestamp_ms: int
    source: str
    level: str
    message: str
    cmd: str | None = None
    cmd_id: str | None = None
    exit_code: int | None = None
    shell_name: str | None = None
