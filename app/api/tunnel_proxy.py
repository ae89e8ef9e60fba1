"""The tunnel data plane: an ASGI middleware in front of the API that forwards HTTP (streamed both
ways, so server-sent events pass) and WebSockets to a port inside a devbox.

Two addressing forms reach the same tunnel:
- host-based: `http://{port}-{tunnel_key}.{DEVBOX_TUNNEL_DOMAIN}:{api port}/path` (default domain
  `localhost`, which resolves to 127.0.0.1 without any DNS set-up);
- path-based, for set-ups without wildcard DNS: `http://{api host}/tunnels/{tunnel_key}/{port}/path`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import websockets
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import domain_error_response, error_response
from app.domain.errors import DomainError
from app.services.tunnels import TunnelService, TunnelTarget

log = logging.getLogger(__name__)

PATH_PREFIX = re.compile(r"^/tunnels/(?P<key>[a-z0-9]+)/(?P<port>\d+)(?P<rest>/.*)?$")
# Not forwarded: they describe one hop, not the message (RFC 9110 7.6.1), or are ours.
HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
    b"host",
}


class TunnelProxy:
    def __init__(self, app: ASGIApp, domain: str) -> None:
        self.app = app
        self._host = re.compile(rf"^(?P<port>\d+)-(?P<key>[a-z0-9]+)\.{re.escape(domain.lower())}(:\d+)?$")
        self._client: httpx.AsyncClient | None = None

    def _route(self, scope: Scope) -> tuple[str, int, str] | None:
        """(tunnel key, port, path) when the request is for a tunnel."""
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1").lower()
        if match := self._host.match(host):
            return match["key"], int(match["port"]), scope["path"]
        if match := PATH_PREFIX.match(scope["path"]):
            return match["key"], int(match["port"]), match["rest"] or "/"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._route(scope) if scope["type"] in ("http", "websocket") else None
        if route is None:
            await self.app(scope, receive, send)
            return
        key, port, path = route
        tunnels: TunnelService = scope["app"].state.services.tunnels
        authorization = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1") or None
        try:
            target = await tunnels.resolve(key, port, authorization)
        except DomainError as exc:
            await self._refuse(scope, receive, send, domain_error_response(exc))
            return
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send, target, path)
        else:
            await self._http(scope, receive, send, target, path)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, response: Any) -> None:
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008, "reason": response.body.decode()[:120]})
        else:
            await response(scope, receive, send)

    def _headers(self, scope: Scope, target: TunnelTarget) -> list[tuple[bytes, bytes]]:
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP]
        if target.strip_authorization:
            headers = [(k, v) for k, v in headers if k.lower() != b"authorization"]
        client = scope.get("client")
        if client:
            headers.append((b"x-forwarded-for", client[0].encode()))
        original_host = dict(scope["headers"]).get(b"host")
        if original_host:
            headers.append((b"x-forwarded-host", original_host))
        return headers

    async def _http(self, scope: Scope, receive: Receive, send: Send, target: TunnelTarget, path: str) -> None:
        if self._client is None:
            # No timeouts on reads: streams (SSE, long polls) stay open as long as both ends want.
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=10.0), follow_redirects=False)

        async def body() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                yield message.get("body", b"")
                if not message.get("more_body"):
                    return

        query = scope.get("query_string", b"").decode("latin-1")
        url = f"http://{target.host}:{target.port}{path}" + (f"?{query}" if query else "")
        request = self._client.build_request(scope["method"], url, headers=self._headers(scope, target), content=body())
        try:
            upstream = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            detail = f"nothing answered on port {target.port} in devbox {target.devbox_id}: {exc}"
            await error_response(502, "bad_gateway", detail)(scope, receive, send)
            return
        try:
            # Raw bytes go through (still compressed if they were), so Content-Length stays true.
            headers = [(k, v) for k, v in upstream.headers.raw if k.lower() not in HOP_BY_HOP]
            await send({"type": "http.response.start", "status": upstream.status_code, "headers": headers})
            async for chunk in upstream.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (httpx.HTTPError, OSError) as exc:
            log.info("tunnel %s:%s: stream ended: %s", target.devbox_id, target.port, exc)
        finally:
            await upstream.aclose()

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, target: TunnelTarget, path: str) -> None:
        await receive()  # websocket.connect
        query = scope.get("query_string", b"").decode("latin-1")
        url = f"ws://{target.host}:{target.port}{path}" + (f"?{query}" if query else "")
        skip = HOP_BY_HOP | {b"content-length", b"sec-websocket-key", b"sec-websocket-version"}
        skip |= {b"sec-websocket-extensions", b"sec-websocket-protocol"}
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._headers(scope, target) if k not in skip]
        try:
            upstream = await websockets.connect(
                url,
                additional_headers=headers,
                subprotocols=scope.get("subprotocols") or None,
                max_size=None,
                open_timeout=10,
            )
        except (OSError, websockets.WebSocketException, TimeoutError) as exc:
            log.info("tunnel websocket to %s:%s failed: %s", target.devbox_id, target.port, exc)
            await send({"type": "websocket.close", "code": 1014, "reason": "bad gateway"})
            return
        await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})

        async def client_to_upstream() -> None:
            while True:
                message: Message = await receive()
                if message["type"] == "websocket.disconnect":
                    await upstream.close(code=message.get("code", 1000))
                    return
                if message.get("bytes") is not None:
                    await upstream.send(message["bytes"])
                elif message.get("text") is not None:
                    await upstream.send(message["text"])

        async def upstream_to_client() -> None:
            with contextlib.suppress(websockets.ConnectionClosed):
                async for data in upstream:
                    key = "bytes" if isinstance(data, bytes) else "text"
                    await send({"type": "websocket.send", key: data})
            code = upstream.close_code or 1000
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": code})

        tasks = [asyncio.create_task(client_to_upstream()), asyncio.create_task(upstream_to_client())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await upstream.close()
