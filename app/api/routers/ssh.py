"""create_ssh_key: a fresh key pair for the devbox's SSH gateway login (app/services/ssh_gateway.py)."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import Svc, Tenant
from app.api.schemas.ssh import DevboxCreateSshKeyView

router = APIRouter(prefix="/v1/devboxes", tags=["Devbox-NetworkTools"])


@router.post("/{id}/create_ssh_key", response_model=DevboxCreateSshKeyView)
async def create_ssh_key(svc: Svc, owner: Tenant, id: str) -> DevboxCreateSshKeyView:
    access = await svc.ssh.issue_key(owner, id)
    return DevboxCreateSshKeyView(
        id=access.devbox_id, url=access.url, ssh_private_key=access.ssh_private_key, ssh_user=access.ssh_user
    )
