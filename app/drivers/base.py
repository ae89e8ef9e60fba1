"""What the services need from a container backend. The Docker driver implements it; so does the
in-memory fake in tests/unit, for pure service-logic tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

LABEL_MANAGED = "dev.devboxd.managed"
LABEL_INSTANCE = "dev.devboxd.instance"
LABEL_DEVBOX = "dev.devboxd.devbox-id"
# The action of the event a driver's events() yields on every (re)connection: what happened while the
# stream was down (an engine restart stops every container) is not replayed, so the consumer must look.
ENGINE_CONNECTED = "connected"


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    command: list[str]
    labels: dict[str, str]
    environment: dict[str, str] = field(default_factory=dict)
    cpus: float = 1.0
    memory_bytes: int = 2 * 1024**3
    pids_limit: int = 4096
    hostname: str = "devbox"
    working_dir: str = "/"
    binds: dict[str, str] = field(default_factory=dict)  # host directory -> container path
    network: str | None = None  # an isolated network: devboxes on it cannot reach one another
    runtime: str | None = None  # an OCI runtime other than the engine's default (e.g. runsc)


@dataclass(frozen=True)
class ContainerState:
    running: bool
    exit_code: int | None
    oom_killed: bool


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True)
class ContainerEvent:
    """A container of ours stopped (`die`), was removed (`destroy`) or hit its memory limit (`oom`); or,
    with action ENGINE_CONNECTED and no container, the event stream (re)connected to the engine."""

    action: str
    container_id: str
    devbox_id: str
    exit_code: int | None = None


@dataclass(frozen=True)
class HostCapacity:
    cpus: int
    memory_bytes: int


class StdinWriter(Protocol):
    """A command whose stdin we stream into; close() ends stdin and returns its result."""

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> ExecResult: ...

    async def abort(self) -> None: ...


class FileSink(Protocol):
    """A file of a size declared up front, being written into a container: write exactly that many bytes,
    then close() (which raises if the engine failed), or abort(). A buffer once written is not changed
    by the caller: a sink may send it later without copying it."""

    async def write(self, data: bytes | memoryview) -> None: ...

    async def close(self) -> None: ...

    async def abort(self) -> None: ...


class ExecChannel(Protocol):
    """A long-lived process in a container with its stdin and (demultiplexed) stdout/stderr, used
    without threads: the persistent channel that commands travel over."""

    async def read(self) -> tuple[int, bytes] | None:
        """(1 for stdout or 2 for stderr, data), or None once the process's output has ended."""
        ...

    async def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class SandboxDriver(Protocol):
    async def ping(self) -> bool: ...

    async def capacity(self) -> HostCapacity: ...

    async def image_exists(self, image: str) -> bool: ...

    async def ensure_default_image(self, progress: Callable[[str], None]) -> str: ...

    async def run_container(self, spec: ContainerSpec) -> str:
        """Create and start a container; returns its id."""
        ...

    async def start(self, container_id: str) -> None: ...

    async def stop(self, container_id: str, timeout_seconds: int) -> None:
        """Stop; a stopped container is success."""
        ...

    async def remove(self, container_id: str) -> None:
        """Remove (forcefully); a missing container is success."""
        ...

    async def inspect(self, container_id: str) -> ContainerState | None:
        """None when the container does not exist."""
        ...

    async def exec(
        self,
        container_id: str,
        argv: list[str],
        user: str,
        workdir: str | None = None,
        environment: dict[str, str] | None = None,
    ) -> ExecResult: ...

    async def exec_with_stdin(
        self, container_id: str, argv: list[str], user: str, workdir: str | None = None
    ) -> StdinWriter: ...

    def exec_stdout(
        self, container_id: str, argv: list[str], user: str, workdir: str | None = None
    ) -> AsyncIterator[bytes]:
        """Stream a command's stdout; raises BackendError at the end if it exited non-zero."""
        ...

    async def engine_file_size(self, container_id: str, path: str) -> int | None:
        """Size of `path` as the engine itself sees the container's filesystem; None when it sees nothing.
        Where that differs from what a process inside sees (a mount made inside, a sandboxed runtime),
        put_file must not be used."""
        ...

    def read_file(self, container_id: str, path: str, size: int) -> AsyncIterator[bytes]:
        """Stream the regular file `path` (no symlinks on the way), exactly `size` bytes, as root, past any
        process in the container (from this host or through the engine); raises BackendError if it is not
        that size (any more)."""
        ...

    async def open_created_file(
        self, container_id: str, directory: str, name: str, inode: int, uid: int
    ) -> FileSink | None:
        """The empty file `directory`/`name` (inode `inode`, owned by `uid`) that the devbox user just
        created, opened for writing past the engine where this host sees the container's files; None where
        it does not (then put_file is the way)."""
        ...

    async def put_file(
        self, container_id: str, directory: str, name: str, size: int, mode: int, uid: int, gid: int
    ) -> FileSink:
        """Stream a new file of `size` bytes to `directory`/`name` (an existing directory, no symlinks on
        the way) through the engine, as root, with the given mode and owner; replaces what was there."""
        ...

    async def open_channel(self, container_id: str, argv: list[str], user: str) -> ExecChannel: ...

    async def commit(self, container_id: str, image: str, message: str | None) -> None:
        """Save the container's filesystem as `image` (repository:tag)."""
        ...

    async def top_layer_size(self, image: str) -> int:
        """Bytes the image adds over its parent."""
        ...

    async def remove_image(self, image: str) -> bool:
        """Remove the image; False while a container still uses it. A missing image is success."""
        ...

    async def address(self, container_id: str) -> str | None:
        """The container's IP address as the server reaches it; None when it has none (stopped)."""
        ...

    async def logs(self, container_id: str) -> bytes: ...

    async def list_managed(self, instance: str) -> dict[str, str]:
        """Container id -> devbox id, for every container carrying this instance's label."""
        ...

    def events(self, instance: str) -> AsyncIterator[ContainerEvent]:
        """Lifecycle events of this instance's containers, reconnecting while the engine is away."""
        ...

    def close(self) -> None: ...
