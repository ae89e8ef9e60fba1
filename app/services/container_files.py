"""Files in and out of a running devbox.

Every operation runs inside the container as the devbox user, so written files belong to that user, the
kernel's permission checks apply (a symlink leads nowhere that user could not reach anyway) and nothing
can land outside the container. The checks, and files under ARCHIVE_MIN_BYTES, go through the devbox's
agent channel (a fork in the container, a few ms; `docker exec`, ~50 ms here, where the channel is not
open). Larger bytes stream through an exec's stdin/stdout: the server never holds a whole file, and no
temp copy is made on the host. A large upload of known size goes into a temp file the user created
instead (same owner, mode and permission checks), written by the server itself from this host where the
driver can open that file (a local engine), else through the engine as a tar entry (as `docker cp` does).

A write goes to a temp name beside the target and is renamed into place only after every byte arrived,
so an interrupted upload never replaces the file that was there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import posixpath
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import NoReturn

from app.domain.devbox import Devbox, LogEntry, container_name, now_ms
from app.domain.errors import BackendError, InvalidRequest, NotFound
from app.domain.limits import PATH_MAX
from app.domain.statuses import LogSource
from app.drivers.base import ExecResult, FileSink, SandboxDriver
from app.services.agent_channel import AgentChannels
from app.store.logs import LogStore

log = logging.getLogger(__name__)
MAX_TEXT_READ_BYTES = 64 * 1024**2
WRITE_BATCH_BYTES = 1024 * 1024
# Smaller files go through the agent channel, whole (or an exec's stdin / stdout), not the engine's archive.
ARCHIVE_MIN_BYTES = 1024 * 1024
# A replaced file at least this big is removed after the answer (see _COMMIT).
FREE_LATER_BYTES = 64 * 1024**2
# Exit codes of the check scripts below, chosen outside the range tools use.
_MISSING, _DIRECTORY, _UNREADABLE, _NO_PARENT, _UNWRITABLE, _CHANGED = 44, 45, 46, 47, 48, 49
# The size, then (for a regular file) its path with every symlink resolved: what read_file may fetch.
_STAT = (
    'p="$1"; [ -e "$p" ] || exit 44; [ -d "$p" ] && exit 45; [ -r "$p" ] || exit 46; stat -L -c %s -- "$p"; '
    'if [ -f "$p" ]; then readlink -f -- "$p"; fi'
)
_WRITE_TEMP = (
    'p="$1"; t="$2"; [ -d "$p" ] && exit 45; mkdir -p -- "$(dirname -- "$p")" || exit 47; '
    'cat > "$t" || { rm -f -- "$t"; exit 48; }'
)
# The user creates the (empty) temp file and tells what writing it from outside needs: uid, gid, mode, inode,
# real folder.
_PREPARE = (
    'p="$1"; t="$2"; [ -d "$p" ] && exit 45; mkdir -p -- "$(dirname -- "$p")" || exit 47; '
    ': > "$t" || exit 48; cd -P -- "$(dirname -- "$t")" || exit 48; '
    'echo "$(id -u) $(id -g) $(stat -c "%a %i" -- "$t")"; pwd -P'
)
_APPEND = 'cat >> "$2" || exit 48'
_TRUNCATE = 'truncate -s "$3" -- "$2"'
# The size the user sees is checked before the rename: what the engine wrote is what arrived. A large file
# being replaced is first linked aside ($4) when it is at least $5 bytes: freeing a GiB of blocks and cached
# pages takes the kernel a few hundred ms, which the answer need not wait for (see _free_later).
_COMMIT = (
    '[ "$(stat -c %s -- "$2")" = "$3" ] || exit 49; a=""; '
    'if [ -f "$1" ] && [ ! -L "$1" ] && [ "$(stat -c %s -- "$1")" -ge "$5" ] && ln -- "$1" "$4" 2>/dev/null; '
    "then a=1; fi; "
    'mv -f -- "$2" "$1" || { [ -n "$a" ] && rm -f -- "$4"; exit 1; }; '
    'if [ -n "$a" ]; then echo aside; fi'
)
_DISCARD = 'rm -f -- "$2"'


async def _batches(chunks: AsyncIterator[bytes | memoryview]) -> AsyncIterator[bytes]:
    """`chunks` regrouped into ~WRITE_BATCH_BYTES buffers: one hand-off per MiB, not per network read."""
    pending: list[bytes | memoryview] = []
    pending_size = 0
    async for chunk in chunks:
        pending.append(chunk)
        pending_size += len(chunk)
        if pending_size >= WRITE_BATCH_BYTES:
            yield b"".join(pending)  # a lone bytes object comes back as is
            pending, pending_size = [], 0
    if pending:
        yield b"".join(pending)


def _zeros(count: int) -> Iterator[bytes]:
    block = bytes(min(count, WRITE_BATCH_BYTES))
    while count > 0:
        yield block if count >= len(block) else block[:count]
        count -= len(block)


@dataclass(frozen=True)
class Located:
    """A file as its user sees it: its size; for a regular file, its path with every symlink resolved; and
    the path the engine can stream it from (a large regular file the engine sees the same), if any."""

    size: int
    regular_path: str | None
    engine_path: str | None


async def _gather(chunks: AsyncIterator[bytes | memoryview], limit: int) -> tuple[bytes, bool]:
    """Up to about `limit` bytes of `chunks` joined; True if that was all of them."""
    gathered = bytearray()
    async for chunk in chunks:
        gathered += chunk
        if len(gathered) >= limit:
            return bytes(gathered), False
    return bytes(gathered), True


async def _prefixed(head: bytes, rest: AsyncIterator[bytes | memoryview]) -> AsyncIterator[bytes | memoryview]:
    yield head
    async for chunk in rest:
        yield chunk


@dataclass
class Download:
    path: str
    size: int
    chunks: AsyncIterator[bytes | memoryview]


def resolve_path(devbox: Devbox, path: str) -> str:
    """The absolute path a request names: relative paths are under the devbox user's home."""
    if not path or not path.strip():
        raise InvalidRequest("the file path is empty")
    if "\0" in path:
        raise InvalidRequest("the file path contains a NUL byte")
    if len(path) > PATH_MAX:
        raise InvalidRequest(f"the file path is longer than {PATH_MAX} characters")
    if path.endswith("/"):
        raise InvalidRequest(f"{path!r} names a directory, not a file")
    return posixpath.normpath(posixpath.join(devbox.home, path))


class ContainerFiles:
    """File I/O inside a devbox's container as its user; used by the API and by provisioning."""

    def __init__(self, logs: LogStore, driver: SandboxDriver, channels: AgentChannels) -> None:
        self._logs = logs
        self._driver = driver
        self._channels = channels
        self._freeing: set[asyncio.Task[None]] = set()

    async def log(self, devbox_id: str, message: str, level: str = "info") -> None:
        await self._logs.append(
            LogEntry(
                devbox_id=devbox_id, timestamp_ms=now_ms(), source=LogSource.FILES.value, level=level, message=message
            )
        )

    async def _tool(self, devbox: Devbox, argv: list[str], stdin: bytes | None = None) -> ExecResult:
        """A short program as the devbox user in their home, with `stdin` as its whole input: through the
        agent channel when it is open, else a `docker exec`."""
        result = await self._channels.run_program(devbox.id, argv, devbox.username, devbox.home, stdin)
        if result is not None:
            return result
        container = container_name(devbox.id)
        if stdin is None:
            return await self._driver.exec(container, argv, user=devbox.username, workdir=devbox.home)
        writer = await self._driver.exec_with_stdin(container, argv, user=devbox.username, workdir=devbox.home)
        try:
            await writer.write(stdin)
        except BaseException:
            await writer.abort()
            raise
        return await writer.close()

    async def _sh(self, devbox: Devbox, script: str, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
        result = await self._tool(devbox, ["sh", "-c", script, "sh", *args], stdin)
        return result.exit_code, result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")

    async def write_stream(
        self, devbox: Devbox, path: str, chunks: AsyncIterator[bytes | memoryview], size_hint: int | None = None
    ) -> int:
        """Write everything `chunks` yields to `path` (on a devbox already known to be running).

        `size_hint`, the size the file is expected to have, lets a large file go in through the engine
        as a tar entry (put_file), which costs far less CPU than an exec's stdin; a file that turns out
        longer or shorter than the hint is still written exactly."""
        target = resolve_path(devbox, path)
        folder, name = posixpath.split(target)
        temp = posixpath.join(folder, f".{name}.devboxd-{uuid.uuid4().hex[:12]}")
        size: int | None = None
        if size_hint is not None and size_hint >= ARCHIVE_MIN_BYTES:
            size = await self._write_temp_large(devbox, target, temp, chunks, size_hint)
        if size is None:
            size = await self._write_temp_through_stdin(devbox, target, temp, chunks)
        old = posixpath.join(folder, f".{name}.devboxd-{uuid.uuid4().hex[:12]}.old")
        code, out, err = await self._sh(devbox, _COMMIT, target, temp, str(size), old, str(FREE_LATER_BYTES))
        if code != 0:
            await self._sh(devbox, _DISCARD, target, temp)
            if code == _CHANGED:
                err = f"the temp file {temp} changed while it was written"
            raise InvalidRequest(f"cannot write {target} as {devbox.username}: {err.strip()}")
        if out.strip() == "aside":
            self._free_later(devbox, target, old)
        await self.log(devbox.id, f"wrote {target} ({size} bytes)")
        return size

    def _free_later(self, devbox: Devbox, target: str, old: str) -> None:
        """Remove the replaced version (linked aside by _COMMIT) once the answer is on its way."""

        async def remove() -> None:
            try:
                await self._sh(devbox, _DISCARD, target, old)
            except BackendError as exc:  # the devbox went away meanwhile: its disk goes with it or keeps a
                log.warning("could not remove %s on %s: %s", old, devbox.id, exc)  # hidden file

        task = asyncio.get_running_loop().create_task(remove())
        self._freeing.add(task)
        task.add_done_callback(self._freeing.discard)

    async def _write_temp_through_stdin(
        self, devbox: Devbox, target: str, temp: str, chunks: AsyncIterator[bytes | memoryview]
    ) -> int:
        """A small file goes in whole, in one program run; a larger one streams through an exec's stdin."""
        head, whole = await _gather(chunks, ARCHIVE_MIN_BYTES)
        if whole:
            code, _, err = await self._sh(devbox, _WRITE_TEMP, target, temp, stdin=head)
            if code != 0:
                await self._refuse(devbox, target, temp, code, err)
            return len(head)
        chunks = _prefixed(head, chunks)
        writer = await self._driver.exec_with_stdin(
            container_name(devbox.id),
            ["sh", "-c", _WRITE_TEMP, "sh", target, temp],
            user=devbox.username,
            workdir=devbox.home,
        )
        size = 0
        try:
            async for batch in _batches(chunks):
                size += len(batch)
                await writer.write(batch)
        except BaseException:
            await writer.abort()
            await self._discard(devbox, target, temp)
            raise
        result = await writer.close()
        if result.exit_code != 0:
            await self._refuse(devbox, target, temp, result.exit_code, result.stderr.decode(errors="replace"))
        return size

    async def _write_temp_large(
        self, devbox: Devbox, target: str, temp: str, chunks: AsyncIterator[bytes | memoryview], size_hint: int
    ) -> int | None:
        """The temp file written from this host where the driver can open it (open_created_file), else
        through put_file; None (nothing read from `chunks`) where neither reaches the file the devbox user
        sees.

        The user creates the temp file first, so the kernel checks the user's rights and the file's mode
        follows the user's umask; the bytes then go into that file, which stays the user's."""
        code, out, err = await self._sh(devbox, _PREPARE, target, temp)
        if code != 0:
            await self._refuse(devbox, target, temp, code, err)
        ids, _, real_folder = out.partition("\n")
        real_folder = real_folder.removesuffix("\n")
        real_name = posixpath.basename(temp)
        container = container_name(devbox.id)
        try:
            uid, gid, mode, inode = (int(field, base) for field, base in zip(ids.split(), (10, 10, 8, 10), strict=True))
        except ValueError:  # an image without GNU stat, ...: the slower path still works
            return None
        sink = await self._driver.open_created_file(container, real_folder, real_name, inode, uid)
        if sink is not None:
            return await self._write_temp_from_host(devbox, target, temp, sink, chunks)
        try:
            seen = await self._driver.engine_file_size(container, posixpath.join(real_folder, real_name))
        except BackendError:
            seen = None
        if seen != 0:  # a mount made inside the devbox, a sandboxed runtime: the engine would miss the file
            return None
        return await self._write_temp_through_engine(
            devbox, target, temp, chunks, size_hint, (real_folder, real_name, mode, uid, gid)
        )

    async def _write_temp_from_host(
        self, devbox: Devbox, target: str, temp: str, sink: FileSink, chunks: AsyncIterator[bytes | memoryview]
    ) -> int:
        written = 0
        try:
            async for piece in chunks:  # as they came off the network: the sink writes them uncopied
                await sink.write(piece)
                written += len(piece)
            await sink.close()
        except BaseException:
            await sink.abort()
            await self._discard(devbox, target, temp)
            raise
        return written

    async def _write_temp_through_engine(
        self,
        devbox: Devbox,
        target: str,
        temp: str,
        chunks: AsyncIterator[bytes | memoryview],
        size_hint: int,
        prepared: tuple[str, str, int, int, int],
    ) -> int:
        """The temp file as a tar entry of `size_hint` bytes (put_file), replacing the user's empty one with
        the same owner and mode. Bytes past the hint go on through an exec's stdin; a file shorter than the
        hint is padded, then truncated."""
        real_folder, real_name, mode, uid, gid = prepared
        container = container_name(devbox.id)
        sink = await self._driver.put_file(container, real_folder, real_name, size_hint, mode, uid, gid)
        sink_open = True
        tail = None  # bytes past the hint: appended through an exec's stdin
        written = 0
        try:
            async for piece in chunks:  # as they came off the network: the sink sends them on uncopied
                if sink_open:
                    head = piece[: size_hint - written] if written + len(piece) > size_hint else piece
                    await sink.write(head)
                    written += len(head)
                    piece = piece[len(head) :]
                    if written == size_hint:
                        sink_open = False
                        await sink.close()
                if piece:
                    if tail is None:
                        tail = await self._driver.exec_with_stdin(
                            container, ["sh", "-c", _APPEND, "sh", target, temp], user=devbox.username
                        )
                    written += len(piece)
                    await tail.write(bytes(piece))
            if sink_open:  # shorter than the hint: pad the entry, then cut the file to size
                for padding in _zeros(size_hint - written):
                    await sink.write(padding)
                sink_open = False
                await sink.close()
                code, _, err = await self._sh(devbox, _TRUNCATE, target, temp, str(written))
                if code != 0:
                    raise InvalidRequest(f"cannot write {target} as {devbox.username}: {err.strip()}")
            if tail is not None:
                result, tail = await tail.close(), None
                if result.exit_code != 0:
                    await self._refuse(devbox, target, temp, result.exit_code, result.stderr.decode(errors="replace"))
        except BaseException:
            if sink_open:
                await sink.abort()
            if tail is not None:
                await tail.abort()
            await self._discard(devbox, target, temp)
            raise
        return written

    async def _discard(self, devbox: Devbox, target: str, temp: str) -> None:
        with contextlib.suppress(BackendError):  # the container may be gone: nothing left to clean then
            await self._sh(devbox, _DISCARD, target, temp)

    async def _refuse(self, devbox: Devbox, target: str, temp: str, code: int, err: str) -> NoReturn:
        """Raise the 4xx a failed temp-file write means; the temp file is removed first."""
        if code == _DIRECTORY:
            raise InvalidRequest(f"{target} is a directory")
        await self._sh(devbox, _DISCARD, target, temp)  # _NO_PARENT, _UNWRITABLE or anything else
        raise InvalidRequest(f"cannot write {target} as {devbox.username}: {err.strip() or 'exit ' + str(code)}")

    async def write_bytes(self, devbox: Devbox, path: str, data: bytes) -> int:
        async def one_chunk() -> AsyncIterator[bytes]:
            yield data

        return await self.write_stream(devbox, path, one_chunk())

    async def locate(self, devbox: Devbox, target: str) -> Located:
        """The file as its user sees it, refusing what that user may not read."""
        code, out, err = await self._sh(devbox, _STAT, target)
        if code == _MISSING:
            raise NotFound(f"file {target} not found on devbox {devbox.id}")
        if code == _DIRECTORY:
            raise InvalidRequest(f"{target} is a directory, not a file")
        if code == _UNREADABLE:
            raise InvalidRequest(f"{target} is not readable by {devbox.username}")
        if code != 0:
            raise InvalidRequest(f"cannot read {target}: {err.strip()}")
        size_line, _, real_path = out.partition("\n")
        size = int(size_line.strip())
        real_path = real_path.removesuffix("\n")
        regular = real_path if real_path.startswith("/") else None
        if size < ARCHIVE_MIN_BYTES or regular is None:
            return Located(size, regular, None)
        try:
            seen = await self._driver.engine_file_size(container_name(devbox.id), regular)
        except BackendError:
            seen = None
        return Located(size, regular, regular if seen == size else None)

    def read_stream(self, devbox: Devbox, target: str, located: Located) -> AsyncIterator[bytes]:
        """The file's bytes: through the engine where locate() allows; a small regular file whole, in one
        short program run (_tool); else streamed by `cat` run as the devbox user."""
        if located.engine_path is not None:
            return self._driver.read_file(container_name(devbox.id), located.engine_path, located.size)
        if located.regular_path is not None and located.size < ARCHIVE_MIN_BYTES:
            return self._read_small(devbox, target, located.size)
        return self._driver.exec_stdout(
            container_name(devbox.id), ["cat", "--", target], user=devbox.username, workdir=devbox.home
        )

    async def _read_small(self, devbox: Devbox, target: str, size: int) -> AsyncIterator[bytes]:
        # At most the located size: a growing file must not outrun the length the answer announced.
        # Size 0 may be a kernel file whose size says nothing (/proc/...): read it whole, up to what
        # read_file_contents could answer.
        result = await self._tool(devbox, ["head", "-c", str(size or MAX_TEXT_READ_BYTES + 1), "--", target])
        if result.exit_code != 0:
            raise BackendError(f"exited with status {result.exit_code}: {result.stderr.decode(errors='replace')}")
        if result.stdout:
            yield result.stdout
