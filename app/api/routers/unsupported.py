"""Endpoints the Runloop clients call that this server does not provide (yet): each answers a clear
400 naming what is missing, so a client fails with a message instead of a bare 404."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import Svc, Tenant
from app.domain.errors import Unsupported

router = APIRouter(prefix="/v1/devboxes", tags=["Devbox"])


@router.post("/{id}/create_gateway_token")
async def create_gateway_token(svc: Svc, owner: Tenant, id: str) -> None:
    await svc.devboxes.get(owner, id)  # unknown or foreign devboxes stay 404
    raise Unsupported("agent gateways are not supported by this server")


@router.post("/{id}/create_mcp_token")
async def create_mcp_token(svc: Svc, owner: Tenant, id: str) -> None:
    await svc.devboxes.get(owner, id)
    raise Unsupported("MCP gateways are not supported by this server")
