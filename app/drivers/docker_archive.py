"""The engine's archive endpoints (PUT and GET /containers/{id}/archive, what `docker cp` uses) spoken over
the engine's socket from the event loop, for large files.

docker-py can only make these requests from a thread, fed (or drained) through a queue, with each buffer
joined and copied on the way. Here the request is written and the answer read with non-blocking socket
calls on the event loop: an upload's buffers go to the engine's socket as they came from the client
(several at once with sendmsg), a download's reads go to the client as they came from the engine.

Requests are HTTP/1.0, so the engine answers without chunked framing (the body ends with the connection)
and a download's body is the tar stream itself; a chunked answer is still understood. Only plain
endpoints (a unix socket, TCP without TLS) are spoken to this way: the driver leaves the others (TLS,
ssh) to docker-py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import tarfile
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from docker.transport import UnixHTTPAdapter

from app.domain.errors import BackendError, ContainerGone
from app.drivers.buffers import advance, views_of

# No single socket operation waits longer than docker-py's timeout in the driver.
ENGINE_IO_TIMEOUT_SECONDS = 120.0
CONNECT_TIMEOUT_SECONDS = 10.0
# How long an aborted upload waits for the engine to give up on it (so nothing lands after the clean-up).
ABORT_WAIT_SECONDS = 30.0
# How long a failed upload waits for the engine's answer, which says why it failed.
ANSWER_AFTER_ERROR_SECONDS = 5.0
RECV_BYTES = 1024 * 1024
# An upload's socket buffer: a network read from the client (256 KiB) fits at once, so most go out in one
# sendmsg with no wait for the socket to drain (the default, ~200 KiB, took ~2.6 calls per read).
SEND_BUFFER_BYTES = 4 * 1024 * 1024
MAX_HEAD_BYTES = 64 * 1024
MAX_ERROR_BODY_BYTES = 64 * 1024
# An upload's pieces smaller than this wait for the next one and go out with it, in one sendmsg.
SMALL_WRITE_BYTES = 64 * 1024
_EXTENDED = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)


@dataclass(frozen=True)
class EngineAddress:
    """Where the engine listens, when it is a plain socket: a unix socket's path, or a TCP host and port."""

    version: str
    unix_path: str | None = None
    host: str = ""
    port: int = 0

    @classmethod
    def of(cls, api: Any) -> EngineAddress | None:
        """The address docker-py's APIClient `api` talks to; None for what only docker-py speaks (TLS, ssh)."""
        adapter = getattr(api, "_custom_adapter", None)
        version = str(api._version)
        if isinstance(adapter, UnixHTTPAdapter):
            return cls(version, unix_path=adapter.socket_path)
        url = urlsplit(str(api.base_url))
        if adapter is None and url.scheme == "http" and url.hostname:
            return cls(version, host=url.hostname, port=url.port or 80)
        return None

    async def connect(self) -> socket.socket:
        """A connected non-blocking socket to the engine."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                if self.unix_path is not None:
                    return await _connected(loop, socket.AF_UNIX, self.unix_path)
                error: OSError = OSError(f"no address for {self.host}")
                for family, _, _, _, address in await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM):
                    try:
                        sock = await _connected(loop, family, address)
                    except OSError as exc:
                        error = exc
                        continue
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    return sock
                raise error
        except OSError as exc:  # TimeoutError included
            raise BackendError(f"Docker engine unavailable: {exc or type(exc).__name__}") from exc

    def request(self, method: str, container_id: str, path: str, headers: list[str]) -> bytes:
        """The head of an HTTP/1.0 request to the container's archive endpoint for `path`."""
        target = f"/v{self.version}/containers/{quote(container_id, safe='')}/archive?{urlencode({'path': path})}"
        return "\r\n".join([f"{method} {target} HTTP/1.0", "Host: docker", *headers, "", ""]).encode("ascii")


async def _connected(loop: asyncio.AbstractEventLoop, family: int, address: Any) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        with contextlib.suppress(OSError):  # the kernel caps it at net.core.wmem_max
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


# ----- tar entries -------------------------------------------------------------------------------------


def tar_header(name: str, size: int, mode: int, uid: int, gid: int) -> bytes:
    entry = tarfile.TarInfo(name)
    entry.size, entry.mode, entry.uid, entry.gid, entry.mtime = size, mode, uid, gid, time.time()
    return entry.tobuf(format=tarfile.PAX_FORMAT)


def tar_trailer(size: int) -> bytes:
    """What follows a `size`-byte entry's data: its padding, then the two zero blocks ending the archive."""
    return bytes(-size % tarfile.BLOCKSIZE + 2 * tarfile.BLOCKSIZE)


def tar_entry_start(head: bytes) -> tuple[int, int] | None:
    """Where the first file's data starts in a tar stream beginning with `head`, and that file's size;
    None while `head` does not hold all its headers yet. Extended headers (PAX records, GNU long names)
    come first when the name or size needs them."""
    offset = 0
    pax_size: int | None = None
    while len(head) >= offset + tarfile.BLOCKSIZE:
        try:
            entry = tarfile.TarInfo.frombuf(head[offset : offset + tarfile.BLOCKSIZE], "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise BackendError(f"unreadable archive from the engine: {exc}") from exc
        offset += tarfile.BLOCKSIZE
        if entry.type not in _EXTENDED:
            if entry.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
                raise BackendError(f"{entry.name} is not a regular file")
            return offset, entry.size if pax_size is None else pax_size
        end = offset + entry.size + -entry.size % tarfile.BLOCKSIZE
        if len(head) < end:
            return None
        if entry.type == tarfile.XHDTYPE:
            pax_size = _pax_size(head[offset : offset + entry.size], pax_size)
        offset = end
    return None


def _pax_size(records: bytes, default: int | None) -> int | None:
    """The `size` among PAX records ("<length> <key>=<value>\\n" each), if there is one."""
    position = 0
    while position < len(records):
        length = int(records[position : records.index(b" ", position)])
        key, _, value = records[records.index(b" ", position) + 1 : position + length - 1].partition(b"=")
        if key == b"size":
            return int(value)
        position += length
    return default


# ----- HTTP on the socket ------------------------------------------------------------------------------


@dataclass
class _Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    rest: bytes  # body bytes that came with the head


async def _recv(sock: socket.socket) -> bytes:
    try:
        async with asyncio.timeout(ENGINE_IO_TIMEOUT_SECONDS):
            return await asyncio.get_running_loop().sock_recv(sock, RECV_BYTES)
    except TimeoutError:
        raise BackendError("the Docker engine did not answer in time") from None
    except OSError as exc:
        raise BackendError(f"the connection to the Docker engine failed: {exc}") from exc


async def _read_head(sock: socket.socket) -> _Answer:
    buffer = b""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        if len(buffer) > MAX_HEAD_BYTES:
            raise BackendError("the Docker engine's answer has no end of headers")
        data = await _recv(sock)
        if not data:
            raise BackendError("the Docker engine closed the connection without answering")
        buffer += data
    status_line, *lines = buffer[:end].decode("latin-1").split("\r\n")
    try:
        status = int(status_line.split(" ", 2)[1])
    except (IndexError, ValueError):
        raise BackendError(f"unreadable answer from the Docker engine: {status_line[:100]!r}") from None
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return _Answer(status, headers, buffer[end + 4 :])


async def _body(sock: socket.socket, answer: _Answer) -> AsyncIterator[bytes]:
    """The answer's body as it arrives, unframed: up to Content-Length, else to the end of the connection."""
    if "chunked" in answer.headers.get("transfer-encoding", "").lower():
        async for piece in _dechunked(sock, answer.rest):
            yield piece
        return
    length = answer.headers.get("content-length", "")
    left = int(length) if length.isdigit() else None
    data = answer.rest
    while True:
        if left is not None:
            data = data[:left]
            left -= len(data)
        if data:
            yield data
        if left == 0:
            return
        data = await _recv(sock)
        if not data:
            if left:
                raise BackendError("the Docker engine's answer ended early")
            return


async def _dechunked(sock: socket.socket, buffered: bytes) -> AsyncIterator[bytes]:
    buffer = buffered

    async def more() -> bytes:
        data = await _recv(sock)
        if not data:
            raise BackendError("the Docker engine's answer ended early")
        return buffer + data

    while True:
        while (line_end := buffer.find(b"\r\n")) < 0:
            buffer = await more()
        try:
            size = int(buffer[:line_end].split(b";")[0], 16)
        except ValueError:
            raise BackendError("unreadable chunked answer from the Docker engine") from None
        buffer = buffer[line_end + 2 :]
        if size == 0:
            return  # trailers, if any, are not needed
        while size:
            if not buffer:
                buffer = await more()
            piece, buffer = buffer[:size], buffer[size:]
            size -= len(piece)
            yield piece
        while len(buffer) < 2:
            buffer = await more()
        buffer = buffer[2:]


async def _collect(body: AsyncIterator[bytes], limit: int) -> bytes:
    data = b""
    async for piece in body:
        data += piece
        if len(data) >= limit:
            break
    return data[:limit]


async def _read_answer(sock: socket.socket) -> tuple[int, bytes]:
    answer = await _read_head(sock)
    return answer.status, await _collect(_body(sock, answer), MAX_ERROR_BODY_BYTES)


def _engine_error(status: int, body: bytes) -> BackendError:
    """What an engine's error answer means: its {"message": ...}, as docker-py's errors carry it."""
    try:
        message = str(json.loads(body)["message"])
    except (ValueError, KeyError, TypeError):
        message = body.decode(errors="replace").strip()[:500] or f"HTTP {status}"
    return ContainerGone(message) if status == 404 else BackendError(message)


# ----- download ----------------------------------------------------------------------------------------


async def read_archive_file(
    address: EngineAddress, container_id: str, path: str, size: int
) -> AsyncGenerator[bytes, None]:
    """The regular file `path`, exactly `size` bytes of it (GET .../archive), as the engine's socket gives
    them; BackendError if it is not that size (any more)."""
    sock = await address.connect()
    try:
        try:
            await _send_all(sock, [address.request("GET", container_id, path, [])])
        except OSError as exc:  # TimeoutError included
            raise BackendError(f"the connection to the Docker engine failed: {exc}") from exc
        answer = await _read_head(sock)
        body = _body(sock, answer)
        if answer.status != 200:
            raise _engine_error(answer.status, await _collect(body, MAX_ERROR_BODY_BYTES))
        head = b""
        entry = None
        async for piece in body:
            head += piece
            if (entry := tar_entry_start(head)) is not None:
                break
        if entry is None:
            raise BackendError("the engine's archive ended early")
        offset, found = entry
        if found != size:
            raise BackendError(f"{path} is {found} bytes now, not {size}: it changed while being read")
        left = size
        piece = head[offset:]
        while len(piece) < left:
            if piece:
                left -= len(piece)
                yield piece
            piece = await anext(body, b"")
            if not piece:
                raise BackendError("the engine's archive ended early")
        if left:
            yield piece[:left]  # what follows is the entry's padding and the end of the archive
    finally:
        sock.close()


# ----- upload ------------------------------------------------------------------------------------------


async def _send_all(sock: socket.socket, buffers: list[Any]) -> None:
    """Write every buffer, in order, with as few sendmsg calls as the socket allows; no copies."""
    loop = asyncio.get_running_loop()
    views = views_of(buffers)
    async with asyncio.timeout(ENGINE_IO_TIMEOUT_SECONDS):
        while views:
            try:
                sent = sock.sendmsg(views)
            except (BlockingIOError, InterruptedError):
                await _writable(loop, sock)
                continue
            advance(views, sent)


async def _writable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(sock.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_writer(sock.fileno())


class EngineArchiveWriter:
    """One file of a known size streamed into a container as a tar entry (PUT .../archive), written to the
    engine's socket from the event loop as the caller's buffers come."""

    def __init__(self, sock: socket.socket, size: int, pending: bytes) -> None:
        self._sock = sock
        self._size = size
        self._written = 0
        self._pending = bytearray(pending)  # small pieces, sent with the next big one
        self._trailer = tar_trailer(size)
        self._finished = False

    @classmethod
    async def open(
        cls,
        address: EngineAddress,
        container_id: str,
        directory: str,
        name: str,
        size: int,
        mode: int,
        uid: int,
        gid: int,
    ) -> EngineArchiveWriter:
        header = tar_header(name, size, mode, uid, gid)
        length = len(header) + size + len(tar_trailer(size))
        head = address.request(
            "PUT", container_id, directory, ["Content-Type: application/x-tar", f"Content-Length: {length}"]
        )
        return cls(await address.connect(), size, head + header)

    async def write(self, data: bytes | memoryview) -> None:
        if self._written + len(data) > self._size:
            raise ValueError(f"more than the {self._size} bytes declared for the archive entry")
        self._written += len(data)
        if len(self._pending) + len(data) < SMALL_WRITE_BYTES:
            self._pending += data
            return
        buffers, self._pending = [self._pending, data], bytearray()
        await self._send(buffers)

    async def _send(self, buffers: list[Any]) -> None:
        try:
            await _send_all(self._sock, buffers)
        except TimeoutError:
            self._finish()
            raise BackendError("the Docker engine stopped reading the file") from None
        except OSError as exc:  # it answered and hung up (no such container or folder, say): its answer says why
            raise await self._failure(exc) from exc

    async def _failure(self, exc: OSError) -> BackendError:
        try:
            async with asyncio.timeout(ANSWER_AFTER_ERROR_SECONDS):
                status, body = await _read_answer(self._sock)
        except (BackendError, TimeoutError):
            status, body = 0, b""
        finally:
            self._finish()
        if status and status // 100 != 2:
            return _engine_error(status, body)
        return BackendError(f"writing into the container failed: {exc}")

    def _finish(self) -> None:
        self._finished = True
        self._sock.close()

    async def close(self) -> None:
        """Finish the archive and wait for the engine's answer; raises if it failed."""
        if self._written != self._size:
            await self.abort()
            raise ValueError(f"{self._written} bytes written for an archive entry of {self._size}")
        buffers, self._pending = [self._pending, self._trailer], bytearray()
        await self._send(buffers)
        try:
            status, body = await _read_answer(self._sock)
        finally:
            self._finish()
        if status // 100 != 2:
            raise _engine_error(status, body)

    async def abort(self) -> None:
        """Drop the request: the engine sees the archive end early and gives up on it (it keeps whatever
        part of the file it wrote). Its answer is awaited, so that it writes nothing after the caller's
        clean-up."""
        if self._finished:
            return
        try:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)
            with contextlib.suppress(BackendError, TimeoutError):
                async with asyncio.timeout(ABORT_WAIT_SECONDS):
                    await _read_answer(self._sock)
        finally:
            self._finish()
