"""Command execution routes (Devbox-ShellTools)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from app.api.deps import Svc, Tenant
from app.api.schemas.executions import (
    DevboxAsyncExecutionDetailView,
    DevboxCreateExecutionParameters,
    DevboxExecutionDetailView,
    DevboxStartExecutionParameters,
    DevboxWaitForCommandRequest,
)
from app.api.views import execution_view
from app.services.executions import LAST_N_DEFAULT

router = APIRouter(prefix="/v1/devboxes", tags=["Devbox-ShellTools"])


@router.post("/{id}/execute_sync", response_model=DevboxExecutionDetailView, deprecated=True)
async def execute_sync(
    svc: Svc, owner: Tenant, id: str, body: DevboxCreateExecutionParameters
) -> DevboxExecutionDetailView:
    devbox, result = await svc.executions.execute_sync(owner, id, body.command, body.shell_name, body.attach_stdin)
    return DevboxExecutionDetailView(
        devbox_id=devbox.id,
        stdout=result.stdout.decode(errors="replace"),
        stderr=result.stderr.decode(errors="replace"),
        exit_status=result.exit_code,
        shell_name=body.shell_name,
    )


@router.post("/{id}/execute_async", response_model=DevboxAsyncExecutionDetailView)
async def execute_async(
    svc: Svc, owner: Tenant, id: str, body: DevboxCreateExecutionParameters
) -> DevboxAsyncExecutionDetailView:
    execution = await svc.executions.execute_async(owner, id, body.command, body.shell_name, body.attach_stdin)
    return execution_view(execution)


@router.post("/{id}/execute", response_model=DevboxAsyncExecutionDetailView)
async def execute(
    svc: Svc, owner: Tenant, id: str, body: DevboxStartExecutionParameters, last_n: int = Query(LAST_N_DEFAULT, ge=0)
) -> DevboxAsyncExecutionDetailView:
    execution = await svc.executions.execute(
        owner, id, body.command_id, body.command, body.shell_name, body.optimistic_timeout
    )
    return execution_view(execution, last_n)


@router.get("/{devbox_id}/executions/{execution_id}", response_model=DevboxAsyncExecutionDetailView)
async def get_execution(
    svc: Svc, owner: Tenant, devbox_id: str, execution_id: str, last_n: int = Query(LAST_N_DEFAULT, ge=0)
) -> DevboxAsyncExecutionDetailView:
    return execution_view(await svc.executions.get(owner, devbox_id, execution_id), last_n)


@router.post("/{devbox_id}/executions/{execution_id}/wait_for_status", response_model=DevboxAsyncExecutionDetailView)
async def wait_for_execution_status(
    svc: Svc, owner: Tenant, devbox_id: str, execution_id: str, body: DevboxWaitForCommandRequest
) -> DevboxAsyncExecutionDetailView:
    execution = await svc.executions.wait_for_status(
        owner, devbox_id, execution_id, body.statuses, body.timeout_seconds
    )
    return execution_view(execution)
