"""The persistent channel into each devbox: one agent process (app/agent/devbox_agent.py) per running
devbox, reached over one exec connection, that runs every command. A round trip costs a fork in the
container instead of a `docker exec`.

The channel opens when the devbox reaches running (and again on demand), and ends with the container:
when the connection closes, every command still on it ends with the reason."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import struct
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from app.domain.devbox import container_name
from app.domain.errors import BackendError
from app.drivers.base import ExecChannel, ExecResult, SandboxDriver
from app.drivers.stream_channel import StreamChannel
from app.services.private_dirs import AGENT_FILE, PrivateDirs

log = logging.getLogger(__name__)

AGENT_SOURCE = Path(__file__).resolve().parents[1] / "agent" / "devbox_agent.py"
AGENT_ARGV = ["python3", "-I", "-S", AGENT_FILE]
HEADER = struct.Struct(">II")
HANDSHAKE_SECONDS = 15.0
CONNECT_RETRY_SECONDS = 0.005
CONNECT_RETRY_MAX_SECONDS = 0.1
SOCKET_READ_LIMIT = 1024 * 1024


class CommandSink(Protocol):
    """Receives what happens to one command on the channel."""

    def output(self, fd: int, data: bytes) -> None: ...

    def exited(self, exit_code: int) -> None: ...

    def lost(self, why: str) -> None:
        """The channel ended before the command did."""
        ...


def frame(header: dict[str, Any], body: bytes = b"") -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    return HEADER.pack(len(head), len(body)) + head + body


class AgentChannel:
    def __init__(self, devbox_id: str, channel: ExecChannel, on_closed: Callable[[AgentChannel], None]) -> None:
        self.devbox_id = devbox_id
        self._channel = channel
        self._on_closed = on_closed
        self._sinks: dict[str, CommandSink] = {}
        self._hello: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._reader: asyncio.Task[None] | None = None
        self._close_reason: str | None = None
        self.closed = False

    async def start(self) -> dict[str, Any]:
        """Say hello; the agent's answer (its version and source digest)."""
        self._reader = asyncio.create_task(self._read_loop(), name=f"agent-{self.devbox_id}")
        await self._channel.write(frame({"op": "hello"}))
        try:
            hello = await asyncio.wait_for(asyncio.shield(self._hello), HANDSHAKE_SECONDS)
        except TimeoutError:
            self.close()
            raise BackendError("the command agent in the devbox did not answer") from None
        log.debug("agent %s ready: %s", self.devbox_id, hello)
        return hello

    async def replace_agent(self) -> None:
        """Ask a listening agent of another version to re-exec itself from the file just installed."""
        await self._channel.write(frame({"op": "reexec"}))
        self.close("the command agent was replaced")

    async def run(
        self, execution_id: str, command: str, user: str, shell: str | None, stdin: bool, sink: CommandSink
    ) -> None:
        header = {"op": "run", "id": execution_id, "command": command, "user": user, "shell": shell, "stdin": stdin}
        await self._start(execution_id, header, sink)

    async def run_program(
        self, command_id: str, argv: list[str], user: str, cwd: str, stdin: bool, sink: CommandSink
    ) -> None:
        """`argv` as is (no login shell) as `user` in `cwd`: the server's own tools, such as file checks."""
        header = {"op": "run", "id": command_id, "argv": argv, "user": user, "cwd": cwd, "stdin": stdin}
        await self._start(command_id, header, sink)

    async def open_terminal(
        self,
        session_id: str,
        user: str,
        cols: int,
        rows: int,
        sink: CommandSink,
        command: str | None = None,
        term: str | None = None,
    ) -> None:
        """A login bash on a pty, interactive unless `command` is given; its output arrives as stream 1,
        input goes by send_stdin."""
        header = {"op": "run", "id": session_id, "user": user, "pty": True, "cols": cols, "rows": rows}
        header |= {"command": command, "term": term}
        await self._start(session_id, header, sink)

    async def _start(self, command_id: str, header: dict[str, Any], sink: CommandSink) -> None:
        if self.closed:
            raise BackendError("the channel into the devbox closed")
        self._sinks[command_id] = sink
        try:
            await self._channel.write(frame(header))
        except BackendError:
            self._sinks.pop(command_id, None)
            raise

    async def reload_environment(self) -> None:
        """The devbox's env file changed (a warm-pool claim): commands from now on see the new one."""
        await self._channel.write(frame({"op": "env"}))

    async def resize(self, session_id: str, cols: int, rows: int) -> None:
        await self._channel.write(frame({"op": "resize", "id": session_id, "cols": cols, "rows": rows}))

    async def signal_foreground(self, session_id: str, signum: int) -> None:
        """To the terminal's foreground process group, as Ctrl-C in a terminal would."""
        await self._channel.write(frame({"op": "signal", "id": session_id, "signal": signum, "foreground": True}))

    async def send_stdin(self, execution_id: str, data: bytes, eof: bool) -> None:
        if data:
            await self._channel.write(frame({"op": "stdin", "id": execution_id}, data))
        if eof:
            await self._channel.write(frame({"op": "eof", "id": execution_id}))

    async def signal(self, execution_id: str, signum: int, group: bool) -> None:
        await self._channel.write(frame({"op": "signal", "id": execution_id, "signal": signum, "group": group}))

    def close(self, why: str | None = None) -> None:
        """End the channel; commands still on it end with `why` (default: the devbox stopped)."""
        self._close_reason = self._close_reason or why
        self._channel.close()

    async def _read_loop(self) -> None:
        buffer = bytearray()
        why = "the devbox stopped"
        try:
            while (item := await self._channel.read()) is not None:
                stream, data = item
                if stream != 1:
                    log.warning("agent %s: %s", self.devbox_id, data.decode(errors="replace").rstrip())
                    continue
                buffer += data
                while len(buffer) >= HEADER.size:
                    head_len, body_len = HEADER.unpack_from(buffer)
                    end = HEADER.size + head_len + body_len
                    if len(buffer) < end:
                        break
                    header = json.loads(bytes(buffer[HEADER.size : HEADER.size + head_len]))
                    body = bytes(buffer[HEADER.size + head_len : end])
                    del buffer[:end]
                    self._dispatch(header, body)
        except Exception as exc:  # a broken frame must not leave commands waiting forever
            log.exception("agent channel %s failed", self.devbox_id)
            why = f"the channel into the devbox failed: {exc}"
        finally:
            self.closed = True
            why = self._close_reason or why
            self._channel.close()
            if not self._hello.done():
                self._hello.set_exception(BackendError("the command agent exited before answering"))
            sinks, self._sinks = self._sinks, {}
            for sink in sinks.values():
                sink.lost(why)
            self._on_closed(self)

    def _dispatch(self, header: dict[str, Any], body: bytes) -> None:
        event = header.get("ev")
        if event == "hello":
            if not self._hello.done():
                self._hello.set_result(header)
            return
        sink = self._sinks.get(header.get("id", ""))
        if sink is None:
            return
        if event == "out":
            sink.output(int(header["fd"]), body)
        elif event == "exit":
            del self._sinks[header["id"]]
            sink.exited(int(header["code"]))


class CollectedRun:
    """A short program's whole output and exit status (a CommandSink)."""

    def __init__(self) -> None:
        self.streams: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
        self.exit_code: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def output(self, fd: int, data: bytes) -> None:
        self.streams.setdefault(fd, bytearray()).extend(data)

    def exited(self, exit_code: int) -> None:
        if not self.exit_code.done():
            self.exit_code.set_result(exit_code)

    def lost(self, why: str) -> None:
        if not self.exit_code.done():
            self.exit_code.set_exception(BackendError(why))

    async def result(self) -> ExecResult:
        code = await self.exit_code
        return ExecResult(code, bytes(self.streams[1]), bytes(self.streams[2]))


class SocketChannel(StreamChannel):
    """The connection to a container's listening agent (a unix socket in its private mount): frames go
    straight between the server and the agent, with no engine in between."""

    @classmethod
    async def connect(cls, path: Path) -> SocketChannel:
        # A socket path longer than sun_path allows (108 bytes) is reached through its directory's fd.
        if len(str(path)) < 100:
            reader, writer = await asyncio.open_unix_connection(str(path), limit=SOCKET_READ_LIMIT)
            return cls(reader, writer)
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            reader, writer = await asyncio.open_unix_connection(
                f"/proc/self/fd/{folder}/{path.name}", limit=SOCKET_READ_LIMIT
            )
        finally:
            os.close(folder)
        return cls(reader, writer)


class AgentChannels:
    """One channel per running devbox, opened once however many commands ask at the same time."""

    def __init__(self, driver: SandboxDriver, private_dirs: PrivateDirs) -> None:
        self._driver = driver
        self._private_dirs = private_dirs
        self._channels: dict[str, AgentChannel] = {}
        self._opening: dict[str, asyncio.Future[AgentChannel]] = {}
        self._digest = hashlib.sha256(private_dirs.agent_source).hexdigest()
        self._abandoned: set[str] = set()

    def abandon(self, devbox_id: str) -> None:
        """The devbox's container stopped: an open still waiting for its agent gives up now."""
        if devbox_id in self._opening:
            self._abandoned.add(devbox_id)

    def is_open(self, devbox_id: str) -> bool:
        channel = self._channels.get(devbox_id)
        return channel is not None and not channel.closed

    async def get(self, devbox_id: str) -> AgentChannel:
        channel = self._channels.get(devbox_id)
        if channel is not None and not channel.closed:
            return channel
        pending = self._opening.get(devbox_id)
        if pending is None:
            pending = asyncio.ensure_future(self._open(devbox_id))
            self._opening[devbox_id] = pending
            pending.add_done_callback(lambda _: self._opening.pop(devbox_id, None))
        return await asyncio.shield(pending)

    async def _open(self, devbox_id: str) -> AgentChannel:
        self._abandoned.discard(devbox_id)  # a stop before this open does not concern it
        name = container_name(devbox_id)
        # Installed on every open, into the devbox's private mount: always this server's version.
        try:
            await asyncio.to_thread(self._private_dirs.install_agent, devbox_id)
        except OSError as exc:
            raise BackendError(f"cannot install the command agent: {exc}") from exc
        socket_path = self._private_dirs.agent_socket(devbox_id)
        if socket_path is not None:
            return await self._connect(devbox_id, socket_path)
        exec_channel = await self._driver.open_channel(name, AGENT_ARGV, user="root")
        channel = AgentChannel(devbox_id, exec_channel, self._forget)
        await channel.start()
        self._channels[devbox_id] = channel
        return channel

    async def _connect(self, devbox_id: str, path: Path) -> AgentChannel:
        """The container's own agent; it may still be starting (create, resume), or be of an older
        server (then it re-execs itself from the file just installed)."""
        deadline = time.monotonic() + HANDSHAKE_SECONDS
        replaced = False
        pause = CONNECT_RETRY_SECONDS
        while True:
            try:
                connection = await SocketChannel.connect(path)
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                if devbox_id in self._abandoned or not path.parent.is_dir():
                    self._abandoned.discard(devbox_id)
                    raise BackendError("the devbox stopped before its command agent answered") from exc
                if time.monotonic() > deadline:
                    raise BackendError(f"the command agent in the devbox is not listening: {exc}") from exc
                # Backing off: fifty devboxes starting at once must not turn into a busy loop here.
                await asyncio.sleep(pause)
                pause = min(pause * 1.5, CONNECT_RETRY_MAX_SECONDS)
                continue
            except OSError as exc:
                raise BackendError(f"cannot reach the command agent in the devbox: {exc}") from exc
            channel = AgentChannel(devbox_id, connection, self._forget)
            try:
                hello = await channel.start()
            except BackendError:
                channel.close()
                if not replaced or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(CONNECT_RETRY_SECONDS)  # reached the agent that is re-executing
                continue
            if hello.get("digest") == self._digest or replaced:
                self._channels[devbox_id] = channel
                return channel
            await channel.replace_agent()
            replaced = True

    async def run_program(
        self, devbox_id: str, argv: list[str], user: str, cwd: str, stdin: bytes | None = None
    ) -> ExecResult | None:
        """Run a short program to its end through the devbox's open channel (a fork in the container, not
        a `docker exec`: a few ms instead of ~50), with `stdin` as its whole input; None when the devbox
        has no open channel, and the caller goes through the engine instead."""
        channel = self._channels.get(devbox_id)
        if channel is None or channel.closed:
            return None
        run = CollectedRun()
        command_id = f"tool-{uuid.uuid4().hex}"
        await channel.run_program(command_id, argv, user, cwd, stdin is not None, run)
        if stdin is not None:
            await channel.send_stdin(command_id, stdin, eof=True)
        return await run.result()

    def _forget(self, channel: AgentChannel) -> None:
        if self._channels.get(channel.devbox_id) is channel:
            del self._channels[channel.devbox_id]

    def close_all(self) -> None:
        for channel in list(self._channels.values()):
            channel.close("the server stopped while this command ran")
