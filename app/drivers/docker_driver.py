"""The Docker driver: the only module (with docker_image.py) that imports docker.

docker-py blocks, so every call runs on a worker-thread pool sized for concurrency: one slow container
never stalls the event loop or the other devboxes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import queue
import socket
import tarfile
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions

from app.domain.errors import BackendError, ContainerGone
from app.drivers import docker_image
from app.drivers.base import (
    ENGINE_CONNECTED,
    LABEL_DEVBOX,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    ContainerEvent,
    ContainerSpec,
    ContainerState,
    ExecResult,
    HostCapacity,
)
from app.drivers.container_root import HostFileWriter, open_created_file, open_regular_file, read_host_file
from app.drivers.docker_archive import (
    EngineAddress,
    EngineArchiveWriter,
    read_archive_file,
    tar_entry_start,
    tar_header,
    tar_trailer,
)
from app.drivers.stream_channel import StreamChannel
from app.observability.metrics import docker_call

log = logging.getLogger(__name__)
T = TypeVar("T")
STREAM_QUEUE_CHUNKS = 8
# Engine frames are small; handing each one across threads costs more than the copy. Batch to ~1 MiB.
STREAM_BATCH_BYTES = 1024 * 1024
# Buffers queued for an archive upload's thread beyond the one it is sending: it never waits for the event
# loop, and memory stays at a few MiB per upload.
ARCHIVE_QUEUE_BUFFERS = 4
ARCHIVE_ABORT_WAIT_SECONDS = 30
API_VERSION = "1.41"
PING_TIMEOUT_SECONDS = 3.0
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
    def __init__(self, threads: int = 32, base_url: str | None = None, host_file_access: bool = True) -> None:
        self._host_file_access = host_file_access
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="docker")
        # A fixed API version: the client then does not contact the engine when it is built, so the server
        # starts (and reports 503 on /health) while the engine is away. 1.41 is Docker 20.10's API.
        kwargs: dict[str, Any] = {"max_pool_size": threads, "timeout": 120, "version": API_VERSION}
        self._client = docker.DockerClient(base_url=base_url, **kwargs) if base_url else docker.from_env(**kwargs)
        self._capacity: HostCapacity | None = None
        self._networks_seen: set[str] = set()
        # Pings get their own client (short timeout) and threads: /health answers at once while the engine
        # is away or stopping, however busy (or stuck) the main pool is.
        ping_kwargs: dict[str, Any] = {"timeout": PING_TIMEOUT_SECONDS, "version": API_VERSION}
        self._ping_client = (
            docker.APIClient(base_url=base_url, **ping_kwargs) if base_url else docker.from_env(**ping_kwargs).api
        )
        self._ping_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="docker-ping")
        # Large files go in and out over the engine's socket from the event loop where it is a plain one
        # (see docker_archive.py); through docker-py on threads where it is not (TLS, ssh).
        self._engine = EngineAddress.of(self._client.api)

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            with docker_call(getattr(fn, "__name__", "call").lstrip("_").removesuffix("_blocking")):
                return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))
        except docker.errors.NotFound as exc:
            raise ContainerGone(str(exc.explanation or exc)) from exc
        except docker.errors.APIError as exc:
            raise BackendError(str(exc.explanation or exc)) from exc
        except requests.exceptions.Timeout as exc:  # the engine is there but did not answer in time
            raise BackendError(f"the Docker engine did not answer in time: {exc}") from exc
        except (requests.exceptions.RequestException, docker.errors.DockerException) as exc:
            raise BackendError(f"Docker engine unavailable: {exc}") from exc

    async def ping(self) -> bool:
        """Whether the engine answers, within a few seconds whatever state it is in."""
        loop = asyncio.get_running_loop()
        try:
            answer = loop.run_in_executor(self._ping_pool, self._ping_client.ping)
            return bool(await asyncio.wait_for(answer, PING_TIMEOUT_SECONDS + 1))
        except Exception:  # refused, timed out, shutting down: all mean "not available now"
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
        # The network is looked up once, not on every create (an engine call each); if it vanished since
        # (removed by hand, an engine reset), the create fails with 404 and is retried after making it.
        if spec.network and spec.network not in self._networks_seen:
            self._ensure_network(spec.network)
            self._networks_seen.add(spec.network)
        try:
            return self._create_and_start(spec)
        except docker.errors.NotFound as exc:
            if not spec.network or "network" not in str(exc.explanation or exc).lower():
                raise
            self._networks_seen.discard(spec.network)
            self._ensure_network(spec.network)
            self._networks_seen.add(spec.network)
            return self._create_and_start(spec)

    def _create_and_start(self, spec: ContainerSpec) -> str:
        api = self._client.api
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
        # The engine sets OOMKilled once any process in the container was OOM-killed, and keeps it: a
        # command that ran out of memory while the devbox carried on would brand a later, unrelated stop.
        # The container died of it only if its main process was SIGKILLed (137 = 128 + 9, through tini).
        exit_code = state.get("ExitCode")
        return ContainerState(
            running=bool(state.get("Running")),
            exit_code=exit_code,
            oom_killed=bool(state.get("OOMKilled")) and exit_code == 137,
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

    def exec_stdout(
        self, container_id: str, argv: list[str], user: str, workdir: str | None = None
    ) -> AsyncIterator[bytes]:
        """Chunks of stdout, read on one of the driver's threads (see _pumped)."""
        api = self._client.api

        def pump(put: _Put, cancelled: threading.Event) -> None:
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

        return _pumped(pump, self._pool)

    async def engine_file_size(self, container_id: str, path: str) -> int | None:
        """Size of `path` as the engine sees it in the container's filesystem (HEAD .../archive); None when
        it sees nothing there."""

        def stat() -> int | None:
            api: Any = self._client.api  # docker-py has no HEAD .../archive of its own
            response = api.head(
                api._url("/containers/{0}/archive", container_id), params={"path": path}, timeout=api.timeout
            )
            if response.status_code == 404:
                return None
            api._raise_for_status(response)
            header = response.headers.get("X-Docker-Container-Path-Stat")
            return int(json.loads(base64.b64decode(header))["size"]) if header else None

        return await self._run(stat)

    async def _open_on_host(self, container_id: str, opener: Callable[..., int | None], *args: Any) -> int | None:
        """`opener(pid, *args)` (container_root.py) on a thread, for the container's main process; None
        where this host cannot see the container's files: host file access off, or an engine that is not
        on a unix socket (the one kind whose containers can be this host's processes)."""
        if not self._host_file_access or self._engine is None or self._engine.unix_path is None:
            return None
        try:
            data = await self._run(self._client.api.inspect_container, container_id)
        except BackendError:
            return None
        pid = int(data["State"].get("Pid") or 0)
        if pid <= 0:
            return None
        return await asyncio.get_running_loop().run_in_executor(self._pool, opener, pid, *args)

    async def open_created_file(
        self, container_id: str, directory: str, name: str, inode: int, uid: int
    ) -> HostFileWriter | None:
        fd = await self._open_on_host(container_id, open_created_file, directory, name, inode, uid)
        return None if fd is None else HostFileWriter(fd, self._pool)

    async def put_file(
        self, container_id: str, directory: str, name: str, size: int, mode: int, uid: int, gid: int
    ) -> EngineArchiveWriter | DockerArchiveWriter:
        if self._engine is not None:
            return await EngineArchiveWriter.open(self._engine, container_id, directory, name, size, mode, uid, gid)
        return DockerArchiveWriter(self._client.api, container_id, directory, name, size, mode, uid, gid)

    def read_file(self, container_id: str, path: str, size: int) -> AsyncIterator[bytes]:
        """The regular file `path`, exactly `size` bytes of it: read from this host through the container's
        root where it can be (container_root.py), else through the engine (GET .../archive, as `docker cp`
        does): no process and no stdout pipes in the container, a fraction of an exec's CPU."""
        return self._read_file(container_id, path, size)

    async def _read_file(self, container_id: str, path: str, size: int) -> AsyncIterator[bytes]:
        fd = await self._open_on_host(container_id, open_regular_file, path, size)
        if fd is not None:
            source = read_host_file(fd, size, self._pool)
        elif self._engine is not None:
            source = read_archive_file(self._engine, container_id, path, size)
        else:
            source = self._read_file_on_thread(container_id, path, size)
        async with contextlib.aclosing(source):
            async for chunk in source:
                yield chunk

    def _read_file_on_thread(self, container_id: str, path: str, size: int) -> AsyncGenerator[bytes, None]:
        """read_file through docker-py, on a thread of its own (see _pumped): it lasts as long as the
        download, and must not hold one of the driver's pool threads."""
        api: Any = self._client.api

        def pump(put: _Put, cancelled: threading.Event) -> None:
            response = None
            try:
                response = api._get(
                    api._url("/containers/{0}/archive", container_id),
                    params={"path": path},
                    stream=True,
                    headers={"Accept-Encoding": "identity"},
                )
                api._raise_for_status(response)
                stream = _ExactReader(response.raw)
                found = _tar_entry_size(stream)
                if found != size:
                    raise BackendError(f"{path} is {found} bytes now, not {size}: it changed while being read")
                left = size
                while left and not cancelled.is_set():
                    data = stream.read(min(STREAM_BATCH_BYTES, left))
                    left -= len(data)
                    put(data)
                put(None)
            except docker.errors.NotFound as exc:
                put(ContainerGone(str(exc.explanation or exc)))
            except Exception as exc:  # handed to the consumer, which raises it
                put(exc)
            finally:
                if response is not None:
                    _close_quietly(response)

        return _pumped(pump, None, thread_name="docker-archive-read")

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
        """Docker's event stream read on its own thread; reconnects with a pause when the engine goes away.
        Every (re)connection is announced by an event with action ENGINE_CONNECTED: what happened while the
        stream was down (an engine restart stops every container) is not replayed, so the consumer looks."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[ContainerEvent] = asyncio.Queue()
        stop = threading.Event()
        open_streams: list[Any] = []

        def put(event: ContainerEvent) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the server is stopping
                loop.call_soon_threadsafe(queue.put_nowait, event)

        def pump() -> None:
            filters = {
                "type": "container",
                "event": ["die", "destroy", "oom"],
                "label": [f"{LABEL_INSTANCE}={instance}"],
            }
            while not stop.is_set():
                stream = None
                try:
                    stream = self._client.api.events(decode=True, filters=filters)
                    open_streams.append(stream)
                    if stop.is_set():
                        return
                    put(ContainerEvent(action=ENGINE_CONNECTED, container_id="", devbox_id=""))
                    for raw in stream:
                        attrs = raw.get("Actor", {}).get("Attributes", {})
                        code = attrs.get("exitCode")
                        put(
                            ContainerEvent(
                                action=raw.get("Action", raw.get("status", "")),
                                container_id=raw.get("id", ""),
                                devbox_id=attrs.get(LABEL_DEVBOX, ""),
                                exit_code=int(code) if code is not None else None,
                            )
                        )
                    if not stop.is_set():
                        log.warning("docker event stream ended; reconnecting")
                except Exception as exc:
                    if not stop.is_set():
                        log.warning("docker event stream interrupted (%s); reconnecting", exc)
                finally:
                    if stream is not None:
                        open_streams.remove(stream)
                        _close_quietly(stream)
                stop.wait(1.0)

        thread = threading.Thread(target=pump, name="docker-events", daemon=True)
        thread.start()
        try:
            while True:
                yield await queue.get()
        finally:
            stop.set()
            for stream in list(open_streams):  # unblocks the pump's read
                _close_quietly(stream)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._ping_pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()
        self._ping_client.close()


class DockerExecChannel(StreamChannel):
    """A hijacked exec connection on the event loop: no thread per channel, and a frame costs no hand-off."""

    async def read(self) -> tuple[int, bytes] | None:
        """The engine's multiplexed frames: (1 or 2 for stdout or stderr, data)."""
        try:
            header = await self._reader.readexactly(8)
            size = int.from_bytes(header[4:8], "big")
            return header[0], await self._reader.readexactly(size) if size else b""
        except (asyncio.IncompleteReadError, ConnectionError):
            return None


class DockerStdinWriter:
    """stdin of a docker exec over its hijacked socket. Writes go through the driver's threads, one buffer
    in flight: the caller gathers the next buffer from its client while the previous one is being sent."""

    def __init__(self, driver: DockerDriver, exec_id: str, sock: Any) -> None:
        self._driver = driver
        self._exec_id = exec_id
        self._sock = _raw_socket(sock)
        self._sending: asyncio.Future[None] | None = None

    async def write(self, data: bytes) -> None:
        """Start sending `data` once the previous write is done (its error, if any, raises here)."""
        await self._sent()
        self._sending = asyncio.ensure_future(self._driver._run(self._sock.sendall, data))

    async def _sent(self) -> None:
        sending, self._sending = self._sending, None
        if sending is not None:
            await sending

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
        await self._sent()
        return await self._driver._run(self._finish)

    async def abort(self) -> None:
        await self._driver._run(_close_socket, self._sock)  # also ends a send in flight
        with contextlib.suppress(Exception):
            await self._sent()


_Put = Callable[[bytes | BaseException | None], None]


async def _pumped(
    pump: Callable[[_Put, threading.Event], None], pool: ThreadPoolExecutor | None, thread_name: str = ""
) -> AsyncGenerator[bytes, None]:
    """What a blocking `pump` puts, through a small bounded queue: a slow consumer slows the pump, so memory
    stays flat. The pump ends with None, or with an exception, raised here as a BackendError; `cancelled`
    tells it the consumer stopped. It runs on `pool` (its end awaited, briefly, when the consumer stops),
    or, with no pool, on a daemon thread of its own."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=STREAM_QUEUE_CHUNKS)
    cancelled = threading.Event()

    def put(item: bytes | BaseException | None) -> None:
        if not cancelled.is_set():
            asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

    task = None
    if pool is not None:
        task = loop.run_in_executor(pool, pump, put, cancelled)
    else:
        threading.Thread(target=pump, args=(put, cancelled), name=thread_name, daemon=True).start()
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BackendError):
                raise item
            if isinstance(item, BaseException):
                raise BackendError(str(item)) from item
            yield item
    finally:
        cancelled.set()
        while not queue.empty():  # unblock a pump waiting on a full queue
            queue.get_nowait()
        if task is not None:
            await asyncio.wait([task], timeout=5)


class _ExactReader:
    """read(n) of exactly n bytes from a response stream, or BackendError when it ends first."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def read(self, count: int) -> bytes:
        data = self._raw.read(count)
        while len(data) < count:  # a read may stop at a chunk boundary of the engine's response
            more = self._raw.read(count - len(data))
            if not more:
                raise BackendError("the engine's archive ended early")
            data += more
        return bytes(data)


def _tar_entry_size(stream: _ExactReader) -> int:
    """Read a tar stream's headers, block by block, up to the first file's data; that file's size."""
    head = b""
    while (entry := tar_entry_start(head)) is None:
        head += stream.read(tarfile.BLOCKSIZE)
    return entry[1]


class _SizedBody:
    """A streamed request body of known length: requests then sends it with Content-Length, as it comes,
    where a bare generator would be re-framed (and copied) chunk by chunk."""

    def __init__(self, length: int, chunks: Iterator[bytes]) -> None:
        self._length = length
        self._chunks = chunks

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks


class _Aborted(Exception):
    """Raised inside the request body to drop the connection: the engine sees a truncated archive."""


class DockerArchiveWriter:
    """One file of a known size streamed into a container as a tar entry (PUT .../archive, as `docker cp`
    does): the engine writes it to disk itself, with no process and no stdin pipes in between, which is
    most of the cost of writing through an exec's stdin. The request runs on a thread of its own (it lasts
    as long as the upload: it must not hold one of the driver's pool threads), fed through a small queue."""

    def __init__(
        self, api: Any, container_id: str, directory: str, name: str, size: int, mode: int, uid: int, gid: int
    ) -> None:
        self._header = tar_header(name, size, mode, uid, gid)
        self._trailer = tar_trailer(size)
        self._size = size
        self._written = 0
        self._batch: list[bytes | memoryview] = []
        self._batch_size = 0
        self._loop = asyncio.get_running_loop()
        self._buffers: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._slots = asyncio.Semaphore(ARCHIVE_QUEUE_BUFFERS)
        self._aborted = False
        self._ended = False
        self._done: asyncio.Future[None] = self._loop.create_future()
        threading.Thread(
            target=self._put, args=(api, container_id, directory), name="docker-archive", daemon=True
        ).start()

    def _body(self) -> Iterator[bytes]:
        yield self._header
        while (data := self._buffers.get()) is not None:
            yield data  # returns once the previous buffer is on the socket: free a slot
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server is stopping
                self._loop.call_soon_threadsafe(self._slots.release)
        if self._aborted:
            raise _Aborted
        yield self._trailer

    def _put(self, api: Any, container_id: str, directory: str) -> None:
        error: BaseException | None = None
        try:
            length = len(self._header) + self._size + len(self._trailer)
            api.put_archive(container_id, directory, _SizedBody(length, self._body()))
        except docker.errors.NotFound as exc:
            error = ContainerGone(str(exc.explanation or exc))
        except docker.errors.APIError as exc:
            error = BackendError(str(exc.explanation or exc))
        except Exception as exc:
            error = BackendError(f"writing into the container failed: {exc}")
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._settle, error)

    def _settle(self, error: BaseException | None) -> None:
        if error is None:
            self._done.set_result(None)
        else:
            self._done.set_exception(error)

    async def write(self, data: bytes | memoryview) -> None:
        """Queue `data` for the thread (not copied: callers do not change a buffer once written), which gets
        it in ~STREAM_BATCH_BYTES buffers: one hand-off per MiB rather than per network read."""
        if self._written + len(data) > self._size:
            raise ValueError(f"more than the {self._size} bytes declared for the archive entry")
        self._batch.append(data)
        self._batch_size += len(data)
        self._written += len(data)
        if self._batch_size >= STREAM_BATCH_BYTES or self._written == self._size:
            batch, self._batch, self._batch_size = b"".join(self._batch), [], 0
            await self._hand_over(batch)

    async def _hand_over(self, data: bytes) -> None:
        if self._slots.locked():  # the thread is behind: wait for it, or for the request to fail
            slot = asyncio.ensure_future(self._slots.acquire())
            either: list[asyncio.Future[Any]] = [slot, self._done]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if not slot.done():
                slot.cancel()
        else:
            await self._slots.acquire()
        if self._done.done():
            self._done.result()  # raises what ended the request
            raise BackendError("the engine ended the archive upload early")
        self._buffers.put(data)

    async def close(self) -> None:
        """Finish the archive and wait for the engine's answer; raises if it failed."""
        if self._written != self._size:
            await self.abort()
            raise ValueError(f"{self._written} bytes written for an archive entry of {self._size}")
        if not self._ended:
            self._ended = True
            self._buffers.put(None)
        await self._done

    async def abort(self) -> None:
        """Drop the request (the engine keeps whatever part of the file it wrote)."""
        if not self._ended:
            self._ended = self._aborted = True
            self._buffers.put(None)
        await asyncio.wait([self._done], timeout=ARCHIVE_ABORT_WAIT_SECONDS)
        if self._done.done():
            self._done.exception()  # retrieved: never "exception was never retrieved"


def _close_quietly(stream: Any) -> None:
    try:
        stream.close()
    except Exception:
        log.debug("closing the event stream failed", exc_info=True)


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
