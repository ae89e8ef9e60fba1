"""The tunnel data plane: an ASGI middleware in front of the API that forwards HTTP (streamed both
ways, so server-sent events pass) and WebSockets to a port inside a devbox.

Two addressing forms reach the same tunnel:
- host-based: `http://{port}-{tunnel_key}.{DEVBOX_TUNNEL_DOMAIN}:{api port}/path` (default domain
  `localhost`: browsers and systemd-resolved map `*.localhost` to 127.0.0.1; elsewhere use
  `curl --resolve` or a wildcard DNS entry);
- path-based, for set-ups without wildcard DNS: `http://{api host}/tunnels/{tunnel_key}/{port}/path`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx
import websockets
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import domain_error_response, error_response
from app.domain.errors import DomainError
from app.services.tunnels import TunnelService, TunnelTarget

log = logging.getLogger(__name__)

PATH_PREFIX = re.compile(rb"^/tunnels/(?P<key>[a-z0-9]+)/(?P<port>\d+)(?P<rest>/.*)?$")
# Added by httpx unless the client sent them; a service must see only what the client asked for.
CLIENT_DEFAULTS = ("accept", "accept-encoding", "user-agent", "connection")
WAKE_RETRY_SECONDS = 60.0
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
        """(tunnel key, port, path as the client sent it, percent-encoding kept) for tunnel requests."""
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1").lower()
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        if match := self._host.match(host):
            return match["key"], int(match["port"]), raw_path.decode("latin-1")
        if prefixed := PATH_PREFIX.match(raw_path):
            rest = prefixed["rest"] or b"/"
            return prefixed["key"].decode(), int(prefixed["port"]), rest.decode("latin-1")
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._route(scope) if scope["type"] in ("http", "websocket") else None
        if route is None:
            await self.app(scope, receive, send)
            return
        key, port, path = route
        scope["devboxd.tunnel"] = True  # for the request log: its route label
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
            # No read timeouts: streams (SSE, long polls) stay open as long as both ends want. No cookie
            # jar: one client's cookies must never ride along with another client's requests.
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(None, connect=10.0),
                follow_redirects=False,
                cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
            )
        body_done = asyncio.Event()

        async def body() -> AsyncIterator[bytes]:
            try:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    yield message.get("body", b"")
                    if not message.get("more_body"):
                        return
            finally:
                body_done.set()

        request_headers = self._headers(scope, target)
        sent = {k.lower() for k, _ in request_headers}
        # A body only when the request has one: chunked framing on a bodiless GET confuses HTTP/1.0 servers.
        has_body = b"content-length" in sent or b"transfer-encoding" in dict(scope["headers"])
        if not has_body:
            body_done.set()
        query = scope.get("query_string", b"").decode("latin-1")
        url = f"http://{target.host}:{target.port}{path}" + (f"?{query}" if query else "")
        request = self._client.build_request(
            scope["method"], url, headers=request_headers, content=body() if has_body else None
        )
        for name in CLIENT_DEFAULTS:
            if name.encode() not in sent:
                request.headers.pop(name, None)
        upstream = await self._send(request, target)
        if upstream is None:
            detail = f"nothing answered on port {target.port} in devbox {target.devbox_id}"
            await error_response(502, "bad_gateway", detail)(scope, receive, send)
            return

        async def client_left() -> None:
            await body_done.wait()
            while (await receive())["type"] != "http.disconnect":
                pass

        relay = asyncio.create_task(self._relay(upstream, send))
        watch = asyncio.create_task(client_left())
        try:
            await asyncio.wait([relay, watch], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (relay, watch):
                task.cancel()
            await asyncio.gather(relay, watch, return_exceptions=True)
            await upstream.aclose()  # also when the client left mid-stream: the service sees it go

    async def _send(self, request: httpx.Request, target: TunnelTarget) -> httpx.Response | None:
        """The service's response; None when nothing listens. Right after a wake the service may still
        be starting: refused connections are retried for a while before giving up."""
        assert self._client is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (WAKE_RETRY_SECONDS if target.woke else 0)
        while True:
            try:
                return await self._client.send(request, stream=True)
            except httpx.ConnectError:
                if loop.time() >= deadline:
                    return None
                await asyncio.sleep(0.2)
            except httpx.HTTPError as exc:
                log.info("tunnel %s:%s: request failed: %s", target.devbox_id, target.port, exc)
                return None

    @staticmethod
    async def _relay(upstream: httpx.Response, send: Send) -> None:
        # Raw bytes go through (still compressed if they were), so Content-Length stays true. The
        # service's Date header is dropped: the server adds its own.
        headers = [(k, v) for k, v in upstream.headers.raw if k.lower() not in HOP_BY_HOP and k.lower() != b"date"]
        try:
            await send({"type": "http.response.start", "status": upstream.status_code, "headers": headers})
            async for chunk in upstream.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (httpx.HTTPError, OSError) as exc:
            log.info("tunnel stream ended: %s", exc or type(exc).__name__)

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
