"""Outermost middleware: gives every HTTP request an id (the client's X-Request-Id when it is sane),
echoes it in the response, logs one access line and records the latency by route template."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.logs import REQUEST_ID
from app.observability.metrics import API_REQUESTS

access_log = logging.getLogger("devboxd.access")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _CLIENT_ID.match(given) else uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)
        status = 0  # a WebSocket that never answers with HTTP, or a dropped connection

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            elif message["type"] == "websocket.accept":
                status = 101
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            status = status or 500
            raise
        finally:
            seconds = time.perf_counter() - started
            route = _route_of(scope)
            API_REQUESTS.labels(route, scope.get("method", "WS"), f"{status // 100}xx").observe(seconds)
            access_log.info(
                "%s %s %s %.1fms",
                scope.get("method", "WS"),
                scope.get("path", ""),
                status,
                seconds * 1000,
                extra={"route": route, "status": status, "duration_ms": round(seconds * 1000, 2)},
            )
            REQUEST_ID.reset(token)


def _route_of(scope: Scope) -> str:
    """The matched route's template (bounded label values), never the raw path with its ids."""
    route = scope.get("route")
    if route is not None and hasattr(route, "path"):
        return str(route.path)
    return "tunnel" if scope.get("devboxd.tunnel") else "unmatched"
