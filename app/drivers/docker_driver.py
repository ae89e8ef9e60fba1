"""The Docker driver: the only module (with docker_image.py) that imports docker.

docker-py blocks, so every call runs on a worker-thread pool sized for concurrency: one slow container
never stalls the event loop or the other devboxes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions

from app.domain.errors import BackendError, ContainerGone
from app.drivers import docker_image
from app.drivers.base import (
    LABEL_DEVBOX,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    ContainerEvent,
    ContainerSpec,
    ContainerState,
    ExecResult,
    HostCapacity,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
STREAM_QUEUE_CHUNKS = 8
# Engine frames are small; handing each one across threads costs more than the copy. Batch to ~1 MiB.
STREAM_BATCH_BYTES = 1024 * 1024
API_VERSION = "1.41"
# Docker's default set minus MKNOD (device nodes), NET_RAW (raw sockets: spoofing, ARP tricks) and SETPCAP.
# What remains is what a dev user with sudo needs: file ownership, users and groups for package
# managers, binding low ports, chroot for build tools, capabilities on installed files.
DEVBOX_CAPABILITIES = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "AUDIT_WRITE",
]


class DockerDriver:
    def __init__(self, threads: int = 32, base_url: str | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="docker")
        # A fixed API version: the client then does not contact the engine when it is built, so the server
        # starts (and reports 503 on /health) while the engine is away. 1.41 is Docker 20.10's API.
        kwargs: dict[str, Any] = {"max_pool_size": threads, "timeout": 120, "version": API_VERSION}
        self._client = docker.DockerClient(base_url=base_url, **kwargs) if base_url else docker.from_env(**kwargs)
        self._capacity: HostCapacity | None = None

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))
        except docker.errors.NotFound as exc:
            raise ContainerGone(str(exc.explanation or exc)) from exc
        except docker.errors.APIError as exc:
            raise BackendError(str(exc.explanation or exc)) from exc
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            raise BackendError(f"Docker engine unavailable: {exc}") from exc

    async def ping(self) -> bool:
        try:
            return bool(await self._run(self._client.ping))
        except BackendError:
            return False

    async def capacity(self) -> HostCapacity:
        if self._capacity is None:
            info = await self._run(self._client.info)
            self._capacity = HostCapacity(cpus=int(info["NCPU"]), memory_bytes=int(info["MemTotal"]))
        return self._capacity

    async def image_exists(self, image: str) -> bool:
        try:
            await self._run(self._client.api.inspect_image, image)
        except ContainerGone:
            return False
        return True

    async def ensure_default_image(self, progress: Callable[[str], None]) -> str:
        return await self._run(docker_image.ensure_default_image, self._client, progress)

    def _ensure_network(self, name: str) -> None:
        """A bridge with inter-container traffic off: devboxes reach the internet, never each other."""
        api = self._client.api
        if any(n["Name"] == name for n in api.networks(names=[name])):  # the filter matches substrings
            return
        try:
            api.create_network(
                name,
                driver="bridge",
                options={"com.docker.network.bridge.enable_icc": "false"},
                labels={LABEL_MANAGED: "true"},
                check_duplicate=True,
            )
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # created by a concurrent create: fine
                raise

    def _run_container_blocking(self, spec: ContainerSpec) -> str:
        api = self._client.api
        if spec.network:
            self._ensure_network(spec.network)
        host_config = api.create_host_config(
            nano_cpus=int(spec.cpus * 1e9),
            mem_limit=spec.memory_bytes,
            memswap_limit=spec.memory_bytes,
            pids_limit=spec.pids_limit,
            init=True,  # tini as PID 1 reaps the zombies that agents' commands leave behind
            privileged=False,
            cap_drop=["ALL"],
            cap_add=DEVBOX_CAPABILITIES,
            # no-new-privileges is not set: it would break sudo (setuid), which devbox users rely on.
            binds={host: {"bind": path, "mode": "rw"} for host, path in spec.binds.items()},
            network_mode=spec.network,
            runtime=spec.runtime,
        )
        created = api.create_container(
            image=spec.image,
            command=spec.command,
            name=spec.name,
            labels=spec.labels,
            environment=spec.environment,
            hostname=spec.hostname,
            working_dir=spec.working_dir,
            host_config=host_config,
            user="root",
        )
        container_id: str = created["Id"]
        try:
            api.start(container_id)
        except Exception:
            api.remove_container(container_id, force=True)
            raise
        return container_id

    async def run_container(self, spec: ContainerSpec) -> str:
        return await self._run(self._run_container_blocking, spec)

    async def start(self, container_id: str) -> None:
        await self._run(self._client.api.start, container_id)

    async def stop(self, container_id: str, timeout_seconds: int) -> None:
        await self._run(self._client.api.stop, container_id, timeout=timeout_seconds)

    async def remove(self, container_id: str) -> None:
        try:
            await self._run(self._client.api.remove_container, container_id, force=True, v=True)
        except ContainerGone:
            pass
        except BackendError as exc:
            if "already in progress" not in str(exc):
                raise

    async def inspect(self, container_id: str) -> ContainerState | None:
        try:
            data = await self._run(self._client.api.inspect_container, container_id)
        except ContainerGone:
            return None
        state = data["State"]
        return ContainerState(
            running=bool(state.get("Running")),
            exit_code=state.get("ExitCode"),
            oom_killed=bool(state.get("OOMKilled")),
        )

    def _exec_blocking(
        self, container_id: str, argv: list[str], user: str, workdir: str | None, environment: dict[str, str] | None
    ) -> ExecResult:
        api = self._client.api
        exec_id = api.exec_create(
            container_id, argv, user=user, workdir=workdir, environment=environment, stdout=True, stderr=True
        )["Id"]
        stdout, stderr = api.exec_start(exec_id, demux=True)
        exit_code = api.exec_inspect(exec_id).get("ExitCode")
        return ExecResult(
            exit_code=-1 if exit_code is None else int(exit_code), stdout=stdout or b"", stderr=stderr or b""
        )

    async def exec(
        self,
        container_id: str,
        argv: list[str],
        user: str,
        workdir: str | None = None,
        environment: dict[str, str] | None = None,
    ) -> ExecResult:
        return await self._run(self._exec_blocking, container_id, argv, user, workdir, environment)

    async def exec_with_stdin(
        self, container_id: str, argv: list[str], user: str, workdir: str | None = None
    ) -> DockerStdinWriter:
        def open_exec() -> DockerStdinWriter:
            api = self._client.api
            exec_id = api.exec_create(
                container_id, argv, user=user, workdir=workdir, stdin=True, stdout=True, stderr=True
            )["Id"]
            sock = api.exec_start(exec_id, socket=True)
            return DockerStdinWriter(self, exec_id, sock)

        return await self._run(open_exec)

    async def exec_stdout(
        self, container_id: str, argv: list[str], user: str, workdir: str | None = None
    ) -> AsyncIterator[bytes]:
        """Chunks of stdout through a small bounded queue: a slow client slows the reader, so memory stays flat."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=STREAM_QUEUE_CHUNKS)
        cancelled = threading.Event()
        api = self._client.api

        def put(item: bytes | BaseException | None) -> None:
            if not cancelled.is_set():
                asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

        def pump() -> None:
            raw = None
            try:
                exec_id = api.exec_create(container_id, argv, user=user, workdir=workdir, stdout=True, stderr=True)
                raw = _raw_socket(api.exec_start(exec_id["Id"], socket=True))
                stderr = bytearray()
                batch = bytearray()
                for stream, data in read_frames(raw):
                    if cancelled.is_set():
                        return  # closing the socket below ends the command (SIGPIPE on its next write)
                    if stream == 2 and len(stderr) < 4096:
                        stderr += data
                    elif stream == 1:
                        batch += data
                        if len(batch) >= STREAM_BATCH_BYTES:
                            put(bytes(batch))
                            batch.clear()
                if batch:
                    put(bytes(batch))
                code = _exit_code(api, exec_id["Id"])
                if code != 0:
                    put(BackendError(f"exited with status {code}: {stderr.decode(errors='replace').strip()}"))
                put(None)
            except Exception as exc:  # handed to the consumer, which raises it
                put(exc)
            finally:
                if raw is not None:
                    _close_socket(raw)

        task = loop.run_in_executor(self._pool, pump)
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise BackendError(str(item)) from item
                yield item
        finally:
            cancelled.set()
            while not queue.empty():  # unblock a pump waiting on a full queue
                queue.get_nowait()
            await asyncio.wait([task], timeout=5)

    async def open_channel(self, container_id: str, argv: list[str], user: str) -> DockerExecChannel:
        def start() -> socket.socket:
            api = self._client.api
            exec_id = api.exec_create(container_id, argv, user=user, stdin=True, stdout=True, stderr=True)["Id"]
            return _raw_socket(api.exec_start(exec_id, socket=True))

        sock = await self._run(start)
        sock.setblocking(False)
        try:
            if sock.family == socket.AF_UNIX:
                reader, writer = await asyncio.open_unix_connection(sock=sock, limit=STREAM_BATCH_BYTES)
            else:
                reader, writer = await asyncio.open_connection(sock=sock, limit=STREAM_BATCH_BYTES)
        except BaseException:
            _close_socket(sock)
            raise
        return DockerExecChannel(reader, writer)

    async def commit(self, container_id: str, image: str, message: str | None) -> None:
        repository, _, tag = image.rpartition(":")
        # Not paused. Docker's pause freezes the container's cgroup, and a `docker exec` being set up at
        # that moment (the command agent starting, a file transfer) sticks in `runc init` and hangs the
        # engine for that container: seen in our tests, and a devbox is snapshotted right after create
        # often. Unpaused, a snapshot is crash-consistent: what was on disk at that instant, like
        # pulling the plug; a file being written during the commit may be partial.
        await self._run(
            self._client.api.commit,
            container_id,
            repository=repository,
            tag=tag,
            message=message or "",
            pause=False,
            # Docker merges the container's labels into the image: blank the ones naming the source devbox
            # and server, or containers run from the image would pass for that devbox's.
            conf={"Labels": {LABEL_MANAGED: "true", LABEL_DEVBOX: "", LABEL_INSTANCE: ""}},
        )

    async def top_layer_size(self, image: str) -> int:
        history = await self._run(self._client.api.history, image)
        return int(history[0].get("Size") or 0) if history else 0

    async def remove_image(self, image: str) -> bool:
        try:
            await self._run(self._client.api.remove_image, image)
        except ContainerGone:
            return True
        except BackendError as exc:
            if "conflict" in str(exc).lower() or "being used" in str(exc) or "in use" in str(exc):
                return False
            raise
        return True

    async def address(self, container_id: str) -> str | None:
        try:
            data = await self._run(self._client.api.inspect_container, container_id)
        except ContainerGone:
            return None
        for network in (data.get("NetworkSettings") or {}).get("Networks", {}).values():
            if network.get("IPAddress"):
                return str(network["IPAddress"])
        return None

    async def logs(self, container_id: str) -> bytes:
        return await self._run(self._client.api.logs, container_id, stdout=True, stderr=True)

    async def list_managed(self, instance: str) -> dict[str, str]:
        containers = await self._run(
            self._client.api.containers, all=True, filters={"label": f"{LABEL_INSTANCE}={instance}"}
        )
        return {c["Id"]: c["Labels"].get(LABEL_DEVBOX, "") for c in containers}

    async def events(self, instance: str) -> AsyncIterator[ContainerEvent]:
        """Docker's event stream read on its own thread; reconnects with a pause when the engine goes away."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[ContainerEvent] = asyncio.Queue()
        stop = threading.Event()
        streams: list[Any] = []

        def pump() -> None:
            filters = {
                "type": "container",
                "event": ["die", "destroy", "oom"],
                "label": [f"{LABEL_INSTANCE}={instance}"],
            }
            while not stop.is_set():
                try:
                    stream = self._client.api.events(decode=True, filters=filters)
                    streams.append(stream)
                    for raw in stream:
                        attrs = raw.get("Actor", {}).get("Attributes", {})
                        code = attrs.get("exitCode")
                        event = ContainerEvent(
                            action=raw.get("Action", raw.get("status", "")),
                            container_id=raw.get("id", ""),
                            devbox_id=attrs.get(LABEL_DEVBOX, ""),
                            exit_code=int(code) if code is not None else None,
                        )
                        loop.call_soon_threadsafe(queue.put_nowait, event)
                except Exception as exc:
                    if not stop.is_set():
                        log.warning("docker event stream interrupted (%s); reconnecting", exc)
                stop.wait(1.0)

        thread = threading.Thread(target=pump, name="docker-events", daemon=True)
        thread.start()
        try:
            while True:
                yield await queue.get()
        finally:
            stop.set()
            for stream in streams:
                try:
                    stream.close()
                except Exception:
                    log.debug("closing the event stream failed", exc_info=True)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()


class DockerExecChannel:
    """A hijacked exec connection on the event loop: no thread per channel, and a frame costs no hand-off."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._write_lock = asyncio.Lock()

    async def read(self) -> tuple[int, bytes] | None:
        try:
            header = await self._reader.readexactly(8)
            size = int.from_bytes(header[4:8], "big")
            return header[0], await self._reader.readexactly(size) if size else b""
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def write(self, data: bytes) -> None:
        async with self._write_lock:
            self._writer.write(data)
            try:
                await self._writer.drain()
            except ConnectionError as exc:
                raise ContainerGone(f"the channel into the container closed: {exc}") from exc

    def close(self) -> None:
        self._writer.close()


class DockerStdinWriter:
    """stdin of a docker exec over its hijacked socket. Writes go through the driver's threads."""

    def __init__(self, driver: DockerDriver, exec_id: str, sock: Any) -> None:
        self._driver = driver
        self._exec_id = exec_id
        self._sock = _raw_socket(sock)

    async def write(self, data: bytes) -> None:
        await self._driver._run(self._sock.sendall, data)

    def _finish(self) -> ExecResult:
        self._sock.shutdown(socket.SHUT_WR)  # EOF on the command's stdin
        output: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
        try:
            for stream, data in read_frames(self._sock):
                if stream in output and len(output[stream]) < 1 << 20:
                    output[stream] += data
        finally:
            _close_socket(self._sock)
        code = _exit_code(self._driver._client.api, self._exec_id)
        return ExecResult(code, bytes(output[1]), bytes(output[2]))

    async def close(self) -> ExecResult:
        return await self._driver._run(self._finish)

    async def abort(self) -> None:
        await self._driver._run(_close_socket, self._sock)


def _raw_socket(hijacked: Any) -> socket.socket:
    """docker-py wraps the hijacked connection in a SocketIO; the socket is what we read and write."""
    return getattr(hijacked, "_sock", hijacked)  # type: ignore[no-any-return]


def _close_socket(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _recv_exact(sock: socket.socket, size: int) -> bytearray | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            return None
        got += n
    return buffer


def read_frames(sock: socket.socket) -> Iterator[tuple[int, bytearray]]:
    """(stream, payload) frames of a non-tty exec's multiplexed output: 1 stdout, 2 stderr."""
    while (header := _recv_exact(sock, 8)) is not None:
        size = int.from_bytes(header[4:8], "big")
        payload = _recv_exact(sock, size) if size else bytearray()
        if payload is None:
            return
        yield header[0], payload


def _exit_code(api: Any, exec_id: str) -> int:
    """The exit status once the engine has recorded it (it can lag the end of the output briefly)."""
    while (info := api.exec_inspect(exec_id)).get("Running"):
        time.sleep(0.01)
    code = info.get("ExitCode")
    return -1 if code is None else int(code)
