"""A local container's files read and written from this host, through the container's root
(/proc/<pid>/root), past the engine.

A transfer through the engine's archive endpoint costs three programs' CPU on two cores: the server
framing (or unframing) a tar stream, the engine's socket and the engine's own tar work. When the engine
runs on this host and the server sees its processes (the embedded default: both on one machine), the
server can read or write the file itself: one copy between the client's socket and the page cache.

Every path is walked one name at a time from the container's root with no symlink followed and no `.` or
`..`, so nothing outside the container is reached. A write goes only to an empty file the devbox user has
just created: the same inode, a plain regular file with one link, owned by that user, with no set-id bit;
writing it as root then writes nothing the user could not have written. A read takes a regular file of the
size the user's own check saw (the caller checked the user may read it, as for the engine's way, which
reads as root too). Anything else (a remote engine, another PID namespace, a remapped user namespace, a
raced rename) gives None, and the caller takes the engine's way.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncGenerator
from concurrent.futures import Executor
from typing import Any

from app.domain.errors import BackendError
from app.drivers.buffers import advance, views_of

# Reads are this size (the answer's pieces), one under way while the last one is sent.
READ_BYTES = 1024 * 1024
# Writes leave the event loop in batches of about this size, one in flight while the next one gathers.
WRITE_BATCH_BYTES = 4 * 1024 * 1024
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO put in the file's place must not hang the open (the fstat checks refuse it after).
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


def _open_in_root(pid: int, path: str, flags: int) -> int | None:
    """`path` (absolute) opened with `flags` in the root of process `pid`, walked one name at a time with
    no symlink followed and no `.` or `..`; None if that fails. Blocking: call it on a thread."""
    folder, _, name = path.rpartition("/")
    parts = folder.split("/")
    if not path.startswith("/") or any(part in (".", "..") for part in parts) or name in ("", ".", ".."):
        return None
    try:
        directory = os.open(f"/proc/{pid}/root", _DIRECTORY_FLAGS & ~os.O_NOFOLLOW)  # the magic link itself
    except OSError:
        return None
    try:
        for part in parts:
            if part:
                inner = os.open(part, _DIRECTORY_FLAGS, dir_fd=directory)
                os.close(directory)
                directory = inner
        return os.open(name, flags | _FILE_FLAGS, dir_fd=directory)
    except (OSError, ValueError):  # ValueError: a NUL in a name
        return None
    finally:
        os.close(directory)


def open_created_file(pid: int, folder: str, name: str, inode: int, uid: int) -> int | None:
    """A write descriptor for `folder`/`name` in the root of process `pid`, if it is the empty file `inode`
    owned by `uid` (see the module's checks); None otherwise. Blocking: call it on a thread."""
    if "/" in name:
        return None
    fd = _open_in_root(pid, f"{folder.rstrip('/')}/{name}", os.O_WRONLY)
    if fd is None:
        return None
    info = os.fstat(fd)
    if (
        not stat.S_ISREG(info.st_mode)
        or info.st_ino != inode
        or info.st_uid != uid
        or info.st_nlink != 1
        or info.st_size != 0
        or info.st_mode & (stat.S_ISUID | stat.S_ISGID)
    ):
        os.close(fd)
        return None
    os.set_blocking(fd, True)
    return fd


def open_regular_file(pid: int, path: str, size: int) -> int | None:
    """A read descriptor for `path` in the root of process `pid`, if it is a regular file of `size` bytes;
    None otherwise. Blocking: call it on a thread."""
    fd = _open_in_root(pid, path, os.O_RDONLY)
    if fd is None:
        return None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size != size:
        os.close(fd)
        return None
    os.set_blocking(fd, True)
    return fd


def _write_all(fd: int, buffers: list[Any]) -> None:
    views = views_of(buffers)
    while views:
        advance(views, os.writev(fd, views))


class HostFileWriter:
    """A file written through a descriptor from open_created_file, on `pool`'s threads (page-cache writes
    can stall on writeback): the caller's buffers are passed on uncopied, one batch written while the next
    one gathers."""

    def __init__(self, fd: int, pool: Executor) -> None:
        self._fd: int | None = fd
        self._pool = pool
        self._batch: list[Any] = []
        self._batch_bytes = 0
        self._writing: asyncio.Future[None] | None = None

    async def write(self, data: bytes | memoryview) -> None:
        self._batch.append(data)
        self._batch_bytes += len(data)
        if self._batch_bytes >= WRITE_BATCH_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        await self._written()
        if self._fd is None:
            raise BackendError("the file was closed")
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        if batch:
            self._writing = asyncio.get_running_loop().run_in_executor(self._pool, _write_all, self._fd, batch)

    async def _written(self) -> None:
        """Wait for the batch in flight; its failure (a full disk, say) is the caller's."""
        writing, self._writing = self._writing, None
        if writing is None:
            return
        try:
            await asyncio.shield(writing)  # a cancelled caller must not mark it done while the thread writes
        except OSError as exc:
            self._release(None)
            raise BackendError(f"writing the file failed: {exc.strerror or exc}") from exc
        except BaseException:  # cancelled: the thread may still hold the descriptor
            self._release(writing)
            raise

    async def close(self) -> None:
        await self._flush()
        await self._written()
        self._release(None)

    async def abort(self) -> None:
        """Stop writing; what was written stays (the caller removes the temp file, by name: a batch still
        being written goes to the unlinked inode, freed with the descriptor)."""
        writing, self._writing = self._writing, None
        self._release(writing)

    def _release(self, writing: asyncio.Future[None] | None) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            _close_after(fd, writing)


def _close_after(fd: int, pending: asyncio.Future[Any] | None) -> None:
    """Close `fd` now, or once `pending` (a read or write on a thread) is done with it: closed under a running
    call, its number could be reused by another open and the call's next step would go there."""

    def closed(done: asyncio.Future[Any] | None) -> None:
        if done is not None and not done.cancelled():
            done.exception()  # retrieved: its failure no longer matters
        os.close(fd)

    if pending is None or pending.done():
        closed(pending)
    else:
        pending.add_done_callback(closed)


async def read_host_file(fd: int, size: int, pool: Executor) -> AsyncGenerator[bytes, None]:
    """Exactly `size` bytes of the file behind `fd` (from open_regular_file), read on `pool`'s threads, the
    next read under way while the caller sends the last one; closes `fd`. BackendError if the file ends
    early (it shrank while being read)."""
    loop = asyncio.get_running_loop()
    left = size
    reading: asyncio.Future[bytes] | None = None
    try:
        if left:
            reading = loop.run_in_executor(pool, os.read, fd, min(READ_BYTES, left))
        while reading is not None:
            data = await asyncio.shield(reading)
            reading = None
            if not data:
                raise BackendError(f"the file ended {left} bytes early: it shrank while being read")
            left -= len(data)
            if left:
                reading = loop.run_in_executor(pool, os.read, fd, min(READ_BYTES, left))
            yield data
    except OSError as exc:
        raise BackendError(f"reading the file failed: {exc.strerror or exc}") from exc
    finally:
        _close_after(fd, reading)
