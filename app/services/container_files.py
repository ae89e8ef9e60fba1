"""Files in and out of a running devbox.

Every operation runs inside the container as the devbox user, so written files belong to that user, the
kernel's permission checks apply (a symlink leads nowhere that user could not reach anyway) and nothing
can land outside the container. Bytes stream through the exec's stdin/stdout: the server never holds a
whole file, and no temp copy is made on the host.

A write goes to a temp name beside the target and is renamed into place only after every byte arrived,
so an interrupted upload never replaces the file that was there.
"""

from __future__ import annotations

import contextlib
import posixpath
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from app.domain.devbox import Devbox, LogEntry, container_name, now_ms
from app.domain.errors import BackendError, InvalidRequest, NotFound
from app.domain.statuses import LogSource
from app.drivers.base import SandboxDriver
from app.store.logs import LogStore

MAX_PATH_LENGTH = 4096
MAX_TEXT_READ_BYTES = 64 * 1024**2
WRITE_BATCH_BYTES = 1024 * 1024
# Exit codes of the check scripts below, chosen outside the range tools use.
_MISSING, _DIRECTORY, _UNREADABLE, _NO_PARENT, _UNWRITABLE = 44, 45, 46, 47, 48
_STAT = 'p="$1"; [ -e "$p" ] || exit 44; [ -d "$p" ] && exit 45; [ -r "$p" ] || exit 46; stat -L -c %s -- "$p"'
_WRITE_TEMP = (
    'p="$1"; t="$2"; [ -d "$p" ] && exit 45; mkdir -p -- "$(dirname -- "$p")" || exit 47; '
    'cat > "$t" || { rm -f -- "$t"; exit 48; }'
)
_COMMIT = 'mv -f -- "$2" "$1"'
_DISCARD = 'rm -f -- "$2"'


@dataclass
class Download:
    path: str
    size: int
    chunks: AsyncIterator[bytes]


def resolve_path(devbox: Devbox, path: str) -> str:
    """The absolute path a request names: relative paths are under the devbox user's home."""
    if not path or not path.strip():
        raise InvalidRequest("the file path is empty")
    if "\0" in path:
        raise InvalidRequest("the file path contains a NUL byte")
    if len(path) > MAX_PATH_LENGTH:
        raise InvalidRequest(f"the file path is longer than {MAX_PATH_LENGTH} characters")
    if path.endswith("/"):
        raise InvalidRequest(f"{path!r} names a directory, not a file")
    return posixpath.normpath(posixpath.join(devbox.home, path))


class ContainerFiles:
    """File I/O inside a devbox's container as its user; used by the API and by provisioning."""

    def __init__(self, logs: LogStore, driver: SandboxDriver) -> None:
        self._logs = logs
        self._driver = driver

    async def log(self, devbox_id: str, message: str, level: str = "info") -> None:
        await self._logs.append(
            LogEntry(
                devbox_id=devbox_id, timestamp_ms=now_ms(), source=LogSource.FILES.value, level=level, message=message
            )
        )

    async def _sh(self, devbox: Devbox, script: str, *args: str) -> tuple[int, str, str]:
        result = await self._driver.exec(
            container_name(devbox.id), ["sh", "-c", script, "sh", *args], user=devbox.username, workdir=devbox.home
        )
        return result.exit_code, result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")

    async def write_stream(self, devbox: Devbox, path: str, chunks: AsyncIterator[bytes]) -> int:
        """Write everything `chunks` yields to `path` (on a devbox already known to be running)."""
        target = resolve_path(devbox, path)
        folder, name = posixpath.split(target)
        temp = posixpath.join(folder, f".{name}.devboxd-{uuid.uuid4().hex[:12]}")
        writer = await self._driver.exec_with_stdin(
            container_name(devbox.id),
            ["sh", "-c", _WRITE_TEMP, "sh", target, temp],
            user=devbox.username,
            workdir=devbox.home,
        )
        size = 0
        try:
            pending: list[bytes] = []  # one thread hop per ~1 MiB, not per network read
            pending_size = 0
            async for chunk in chunks:
                size += len(chunk)
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= WRITE_BATCH_BYTES:
                    await writer.write(b"".join(pending))
                    pending, pending_size = [], 0
            if pending:
                await writer.write(b"".join(pending))
        except BaseException:
            await writer.abort()
            with contextlib.suppress(BackendError):  # the container may be gone: nothing left to clean then
                await self._sh(devbox, _DISCARD, target, temp)
            raise
        result = await writer.close()
        err = result.stderr.decode(errors="replace").strip()
        if result.exit_code == _DIRECTORY:
            raise InvalidRequest(f"{target} is a directory")
        if result.exit_code != 0:  # _NO_PARENT, _UNWRITABLE or anything else
            await self._sh(devbox, _DISCARD, target, temp)
            raise InvalidRequest(
                f"cannot write {target} as {devbox.username}: {err or 'exit ' + str(result.exit_code)}"
            )
        code, _, err = await self._sh(devbox, _COMMIT, target, temp)
        if code != 0:
            await self._sh(devbox, _DISCARD, target, temp)
            raise InvalidRequest(f"cannot write {target} as {devbox.username}: {err.strip()}")
        await self.log(devbox.id, f"wrote {target} ({size} bytes)")
        return size

    async def write_bytes(self, devbox: Devbox, path: str, data: bytes) -> int:
        async def one_chunk() -> AsyncIterator[bytes]:
            yield data

        return await self.write_stream(devbox, path, one_chunk())

    async def size_of(self, devbox: Devbox, target: str) -> int:
        code, out, err = await self._sh(devbox, _STAT, target)
        if code == _MISSING:
            raise NotFound(f"file {target} not found on devbox {devbox.id}")
        if code == _DIRECTORY:
            raise InvalidRequest(f"{target} is a directory, not a file")
        if code == _UNREADABLE:
            raise InvalidRequest(f"{target} is not readable by {devbox.username}")
        if code != 0:
            raise InvalidRequest(f"cannot read {target}: {err.strip()}")
        return int(out.strip())

    def read_stream(self, devbox: Devbox, target: str) -> AsyncIterator[bytes]:
        return self._driver.exec_stdout(
            container_name(devbox.id), ["cat", "--", target], user=devbox.username, workdir=devbox.home
        )
