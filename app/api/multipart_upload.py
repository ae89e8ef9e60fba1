"""Streaming multipart/form-data for upload_file: the `file` part's bytes are handed on as they arrive,
so a 1 GiB upload never sits in the server's memory or in a temp file.

A small parser of our own rather than a general one: a part's data is found with bytes.find on whole
network reads, where a byte-at-a-time parser costs more CPU than the rest of the upload path.

Clients (httpx, the Runloop SDKs) send the `path` field before the `file` part, and the file as the last
part: the request's Content-Length then tells the file's size before its first byte (`size_hint`), which
lets the writer stream it into the container as a tar entry. If a client sends the file first, its bytes
are spooled (memory, then a temp file) until `path` is known.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO

from python_multipart.multipart import parse_options_header

from app.domain.errors import InvalidRequest

MAX_PATH_FIELD_BYTES = 8192
MAX_PART_HEADER_BYTES = 16 * 1024
SPOOL_IN_MEMORY_BYTES = 8 * 1024**2
SPOOL_READ_BYTES = 1024**2
TRUNCATED = "the upload ended before the multipart closing boundary: file incomplete"


@dataclass
class Upload:
    path: str
    chunks: AsyncIterator[bytes | memoryview]
    # The file's size if the message ends right after it the way clients end it (CRLF, closing delimiter,
    # CRLF); None when unknown. Only a hint: the writer copes with a file longer or shorter than this.
    size_hint: int | None


@dataclass
class _Part:
    name: str | None
    offset: int  # where the part's data starts in the body


class MultipartReader:
    """Parts of a multipart body, one after another: next_part() then the part's data() or skip()."""

    def __init__(self, body: AsyncIterator[bytes], boundary: bytes) -> None:
        self._body = body.__aiter__()
        self._delimiter = b"\r\n--" + boundary
        # The first delimiter may open the body without the CRLF that precedes every other one.
        self._buffer = b"\r\n"
        self._offset = -2  # body offset of the buffer's first byte
        self._in_data = False
        self._started = False
        self.ended = False  # the closing delimiter was read

    async def _more(self) -> bool:
        """Append the next network read to the buffer; False at the end of the body."""
        try:
            chunk = await anext(self._body)
        except StopAsyncIteration:
            return False
        self._buffer = self._buffer + chunk if self._buffer else chunk
        return True

    def _advance(self, count: int) -> None:
        self._buffer = self._buffer[count:]
        self._offset += count

    async def _find(self, needle: bytes, limit: int | None, what: str) -> int:
        """Index of `needle` in the buffer, reading more as needed (but at most `limit` bytes past it)."""
        start = 0
        while (index := self._buffer.find(needle, start)) < 0:
            if limit is not None and len(self._buffer) > limit:
                raise InvalidRequest(f"malformed multipart body: {what} too long")
            start = max(0, len(self._buffer) - len(needle) + 1)
            if not await self._more():
                raise InvalidRequest(TRUNCATED)
        if limit is not None and index > limit:
            raise InvalidRequest(f"malformed multipart body: {what} too long")
        return index

    async def next_part(self) -> _Part | None:
        """The next part's name, its data about to be read; None after the closing delimiter."""
        if self._in_data:
            await self.skip()
        if self.ended:
            return None
        if not self._started:  # skip the preamble up to the first delimiter
            self._started = True
            while (index := self._buffer.find(self._delimiter)) < 0:
                self._advance(max(0, len(self._buffer) - len(self._delimiter) + 1))
                if not await self._more():
                    raise InvalidRequest("malformed multipart body: no boundary found")
            self._advance(index + len(self._delimiter))
        while len(self._buffer) < 2:
            if not await self._more():
                raise InvalidRequest(TRUNCATED)
        if self._buffer.startswith(b"--"):
            self.ended = True
            return None
        line_end = await self._find(b"\r\n", MAX_PART_HEADER_BYTES, "boundary line")
        if self._buffer[:line_end].strip(b" \t"):
            raise InvalidRequest("malformed multipart body: text after a boundary")
        headers_end = await self._find(b"\r\n\r\n", MAX_PART_HEADER_BYTES, "part headers")
        name = None
        for line in self._buffer[line_end + 2 : headers_end].split(b"\r\n"):
            field, _, value = line.partition(b":")
            if field.strip().lower() == b"content-disposition":
                _, options = parse_options_header(value.strip())
                raw_name = options.get(b"name")
                name = raw_name.decode("utf-8", "replace") if raw_name is not None else None
        self._advance(headers_end + 4)
        self._in_data = True
        return _Part(name=name, offset=self._offset)

    async def data(self) -> AsyncIterator[bytes | memoryview]:
        """The current part's bytes as they arrive: the network reads themselves where they can be (almost
        always), else views of them. A read is copied only when the one before ended in what could be the
        start of a delimiter. Raises if the body ends inside them."""
        delimiter = self._delimiter
        while self._in_data:
            index = self._buffer.find(delimiter)
            piece: bytes | memoryview
            if index >= 0:
                piece = memoryview(self._buffer)[:index]
                self._advance(index + len(delimiter))
                self._in_data = False
                if piece:
                    yield piece
                return
            hold = _delimiter_start(self._buffer, delimiter)
            if len(self._buffer) > hold:
                piece = memoryview(self._buffer)[:-hold] if hold else self._buffer
                self._advance(len(self._buffer) - hold)
                yield piece
            try:
                chunk = await anext(self._body)
            except StopAsyncIteration:
                raise InvalidRequest(TRUNCATED) from None
            # What was held back may be data after all: the next search sees it with the new read.
            self._buffer = self._buffer + chunk if self._buffer else chunk

    async def skip(self) -> None:
        async for _ in self.data():
            pass

    async def read_all(self, limit: int, what: str) -> bytes:
        value = bytearray()
        async for piece in self.data():
            value += piece
            if len(value) > limit:
                raise InvalidRequest(f"the `{what}` field is too long")
        return bytes(value)

    async def finish(self) -> None:
        """Read the parts left up to the closing delimiter: a body cut short raises (the file is incomplete)."""
        while await self.next_part() is not None:
            pass


async def stream_upload(content_type: str, content_length: int | None, body: AsyncIterator[bytes]) -> Upload:
    """Read the request until `path` is known; return it and the file's bytes as an iterator."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidRequest("upload_file takes multipart/form-data with a `path` field and a `file` part")
    reader = MultipartReader(body, boundary)
    closing = len(b"\r\n--" + boundary + b"--\r\n")
    path: bytes | None = None
    spool: IO[bytes] | None = None
    try:
        while (part := await reader.next_part()) is not None:
            if part.name == "path" and path is None:
                path = await reader.read_all(MAX_PATH_FIELD_BYTES, "path")
            elif part.name == "file" and spool is None:
                if path:
                    hint = None if content_length is None else max(0, content_length - part.offset - closing)
                    return Upload(_decode_path(path), _streamed(reader), hint)
                spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)  # noqa: SIM115 - closed below
                async for piece in reader.data():
                    spool.write(piece)
            else:
                await reader.skip()
        if not path:
            raise InvalidRequest("upload_file needs a `path` field")
        if spool is None:
            raise InvalidRequest("upload_file needs a `file` part")
        size = spool.tell()
        upload = Upload(_decode_path(path), _spooled(spool), size)
        spool = None  # the iterator closes it now
        return upload
    finally:
        if spool is not None:
            spool.close()


def _delimiter_start(buffer: bytes, delimiter: bytes) -> int:
    """How many bytes at the end of `buffer` (which does not hold all of `delimiter`) could be the start of
    `delimiter`: they wait for the next read. Usually none: that takes a CR within the last few bytes."""
    position = max(0, len(buffer) - len(delimiter) + 1)
    while (position := buffer.find(delimiter[:1], position)) >= 0:
        if delimiter.startswith(buffer[position:]):
            return len(buffer) - position
        position += 1
    return 0


def _decode_path(path: bytes) -> str:
    try:
        return path.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("the `path` field is not UTF-8") from None


async def _streamed(reader: MultipartReader) -> AsyncIterator[bytes | memoryview]:
    async for piece in reader.data():
        yield piece
    await reader.finish()


async def _spooled(spool: IO[bytes]) -> AsyncIterator[bytes | memoryview]:
    try:
        spool.seek(0)
        while block := spool.read(SPOOL_READ_BYTES):
            yield block
    finally:
        spool.close()
