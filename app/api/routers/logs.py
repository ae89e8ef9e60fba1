"""Devbox log routes (Devbox-ObservabilityTools)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from app.api.deps import Svc, Tenant
from app.api.schemas.logs import DevboxLog, DevboxLogsListView

router = APIRouter(prefix="/v1/devboxes", tags=["Devbox-ObservabilityTools"])


@router.get("/{id}/logs", response_model=DevboxLogsListView)
async def list_devbox_logs(
    svc: Svc, owner: Tenant, id: str, execution_id: str | None = None, shell_name: str | None = None
) -> DevboxLogsListView:
    entries = await svc.logs.list_entries(owner, id, execution_id, shell_name)
    return DevboxLogsListView(
        logs=[DevboxLog.model_validate({k: v for k, v in asdict(e).items() if k != "devbox_id"}) for e in entries]
    )
