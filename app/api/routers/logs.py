"""Devbox log routes (Devbox-ObservabilityTools)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict

from fastapi import APIRouter
from sse_starlette import EventSourceResponse

from app.api.deps import Svc, Tenant
from app.api.schemas.logs import DevboxLog, DevboxLogsListView
from app.domain.devbox import LogEntry

router = APIRouter(prefix="/v1/devboxes", tags=["Devbox-ObservabilityTools"])


@router.get("/{id}/logs", response_model=DevboxLogsListView)
async def list_devbox_logs(
    svc: Svc, owner: Tenant, id: str, execution_id: str | None = None, shell_name: str | None = None
) -> DevboxLogsListView:
    entries = await svc.logs.list_entries(owner, id, execution_id, shell_name)
    return DevboxLogsListView(logs=[_log_view(e) for e in entries])


def _log_view(entry: LogEntry) -> DevboxLog:
    return DevboxLog.model_validate({k: v for k, v in asdict(entry).items() if k != "devbox_id"})


@router.get("/{id}/logs/tail")
async def tail_devbox_logs(
    svc: Svc, owner: Tenant, id: str, execution_id: str | None = None, shell_name: str | None = None
) -> EventSourceResponse:
    """SSE: one `data: <DevboxLog>` event per entry, past entries first, until the client disconnects."""
    entries = await svc.logs.tail(owner, id, execution_id, shell_name)

    async def events() -> AsyncIterator[dict[str, str]]:
        async for entry in entries:
            yield {"data": _log_view(entry).model_dump_json(exclude_none=True)}

    return EventSourceResponse(events(), ping=10)
