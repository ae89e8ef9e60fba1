"""Request bodies have a size limit (413 beyond it), except uploads and tunnel traffic, which stream.

Checked against Content-Length up front, and counted as the body arrives for chunked requests."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_response

UNLIMITED_SUFFIXES = ("/upload_file",)
UNLIMITED_PREFIXES = ("/tunnels/",)


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _limited(self, scope: Scope) -> bool:
        path: str = scope["path"]
        return not (path.endswith(UNLIMITED_SUFFIXES) or path.startswith(UNLIMITED_PREFIXES))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._limited(scope):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        seen = 0
        refused = False

        async def counting_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Answer now, and tell the app the client left: what it answers then goes nowhere.
                    refused = True
                    await self._too_large(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counting_receive, guarded_send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body is larger than {self.max_bytes} bytes (upload_file has no such limit)"
        await error_response(413, "too_large", detail)(scope, receive, send)
