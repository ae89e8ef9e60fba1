"""Terminal routes: the spec's PTY-tunnel form (`/pty/{session_name}`, authorized by a create_pty_tunnel
token) and a devbox-scoped form authorized by the API key (`/v1/devboxes/{id}/pty/{session_name}`).
Each has a control endpoint and a WebSocket data plane at `connect_url`.

WebSocket protocol: terminal bytes both ways (binary frames from the server; text or binary frames
to it). Close codes: 1000 the shell ended or the session was closed; 4401 bad credentials; 4404 no
such devbox or it is not running; 4409 another client is attached (single attach)."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, Header, WebSocket, WebSocketDisconnect

from app.api.deps import Svc, Tenant
from app.api.schemas.ptys import PtyConnectView, PtyControlParameters, PtyControlResultView, PtyTunnelView
from app.domain.errors import Conflict, DomainError, Unauthorized
from app.services.auth import ApiKeys
from app.services.ptys import PtyService, Terminal

router = APIRouter(tags=["Devbox-Pty"])
PROTOCOL_VERSION = "1"
CLOSE_CODES = {Unauthorized: 4401, Conflict: 4409}


def _view(ptys: PtyService, terminal: Terminal, created: bool, connect_url: str) -> PtyConnectView:
    return PtyConnectView(
        session_name=terminal.name,
        status="running",
        protocol_version=PROTOCOL_VERSION,
        connect_url=connect_url,
        created=created,
        attached=terminal.client is not None,
        cols=terminal.cols,
        rows=terminal.rows,
        idle_ttl_seconds=ptys.idle_ttl_seconds,
    )


@router.post("/v1/devboxes/{id}/create_pty_tunnel", response_model=PtyTunnelView)
async def create_pty_tunnel(svc: Svc, owner: Tenant, id: str) -> PtyTunnelView:
    tunnel_key, auth_token = await svc.ptys.create_tunnel(owner, id)
    return PtyTunnelView(tunnel_key=tunnel_key, auth_token=auth_token)


# ----- devbox-scoped, API key ---------------------------------------------------------------------


@router.get("/v1/devboxes/{id}/pty/{session_name}", response_model=PtyConnectView)
async def connect_devbox_pty(
    svc: Svc, owner: Tenant, id: str, session_name: str, cols: int | None = None, rows: int | None = None
) -> PtyConnectView:
    terminal, created = await svc.ptys.connect(owner, id, session_name, cols, rows)
    return _view(svc.ptys, terminal, created, f"/v1/devboxes/{id}/pty/{session_name}/ws")


@router.post("/v1/devboxes/{id}/pty/{session_name}/control", response_model=PtyControlResultView)
async def control_devbox_pty(
    svc: Svc, owner: Tenant, id: str, session_name: str, body: PtyControlParameters
) -> PtyControlResultView:
    await svc.ptys.control(owner, id, session_name, body.action, body.cols, body.rows, body.signal)
    return PtyControlResultView(session_name=session_name, status="closed" if body.action == "close" else "ok")


# ----- PTY tunnel token -----------------------------------------------------------------------------


@router.get("/pty/{session_name}", response_model=PtyConnectView)
async def connect_pty(
    svc: Svc,
    session_name: str,
    cols: int | None = None,
    rows: int | None = None,
    authorization: str | None = Header(None),
) -> PtyConnectView:
    owner, devbox_id = svc.ptys.devbox_of_token(authorization)
    terminal, created = await svc.ptys.connect(owner, devbox_id, session_name, cols, rows)
    return _view(svc.ptys, terminal, created, f"/pty/{session_name}/ws")


@router.post("/pty/{session_name}/control", response_model=PtyControlResultView)
async def control_pty(
    svc: Svc, session_name: str, body: PtyControlParameters, authorization: str | None = Header(None)
) -> PtyControlResultView:
    owner, devbox_id = svc.ptys.devbox_of_token(authorization)
    await svc.ptys.control(owner, devbox_id, session_name, body.action, body.cols, body.rows, body.signal)
    return PtyControlResultView(session_name=session_name, status="closed" if body.action == "close" else "ok")


# ----- the data plane ---------------------------------------------------------------------------------


@router.websocket("/v1/devboxes/{id}/pty/{session_name}/ws")
async def devbox_pty_socket(websocket: WebSocket, id: str, session_name: str) -> None:
    keys: ApiKeys = websocket.app.state.api_keys
    scheme, _, token = (websocket.headers.get("authorization") or "").partition(" ")
    owner = await keys.tenant_for(token.strip()) if scheme.lower() == "bearer" else None
    if owner is None:
        await _refuse(websocket, 4401, "invalid API key")
        return
    await _serve(websocket, owner, id, session_name)


@router.websocket("/pty/{session_name}/ws")
async def pty_socket(websocket: WebSocket, session_name: str) -> None:
    ptys: PtyService = websocket.app.state.services.ptys
    try:
        owner, devbox_id = ptys.devbox_of_token(websocket.headers.get("authorization"))
    except Unauthorized:
        await _refuse(websocket, 4401, "invalid PTY tunnel token")
        return
    await _serve(websocket, owner, devbox_id, session_name)


async def _refuse(websocket: WebSocket, code: int, reason: str) -> None:
    """Accept, then close with our code: closing before the upgrade would only show the client a 403."""
    await websocket.accept()
    await websocket.close(code=code, reason=reason[:120])


async def _serve(websocket: WebSocket, owner: str, devbox_id: str, session_name: str) -> None:
    """Attach (creating the session if needed), then pump bytes both ways until either side ends."""
    ptys: PtyService = websocket.app.state.services.ptys
    try:
        terminal, _ = await ptys.connect(owner, devbox_id, session_name, None, None)
        outbox, missed = ptys.attach(terminal)
    except DomainError as exc:
        code = next((c for kind, c in CLOSE_CODES.items() if isinstance(exc, kind)), 4404)
        await _refuse(websocket, code, exc.message)
        return
    await websocket.accept()
    try:
        if missed:
            await websocket.send_bytes(missed)

        async def to_client() -> None:
            while (data := await outbox.get()) is not None:
                await websocket.send_bytes(data)

        async def from_client() -> None:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes") or (message.get("text") or "").encode()
                if data:
                    await ptys.write(terminal, data)

        tasks = [asyncio.create_task(to_client()), asyncio.create_task(from_client())]
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if terminal.ended.is_set():
            with contextlib.suppress(Exception):
                await websocket.close(code=1000, reason="the shell ended")
    except WebSocketDisconnect:
        pass
    finally:
        ptys.detach(terminal)
