"""Interactive terminals: named PTY sessions running a login bash as the devbox user, reached over a
WebSocket (app/api/routers/ptys.py), one client at a time.

A session lives in the devbox's command agent (app/agent/devbox_agent.py). When its client goes away
it is kept for the idle TTL, collecting what it prints (bounded) for the client that comes back; after
the TTL, an explicit close, or the end of the container (suspend, shutdown), the next connect with
that name starts a fresh shell."""

from __future__ import annotations

import asyncio
import re
import secrets
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from app.domain.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from app.domain.ids import new_id
from app.services.agent_channel import AgentChannel, AgentChannels
from app.services.background import BackgroundTasks
from app.services.devboxes import DevboxService

SESSION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
REPLAY_LIMIT_BYTES = 256 * 1024
SIZE_MAX = 1000
DEFAULT_COLS, DEFAULT_ROWS = 80, 24


@dataclass
class Terminal:
    """One PTY session; the agent channel delivers its output here (see CommandSink)."""

    id: str
    devbox_id: str
    name: str
    cols: int
    rows: int
    channel: AgentChannel | None = None
    client: asyncio.Queue[bytes | None] | None = None  # the attached client's outbox; None = detached
    missed: bytearray = field(default_factory=bytearray)  # output while detached, for the next client
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    idle_timer: asyncio.TimerHandle | None = None
    on_end: Callable[[Terminal], None] | None = None

    def output(self, fd: int, data: bytes) -> None:
        if self.client is not None:
            self.client.put_nowait(data)
        else:
            self.missed += data
            del self.missed[: max(0, len(self.missed) - REPLAY_LIMIT_BYTES)]

    def exited(self, exit_code: int) -> None:
        self._end()

    def lost(self, why: str) -> None:
        self._end()

    def _end(self) -> None:
        self.ended.set()
        if self.client is not None:
            self.client.put_nowait(None)
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        if self.on_end is not None:
            self.on_end(self)


def terminal_size(cols: int | None, rows: int | None) -> tuple[int, int] | None:
    """Both given and each 1..1000, or no size at all."""
    if cols is None or rows is None or not (1 <= cols <= SIZE_MAX and 1 <= rows <= SIZE_MAX):
        return None
    return cols, rows


def check_session_name(name: str) -> None:
    if not SESSION_NAME.match(name):
        raise InvalidRequest(f"session_name must be 1..256 of A-Z a-z 0-9 - _, got {name[:300]!r}")


def signal_number(name: str | None) -> int:
    if not name:
        raise InvalidRequest("signal needs a POSIX signal name, e.g. SIGINT")
    wanted = name.upper() if name.upper().startswith("SIG") else f"SIG{name.upper()}"
    try:
        return int(signal.Signals[wanted])
    except KeyError:
        raise InvalidRequest(f"unknown signal {name!r}") from None


class PtyService:
    def __init__(
        self, devboxes: DevboxService, channels: AgentChannels, tasks: BackgroundTasks, idle_ttl_seconds: int
    ) -> None:
        self._devboxes = devboxes
        self._channels = channels
        self._tasks = tasks
        self.idle_ttl_seconds = idle_ttl_seconds
        self._sessions: dict[tuple[str, str], Terminal] = {}
        self._tunnels: dict[str, tuple[str, str]] = {}  # PTY tunnel auth token -> (owner, devbox id)

    # ----- PTY tunnels: a bearer token that opens terminals on one devbox ----------------------------

    async def create_tunnel(self, owner: str, devbox_id: str) -> tuple[str, str]:
        await self._devboxes.require_running(owner, devbox_id, "open a terminal")
        token = secrets.token_urlsafe(32)
        self._tunnels[token] = (owner, devbox_id)
        return secrets.token_hex(13), token

    def devbox_of_token(self, authorization: str | None) -> tuple[str, str]:
        scheme, _, token = (authorization or "").partition(" ")
        found = self._tunnels.get(token.strip()) if scheme.lower() == "bearer" else None
        if found is None:
            raise Unauthorized("send 'Authorization: Bearer <auth_token>' from create_pty_tunnel")
        return found

    # ----- sessions ---------------------------------------------------------------------------------

    def busy_devboxes(self) -> set[str]:
        """Devboxes with a client attached to a terminal: active for the idle timers."""
        return {t.devbox_id for t in self._sessions.values() if t.client is not None}

    async def connect(
        self, owner: str, devbox_id: str, name: str, cols: int | None, rows: int | None
    ) -> tuple[Terminal, bool]:
        """The session named `name`, started if it does not exist; (terminal, created)."""
        check_session_name(name)
        size = terminal_size(cols, rows)
        devbox = await self._devboxes.require_running(owner, devbox_id, "open a terminal")
        terminal = self._sessions.get((devbox_id, name))
        if terminal is not None and not terminal.ended.is_set():
            if size is not None and terminal.channel is not None:
                await self._resize(terminal, *size)
            return terminal, False
        width, height = size or (DEFAULT_COLS, DEFAULT_ROWS)
        terminal = Terminal(new_id("pty"), devbox_id, name, width, height, on_end=self._forget)
        channel = await self._channels.get(devbox_id)
        terminal.channel = channel
        self._sessions[(devbox_id, name)] = terminal
        await channel.open_terminal(terminal.id, devbox.username, width, height, terminal)
        self._start_idle_timer(terminal)  # nobody attached yet
        return terminal, True

    def _forget(self, terminal: Terminal) -> None:
        if self._sessions.get((terminal.devbox_id, terminal.name)) is terminal:
            del self._sessions[(terminal.devbox_id, terminal.name)]

    def _start_idle_timer(self, terminal: Terminal) -> None:
        if terminal.idle_timer is not None:
            terminal.idle_timer.cancel()
        loop = asyncio.get_running_loop()
        terminal.idle_timer = loop.call_later(
            self.idle_ttl_seconds, lambda: self._tasks.spawn(self._hang_up(terminal), name=f"pty-ttl-{terminal.id}")
        )

    def _require(self, devbox_id: str, name: str) -> Terminal:
        check_session_name(name)
        terminal = self._sessions.get((devbox_id, name))
        if terminal is None or terminal.ended.is_set():
            raise NotFound(f"no terminal session {name!r} on devbox {devbox_id}")
        return terminal

    def attach(self, terminal: Terminal) -> tuple[asyncio.Queue[bytes | None], bytes]:
        """Make the caller the one client; returns its outbox and the output it missed."""
        if terminal.client is not None:
            raise Conflict(f"terminal session {terminal.name!r} already has a client attached")
        if terminal.ended.is_set():
            raise NotFound(f"terminal session {terminal.name!r} has ended")
        if terminal.idle_timer is not None:
            terminal.idle_timer.cancel()
            terminal.idle_timer = None
        terminal.client = asyncio.Queue()
        missed, terminal.missed = bytes(terminal.missed), bytearray()
        return terminal.client, missed

    def detach(self, terminal: Terminal) -> None:
        terminal.client = None
        if not terminal.ended.is_set():
            self._start_idle_timer(terminal)

    async def write(self, terminal: Terminal, data: bytes) -> None:
        if terminal.channel is not None and not terminal.ended.is_set():
            await terminal.channel.send_stdin(terminal.id, data, eof=False)
            await self._devboxes.touch(terminal.devbox_id)

    async def control(
        self,
        owner: str,
        devbox_id: str,
        name: str,
        action: str | None,
        cols: int | None,
        rows: int | None,
        signal_name: str | None,
    ) -> Terminal:
        await self._devboxes.get(owner, devbox_id, with_transitions=False)
        terminal = self._require(devbox_id, name)
        if action == "resize":
            size = terminal_size(cols, rows)
            if size is None:
                raise InvalidRequest(f"resize needs cols and rows, each 1..{SIZE_MAX}")
            await self._resize(terminal, *size)
        elif action == "signal":
            signum = signal_number(signal_name)
            assert terminal.channel is not None
            await terminal.channel.signal_foreground(terminal.id, signum)
        elif action == "close":
            await self._hang_up(terminal)
        else:
            raise InvalidRequest(f"action must be resize, signal or close, got {action!r}")
        return terminal

    async def _resize(self, terminal: Terminal, cols: int, rows: int) -> None:
        assert terminal.channel is not None
        terminal.cols, terminal.rows = cols, rows
        await terminal.channel.resize(terminal.id, cols, rows)

    async def _hang_up(self, terminal: Terminal) -> None:
        """SIGHUP to the whole session, as a closed terminal does; the session is forgotten."""
        self._forget(terminal)
        channel = terminal.channel
        if channel is not None and not terminal.ended.is_set():
            await channel.signal_foreground(terminal.id, signal.SIGHUP)
            await channel.signal(terminal.id, signal.SIGHUP, group=True)

            async def finish_off() -> None:  # a shell that ignores SIGHUP does not outlive its session
                await asyncio.sleep(2)
                if not channel.closed:
                    await channel.signal(terminal.id, signal.SIGKILL, group=True)

            self._tasks.spawn(finish_off(), name=f"pty-kill-{terminal.id}")
        terminal.ended.set()
        if terminal.client is not None:
            terminal.client.put_nowait(None)
