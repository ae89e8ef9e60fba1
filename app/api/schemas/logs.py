"""Devbox log models, named exactly as the spec's schemas."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class DevboxLog(BaseModel):
    level: str
    timestamp_ms: int
    source: Literal["setup_commands", "entrypoint", "exec", "files", "stats", "kmsg"]
    message: str | None = None
    cmd: str | None = None
    cmd_id: str | None = None
    exit_code: int | None = None
    shell_name: str | None = None


class DevboxLogsListView(BaseModel):
    logs: list[DevboxLog]
