"""Request-scoped access to the services wired in create_app, and the bearer-key check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.domain.errors import Unauthorized
from app.services.auth import ApiKeys
from app.services.devboxes import DevboxService
from app.services.executions import ExecutionService
from app.services.files import FileService
from app.services.logs import LogService
from app.services.ptys import PtyService
from app.services.snapshots import SnapshotService
from app.services.ssh_gateway import SshGateway
from app.services.tunnels import TunnelService


@dataclass
class Services:
    devboxes: DevboxService
    executions: ExecutionService
    logs: LogService
    files: FileService
    snapshots: SnapshotService
    tunnels: TunnelService
    ptys: PtyService
    ssh: SshGateway


async def services(request: Request) -> Services:
    """Async on purpose: FastAPI runs a plain-def dependency on a worker thread, a hop per request."""
    return request.app.state.services  # type: ignore[no-any-return]


async def tenant(request: Request) -> str:
    """The caller's tenant id from `Authorization: Bearer <key>`; 401 otherwise."""
    keys: ApiKeys = request.app.state.api_keys
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <API key>'")
    owner = await keys.tenant_for(token.strip())
    if owner is None:
        raise Unauthorized("invalid API key")
    return owner


Tenant = Annotated[str, Depends(tenant)]
Svc = Annotated[Services, Depends(services)]
