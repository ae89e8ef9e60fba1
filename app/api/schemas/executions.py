"""Execution request and response models, named exactly as the spec's schemas."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel

from app.api.schemas.common import StrictRequest, limited, runnable
from app.domain.limits import ID_MAX, WORD_MAX

# shell_name is bounded (1-256 characters) by the execution service, which answers 400 the same way.


class DevboxCreateExecutionParameters(StrictRequest):
    command: Annotated[str, runnable("command")]
    shell_name: str | None = None
    attach_stdin: bool | None = None


class DevboxStartExecutionParameters(StrictRequest):
    command_id: Annotated[str, limited(ID_MAX, "command_id")]
    command: Annotated[str, runnable("command")]
    shell_name: str | None = None
    optimistic_timeout: float | None = None


class DevboxWaitForCommandRequest(StrictRequest):
    statuses: list[Annotated[str, limited(WORD_MAX, "a status")]]
    timeout_seconds: float | None = None


class DevboxExecutionDetailView(BaseModel):
    devbox_id: str
    stdout: str
    stderr: str
    exit_status: int
    shell_name: str | None = None


class DevboxAsyncExecutionDetailView(BaseModel):
    devbox_id: str
    execution_id: str
    status: Literal["queued", "running", "completed"]
    shell_name: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    exit_status: int | None = None
    stdout_truncated: bool | None = None
    stderr_truncated: bool | None = None


class DevboxKillExecutionRequest(StrictRequest):
    kill_process_group: bool | None = None


class DevboxSendStdInRequest(StrictRequest):
    text: str | None = None  # data for the command's stdin: the body limit only
    signal: Literal["EOF", "INTERRUPT"] | None = None


class DevboxSendStdInResult(BaseModel):
    devbox_id: str
    execution_id: str
    success: bool


class ExecutionUpdateChunk(BaseModel):
    """One SSE event of stream_stdout_updates / stream_stderr_updates; offset is where the chunk ends."""

    output: str
    offset: int
