"""Command execution routes (Devbox-ShellTools)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Query
from sse_starlette import EventSourceResponse

from app.api.deps import Svc, Tenant
from app.api.schemas.executions import (
    DevboxAsyncExecutionDetailView,
    DevboxCreateExecutionParameters,
    DevboxExecutionDetailView,
    DevboxKillExecutionRequest,
    DevboxSendStdInRequest,
    DevboxSendStdInResult,
    DevboxStartExecutionParameters,
    DevboxWaitForCommandRequest,
    ExecutionUpdateChunk,
)
from app.api.views import execution_view, sync_execution_view
from app.services.execution_output import STDERR, STDOUT
from app.services.executions import LAST_N_DEFAULT

router = APIRouter(prefix="/v1/devboxes", tags=["Devbox-ShellTools"])
SSE_PING_SECONDS = 10


@router.post("/{id}/execute_sync", response_model=DevboxExecutionDetailView, deprecated=True)
async def execute_sync(
    svc: Svc, owner: Tenant, id: str, body: DevboxCreateExecutionParameters
) -> DevboxExecutionDetailView:
    detail = await svc.executions.execute_sync(owner, id, body.command, body.shell_name, body.attach_stdin)
    return sync_execution_view(detail)


@router.post("/{id}/execute_async", response_model=DevboxAsyncExecutionDetailView)
async def execute_async(
    svc: Svc, owner: Tenant, id: str, body: DevboxCreateExecutionParameters
) -> DevboxAsyncExecutionDetailView:
    execution = await svc.executions.execute_async(owner, id, body.command, body.shell_name, body.attach_stdin)
    return execution_view(await svc.executions.detail(execution, LAST_N_DEFAULT))


@router.post("/{id}/execute", response_model=DevboxAsyncExecutionDetailView)
async def execute(
    svc: Svc, owner: Tenant, id: str, body: DevboxStartExecutionParameters, last_n: int = Query(LAST_N_DEFAULT, ge=0)
) -> DevboxAsyncExecutionDetailView:
    detail = await svc.executions.execute(
        owner, id, body.command_id, body.command, body.shell_name, body.optimistic_timeout, last_n
    )
    return execution_view(detail)


@router.get("/{devbox_id}/executions/{execution_id}", response_model=DevboxAsyncExecutionDetailView)
async def get_execution(
    svc: Svc, owner: Tenant, devbox_id: str, execution_id: str, last_n: int = Query(LAST_N_DEFAULT, ge=0)
) -> DevboxAsyncExecutionDetailView:
    return execution_view(await svc.executions.get_detail(owner, devbox_id, execution_id, last_n))


@router.post("/{devbox_id}/executions/{execution_id}/wait_for_status", response_model=DevboxAsyncExecutionDetailView)
async def wait_for_execution_status(
    svc: Svc,
    owner: Tenant,
    devbox_id: str,
    execution_id: str,
    body: DevboxWaitForCommandRequest,
    last_n: int = Query(LAST_N_DEFAULT, ge=0),
) -> DevboxAsyncExecutionDetailView:
    detail = await svc.executions.wait_for_status(
        owner, devbox_id, execution_id, body.statuses, body.timeout_seconds, last_n
    )
    return execution_view(detail)


@router.post("/{devbox_id}/executions/{execution_id}/kill", response_model=DevboxAsyncExecutionDetailView)
async def kill_execution(
    svc: Svc, owner: Tenant, devbox_id: str, execution_id: str, body: DevboxKillExecutionRequest | None = None
) -> DevboxAsyncExecutionDetailView:
    group = bool(body and body.kill_process_group)
    return execution_view(await svc.executions.kill(owner, devbox_id, execution_id, group))


@router.post("/{devbox_id}/executions/{execution_id}/send_std_in", response_model=DevboxSendStdInResult)
async def send_std_in(
    svc: Svc, owner: Tenant, devbox_id: str, execution_id: str, body: DevboxSendStdInRequest | None = None
) -> DevboxSendStdInResult:
    body = body or DevboxSendStdInRequest()
    await svc.executions.send_stdin(owner, devbox_id, execution_id, body.text, body.signal)
    return DevboxSendStdInResult(devbox_id=devbox_id, execution_id=execution_id, success=True)


async def _events(chunks: AsyncIterator[tuple[str, int]]) -> AsyncIterator[dict[str, str]]:
    async for text, offset in chunks:
        yield {"data": ExecutionUpdateChunk(output=text, offset=offset).model_dump_json()}


@router.get("/{devbox_id}/executions/{execution_id}/stream_stdout_updates")
async def stream_stdout_updates(
    svc: Svc, owner: Tenant, devbox_id: str, execution_id: str, offset: str | None = None
) -> EventSourceResponse:
    chunks = await svc.executions.stream_output(owner, devbox_id, execution_id, STDOUT, offset)
    return EventSourceResponse(_events(chunks), ping=SSE_PING_SECONDS)


@router.get("/{devbox_id}/executions/{execution_id}/stream_stderr_updates")
async def stream_stderr_updates(
    svc: Svc, owner: Tenant, devbox_id: str, execution_id: str, offset: str | None = None
) -> EventSourceResponse:
    chunks = await svc.executions.stream_output(owner, devbox_id, execution_id, STDERR, offset)
    return EventSourceResponse(_events(chunks), ping=SSE_PING_SECONDS)
