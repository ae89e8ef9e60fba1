"""Devbox statuses and the table of allowed transitions: the one place the lifecycle is defined."""

from __future__ import annotations

from enum import StrEnum


class DevboxStatus(StrEnum):
    PROVISIONING = "provisioning"
    INITIALIZING = "initializing"
    RUNNING = "running"
    SUSPENDING = "suspending"
    SUSPENDED = "suspended"
    RESUMING = "resuming"
    FAILURE = "failure"
    SHUTDOWN = "shutdown"


S = DevboxStatus

TERMINAL: frozenset[DevboxStatus] = frozenset({S.FAILURE, S.SHUTDOWN})
# Statuses in which the devbox's container is expected to be running and consuming compute.
ACTIVE: frozenset[DevboxStatus] = frozenset({S.PROVISIONING, S.INITIALIZING, S.RUNNING, S.SUSPENDING, S.RESUMING})

ALLOWED_TRANSITIONS: dict[DevboxStatus, frozenset[DevboxStatus]] = {
    S.PROVISIONING: frozenset({S.INITIALIZING, S.FAILURE, S.SHUTDOWN}),
    S.INITIALIZING: frozenset({S.RUNNING, S.FAILURE, S.SHUTDOWN}),
    S.RUNNING: frozenset({S.SUSPENDING, S.FAILURE, S.SHUTDOWN}),
    S.SUSPENDING: frozenset({S.SUSPENDED, S.FAILURE, S.SHUTDOWN}),
    S.SUSPENDED: frozenset({S.RESUMING, S.FAILURE, S.SHUTDOWN}),
    S.RESUMING: frozenset({S.RUNNING, S.FAILURE, S.SHUTDOWN}),
    S.FAILURE: frozenset(),
    S.SHUTDOWN: frozenset(),
}


def sources_for(target: DevboxStatus) -> frozenset[DevboxStatus]:
    """Every status from which `target` may be entered."""
    return frozenset(src for src, targets in ALLOWED_TRANSITIONS.items() if target in targets)


class FailureReason(StrEnum):
    OUT_OF_MEMORY = "out_of_memory"
    OUT_OF_DISK = "out_of_disk"
    EXECUTION_FAILED = "execution_failed"


class ShutdownReason(StrEnum):
    API_SHUTDOWN = "api_shutdown"
    KEEP_ALIVE_TIMEOUT = "keep_alive_timeout"
    ENTRYPOINT_EXIT = "entrypoint_exit"
    IDLE = "idle"


class ExecutionStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"


class LogSource(StrEnum):
    SETUP_COMMANDS = "setup_commands"
    ENTRYPOINT = "entrypoint"
    EXEC = "exec"
    FILES = "files"
    STATS = "stats"
    KMSG = "kmsg"


class SnapshotStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    ERROR = "error"
    COMPLETE = "complete"
    DELETED = "deleted"
