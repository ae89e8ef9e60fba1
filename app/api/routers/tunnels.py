"""Tunnel management routes; the tunnel traffic itself goes through app/api/tunnel_proxy.py."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import Svc, Tenant
from app.api.schemas.common import EmptyRecord
from app.api.schemas.devboxes import TunnelConfig, TunnelView

router = APIRouter(prefix="/v1/devboxes", tags=["Devbox-Networking"])


@router.post("/{id}/enable_tunnel", response_model=TunnelView)
async def enable_tunnel(svc: Svc, owner: Tenant, id: str, body: TunnelConfig | None = None) -> TunnelView:
    body = body or TunnelConfig()
    devbox = await svc.tunnels.enable(owner, id, body.auth_mode, body.http_keep_alive, body.wake_on_http)
    return TunnelView.model_validate(devbox.tunnel)


@router.post("/{id}/remove_tunnel", response_model=EmptyRecord)
async def remove_tunnel(svc: Svc, owner: Tenant, id: str) -> EmptyRecord:
    await svc.tunnels.remove(owner, id)
    return EmptyRecord()
