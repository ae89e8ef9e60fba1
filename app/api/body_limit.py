"""Request bodies have a size limit (413 beyond it), except uploads and tunnel traffic, which stream; and a
body the app answered without reading is read before the answer goes out.

The limit is checked against Content-Length up front, and counted as the body arrives for chunked
requests. The unread rest: a connection whose request was not read to its end cannot carry the next one,
so the server would close it under a keep-alive client that may already be sending its next request
(which then fails). A handler that answers before the body has even arrived (a 404 for an unknown
devbox, a 401) is enough for that."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_response

UNLIMITED_SUFFIXES = ("/upload_file",)
UNLIMITED_PREFIXES = ("/tunnels/",)


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(UNLIMITED_PREFIXES):  # tunnels: the proxy streams both ways
            await self.app(scope, receive, send)
            return
        limit = None if path.endswith(UNLIMITED_SUFFIXES) else self.max_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if limit is not None and declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, receive, send)
            return
        seen = 0
        refused = False
        ended = False  # the whole body was received (or the client left)

        async def counting_receive() -> Message:
            nonlocal seen, refused, ended
            message = await receive()
            if message["type"] == "http.request":
                ended = not message.get("more_body", False)
                seen += len(message.get("body", b""))
                if limit is not None and seen > limit and not refused:
                    # Answer now, and tell the app the client left: what it answers then goes nowhere.
                    refused = ended = True
                    await self._too_large(scope, receive, send)
                    return {"type": "http.disconnect"}
            elif message["type"] == "http.disconnect":
                ended = True
            return message

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                while not ended:  # the rest of a body the app did not read
                    await counting_receive()
            if not refused:
                await send(message)

        await self.app(scope, counting_receive, guarded_send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body is larger than {self.max_bytes} bytes (upload_file has no such limit)"
        await error_response(413, "too_large", detail)(scope, receive, send)
