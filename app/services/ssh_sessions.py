"""One SSH session channel, run inside its devbox by the command agent: a shell, a command (each on a
pty when the client asked for one) or the sftp subsystem (the image's sftp-server; OpenSSH's scp speaks
sftp too). Bytes flow both ways unchanged; the exit status goes back to the client."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncssh

from app.domain.errors import BackendError, DomainError
from app.domain.ids import new_id
from app.services.agent_channel import AgentChannel, AgentChannels
from app.services.background import BackgroundTasks
from app.services.devboxes import DevboxService

# Where Debian, Fedora and Arch put OpenSSH's sftp-server; a devbox without one gets a clear error.
SFTP_SERVER = (
    "for p in /usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server /usr/lib/ssh/sftp-server; "
    'do [ -x "$p" ] && exec "$p"; done; echo "devboxd: this devbox has no sftp-server" >&2; exit 127'
)
LOGIN_SHELL = "exec bash -l"  # `ssh devbox < script`: a shell reading commands from stdin, no pty
HANGUP_GRACE_SECONDS = 5.0
TOUCH_EVERY_SECONDS = 1.0
INPUT_HIGH_WATER = 64  # queued client packets before we stop reading from the client
INPUT_LOW_WATER = 16


@dataclass(frozen=True)
class SessionOwner:
    """Who the session runs for: decided at login from the key."""

    tenant: str
    devbox_id: str
    user: str


@dataclass(frozen=True)
class _Input:
    kind: str  # data | eof | resize | signal
    data: bytes = b""
    cols: int = 0
    rows: int = 0
    signum: int = 0


class DevboxSshSession(asyncssh.SSHServerSession[bytes]):
    def __init__(
        self,
        owner: SessionOwner,
        devboxes: DevboxService,
        channels: AgentChannels,
        tasks: BackgroundTasks,
        on_open: Callable[[DevboxSshSession], None],
        on_close: Callable[[DevboxSshSession], None],
    ) -> None:
        self.owner = owner
        self.id = new_id("ssh")
        self._devboxes = devboxes
        self._channels = channels
        self._tasks = tasks
        self._on_open = on_open
        self._on_close = on_close
        self._chan: asyncssh.SSHServerChannel[bytes] | None = None
        self._term: str | None = None
        self._size = (80, 24)
        self._command: str | None = None
        self._inputs: asyncio.Queue[_Input] = asyncio.Queue()
        self._reading_paused = False
        self._pump: asyncio.Task[None] | None = None
        self._agent: AgentChannel | None = None
        self._running = False
        self._last_touch = 0.0

    # ----- what the client asks for --------------------------------------------------------------------

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self._chan = chan

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Any) -> bool:
        self._term = term_type or None
        cols, rows = term_size[0], term_size[1]
        self._size = (cols or 80, rows or 24)
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self._command = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        if subsystem != "sftp":
            return False
        self._command = SFTP_SERVER
        self._term = None  # sftp is a byte protocol, never on a pty
        return True

    def session_started(self) -> None:
        self._on_open(self)
        self._pump = asyncio.create_task(self._run(), name=f"ssh-{self.id}")

    # ----- bytes and events from the client, forwarded in order by _run ----------------------------------

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self._queue(_Input("data", data=data))
        if self._inputs.qsize() >= INPUT_HIGH_WATER and self._chan is not None and not self._reading_paused:
            self._reading_paused = True
            self._chan.pause_reading()

    def eof_received(self) -> bool:
        self._queue(_Input("eof"))
        return True  # keep the channel open for the output still to come

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        if self._term is not None and width and height:
            self._queue(_Input("resize", cols=width, rows=height))

    def signal_received(self, signal_name: str) -> None:
        with contextlib.suppress(KeyError):
            self._queue(_Input("signal", signum=int(signal.Signals[f"SIG{signal_name.upper()}"])))

    def break_received(self, msec: int) -> bool:
        self._queue(_Input("signal", signum=int(signal.SIGINT)))
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._running and self._agent is not None and not self._agent.closed:
            self._tasks.spawn(self._hang_up(self._agent), name=f"ssh-hangup-{self.id}")
        if self._pump is not None:
            self._pump.cancel()
        self._on_close(self)

    def _queue(self, item: _Input) -> None:
        self._inputs.put_nowait(item)

    # ----- the process in the devbox -------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            agent = await self._start()
        except (DomainError, BackendError) as exc:
            message = exc.message if isinstance(exc, DomainError) else str(exc)
            self._finish(255, f"devboxd: {message}\r\n" if self._term else f"devboxd: {message}\n")
            return
        while True:
            item = await self._inputs.get()
            if self._reading_paused and self._inputs.qsize() <= INPUT_LOW_WATER and self._chan is not None:
                self._reading_paused = False
                self._chan.resume_reading()
            try:
                await self._forward(agent, item)
            except BackendError:
                return  # the channel ended; lost() tells the client

    async def _start(self) -> AgentChannel:
        owner = self.owner
        await self._devboxes.require_running(owner.tenant, owner.devbox_id, "open an SSH session")
        agent = await self._channels.get(owner.devbox_id)
        self._agent = agent
        cols, rows = self._size
        if self._term is not None:
            await agent.open_terminal(self.id, owner.user, cols, rows, self, self._command, self._term)
        else:
            await agent.run(self.id, self._command or LOGIN_SHELL, owner.user, None, True, self)
        self._running = True
        return agent

    async def _forward(self, agent: AgentChannel, item: _Input) -> None:
        if item.kind == "data":
            self._touch()
            await agent.send_stdin(self.id, item.data, eof=False)
        elif item.kind == "eof":
            await agent.send_stdin(self.id, b"", eof=True)
        elif item.kind == "resize":
            await agent.resize(self.id, item.cols, item.rows)
        elif self._term is not None:
            await agent.signal_foreground(self.id, item.signum)
        else:
            await agent.signal(self.id, item.signum, group=True)

    async def _hang_up(self, agent: AgentChannel) -> None:
        """The client went away: SIGHUP like a closed terminal, then SIGKILL for what ignores it."""
        with contextlib.suppress(BackendError):
            await agent.signal(self.id, signal.SIGHUP, group=True)
            await asyncio.sleep(HANGUP_GRACE_SECONDS)
            if self._running:
                await agent.signal(self.id, signal.SIGKILL, group=True)

    def _touch(self) -> None:
        """SSH traffic is activity for idle policies; at most one store write a second."""
        now = time.monotonic()
        if now - self._last_touch >= TOUCH_EVERY_SECONDS:
            self._last_touch = now
            self._tasks.spawn(self._devboxes.touch(self.owner.devbox_id), name=f"ssh-touch-{self.id}")

    # ----- CommandSink: what the agent reports ---------------------------------------------------------

    def output(self, fd: int, data: bytes) -> None:
        if self._chan is None or self._chan.is_closing():
            return
        self._touch()
        if fd == 2:
            self._chan.write_stderr(data)
        else:
            self._chan.write(data)

    def exited(self, exit_code: int) -> None:
        self._running = False
        self._finish(exit_code)

    def lost(self, why: str) -> None:
        self._running = False
        self._finish(255, f"\r\ndevboxd: {why}\r\n" if self._term else f"devboxd: {why}\n")

    def _finish(self, status: int, message: str = "") -> None:
        chan = self._chan
        if chan is None or chan.is_closing():
            return
        if message:
            chan.write_stderr(message.encode())
        with contextlib.suppress(OSError, asyncssh.Error):
            chan.write_eof()
        chan.exit(max(0, min(255, status)))
