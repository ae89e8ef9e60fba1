"""Streaming multipart/form-data for upload_file: the `file` part's bytes are handed on as they arrive,
so a 1 GiB upload never sits in the server's memory or in a temp file.

Clients (httpx, the Runloop SDKs) send the `path` field before the `file` part. If a client sends the
file first, its bytes are spooled (memory, then a temp file) until `path` is known.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from typing import Any

from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

from app.domain.errors import InvalidRequest

MAX_PATH_FIELD_BYTES = 8192
SPOOL_IN_MEMORY_BYTES = 8 * 1024**2


class _Parts:
    """Collects parser callbacks into a list of events per fed chunk: ("path", b), ("file", b), ("end", b"")."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []
        self._header_field = b""
        self._header_value = b""
        self._name: str | None = None
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._field,
            "on_header_value": self._value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_done,
            "on_part_data": self._data,
            "on_end": lambda: self.events.append(("end", b"")),
        }

    def _begin(self) -> None:
        self._headers, self._name = {}, None

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def _headers_done(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        self._name = name.decode() if name else None
        if self._name == "file":
            self.events.append(("file", b""))  # the part exists even if it carries no bytes

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._name in ("path", "file"):
            whole = start == 0 and end == len(data) and isinstance(data, bytes)
            self.events.append((self._name, data if whole else bytes(data[start:end])))


async def stream_upload(content_type: str, body: AsyncIterator[bytes]) -> tuple[str, AsyncIterator[bytes]]:
    """Read the request until `path` is known; return it and an iterator over the file's bytes."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidRequest("upload_file takes multipart/form-data with a `path` field and a `file` part")
    parts = _Parts()
    parser = MultipartParser(boundary, parts.callbacks())
    path = bytearray()
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)  # noqa: SIM115 - lives on in the iterator
    seen_file = False
    path_done = False
    ended = False

    def take_events() -> list[bytes]:
        """Apply parsed events; returns file chunks that may go straight out."""
        nonlocal seen_file, path_done, ended
        out: list[bytes] = []
        for name, data in parts.events:
            if name == "path" and not path_done:
                path.extend(data)
                if len(path) > MAX_PATH_FIELD_BYTES:
                    raise InvalidRequest("the `path` field is too long")
            elif name == "file":
                if path and not seen_file:
                    path_done = True
                seen_file = True
                if path_done:
                    out.append(data)
                else:
                    spool.write(data)
            elif name == "end":
                ended = True
        parts.events.clear()
        return out

    ready: list[bytes] = []
    async for chunk in body:
        parser.write(chunk)
        ready += take_events()
        if path_done or ended:
            break
    if not path:
        spool.close()
        raise InvalidRequest("upload_file needs a `path` field")
    if not seen_file and ended:
        spool.close()
        raise InvalidRequest("upload_file needs a `file` part")
    path_done = True

    async def file_bytes() -> AsyncIterator[bytes]:
        try:
            spool.seek(0)
            while block := spool.read(1024 * 1024):
                yield block
            for block in ready:
                yield block
            if not ended:
                async for chunk in body:
                    parser.write(chunk)
                    for block in take_events():
                        yield block
            if not ended:
                # The body stopped before the closing boundary: the file may be cut short. Raising here
                # makes the writer discard it instead of replacing the existing file.
                raise InvalidRequest("the upload ended before the multipart closing boundary: file incomplete")
            if not seen_file:
                raise InvalidRequest("upload_file needs a `file` part")
        finally:
            spool.close()

    try:
        return path.decode("utf-8"), file_bytes()
    except UnicodeDecodeError:
        spool.close()
        raise InvalidRequest("the `path` field is not UTF-8") from None
