"""Running commands in a devbox: `bash -lc` as the devbox user in its home, over the devbox's agent
channel. Named shells run their commands one at a time in order of arrival; unnamed commands run in
parallel. Output goes to disk as it arrives (execution_output.py); the row in the store says where
the execution stands."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

from app.domain.devbox import Devbox, Execution, LogEntry, now_ms
from app.domain.errors import (
    BackendError,
    Conflict,
    DomainError,
    InvalidRequest,
    InvalidState,
    NotFound,
    WaitTimeout,
)
from app.domain.ids import new_id
from app.domain.limits import NAME_MAX
from app.domain.statuses import ExecutionStatus, LogSource
from app.observability.metrics import EXECUTIONS_FINISHED, EXECUTIONS_STARTED
from app.services.agent_channel import AgentChannel, AgentChannels
from app.services.background import BackgroundTasks
from app.services.devboxes import DevboxService
from app.services.execution_output import STDERR, STDOUT, OutputSpool, Tail, cut_lines, utf8_boundary
from app.services.status_watch import StatusWatch, check_statuses, hold_seconds
from app.store.executions import ExecutionStore
from app.store.logs import LogStore

WAIT_DEFAULT_SECONDS = 25.0
WAIT_MAX_SECONDS = 25.0
LAST_N_DEFAULT = 100
KILL_WAIT_SECONDS = 10.0
STREAM_CHUNK_BYTES = 64 * 1024
SMALL_OUTPUT_BYTES = 256 * 1024
ENDED_EXIT_STATUS = 137  # what an execution ends with when its devbox stops under it (as if SIGKILLed)


@dataclass(frozen=True)
class ExecutionDetail:
    """An execution with the output a response shows: unset until it completed."""

    execution: Execution
    stdout: Tail | None = None
    stderr: Tail | None = None


@dataclass
class LiveExecution:
    """An execution this server is running: the channel's events land here (see CommandSink)."""

    execution: Execution
    devbox: Devbox
    attach_stdin: bool
    notify_output: Callable[[], None]
    spool: OutputSpool
    files: dict[int, BinaryIO] = field(default_factory=dict)
    channel: AgentChannel | None = None
    ended: asyncio.Future[tuple[int, str | None]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    pending_stdin: list[tuple[bytes, bool]] = field(default_factory=list)
    killed: asyncio.Event = field(default_factory=asyncio.Event)
    recorded: asyncio.Future[bool] | None = None  # the row's insert, when it runs beside the start

    def output(self, fd: int, data: bytes) -> None:
        target = self.files.get(fd)
        if target is None:  # created on first output: most commands print nothing to one stream or both
            target = self.files[fd] = self.spool.open_for_append(self.execution.devbox_id, self.execution.id, fd)
        target.write(data)
        self.notify_output()

    def exited(self, exit_code: int) -> None:
        if not self.ended.done():
            self.ended.set_result((exit_code, None))

    def lost(self, why: str) -> None:
        if not self.ended.done():
            self.ended.set_result((ENDED_EXIT_STATUS, f"execution ended: {why}"))


class ShellQueue:
    """Turns on one named shell, handed out in order of arrival: each command waits for the one before."""

    def __init__(self) -> None:
        self._tails: dict[tuple[str, str], asyncio.Future[None]] = {}

    def enter(self, devbox_id: str, shell: str) -> tuple[asyncio.Future[None] | None, asyncio.Future[None]]:
        key = (devbox_id, shell)
        before = self._tails.get(key)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tails[key] = mine
        mine.add_done_callback(lambda f: self._tails.pop(key) if self._tails.get(key) is f else None)
        return (before if before is not None and not before.done() else None), mine


def _check_shell_name(shell_name: str | None) -> None:
    if shell_name is None:
        return
    if not shell_name.strip() or "\0" in shell_name or len(shell_name) > NAME_MAX:
        raise InvalidRequest(f"shell_name must be 1-{NAME_MAX} characters without NUL, got {shell_name!r}")


class ExecutionService:
    def __init__(
        self,
        devboxes: DevboxService,
        store: ExecutionStore,
        logs: LogStore,
        channels: AgentChannels,
        spool: OutputSpool,
        watch: StatusWatch,
        tasks: BackgroundTasks,
    ) -> None:
        self._devboxes = devboxes
        self._store = store
        self._logs = logs
        self._channels = channels
        self._spool = spool
        self._watch = watch
        self._tasks = tasks
        self._live: dict[str, LiveExecution] = {}
        self._shells = ShellQueue()
        devboxes.started_listeners.append(self.warm_up)

    def busy_devboxes(self) -> set[str]:
        """Devboxes with commands running or queued: active for the idle timers."""
        return {live.execution.devbox_id for live in self._live.values()}

    def warm_up(self, devbox_id: str) -> None:
        """Open the channel as soon as the container runs, so the devbox's first command does not wait."""

        async def open_channel() -> None:
            with contextlib.suppress(BackendError, DomainError):
                await self._channels.get(devbox_id)

        self._tasks.spawn(open_channel(), name=f"agent-open-{devbox_id}")

    # ----- starting -----------------------------------------------------------------------------

    async def execute_sync(
        self, owner: str, devbox_id: str, command: str, shell_name: str | None, attach_stdin: bool | None
    ) -> ExecutionDetail:
        """Run and answer with the whole output (up to the inline limit); the deprecated, blocking form."""
        if attach_stdin:
            raise InvalidRequest("attach_stdin needs execute_async: execute_sync cannot take input")
        execution = await self.execute_async(owner, devbox_id, command, shell_name, attach_stdin=False)
        live = self._live.get(execution.id)
        if live is not None:
            await live.finished.wait()
            return await self.detail(live.execution, last_n=None)
        return await self.detail(await self.get(owner, devbox_id, execution.id), last_n=None)

    async def execute_async(
        self,
        owner: str,
        devbox_id: str,
        command: str,
        shell_name: str | None,
        attach_stdin: bool | None,
        command_id: str | None = None,
    ) -> Execution:
        _check_shell_name(shell_name)
        # The place in the shell's line is taken on arrival, before anything else can interleave.
        before, turn = self._shells.enter(devbox_id, shell_name) if shell_name else (None, None)
        try:
            devbox = await self._devboxes.require_running(owner, devbox_id, "execute a command")
            execution = Execution(
                id=new_id("exe"),
                devbox_id=devbox_id,
                owner=owner,
                command=command,
                status=ExecutionStatus.QUEUED if before is not None else ExecutionStatus.RUNNING,
                create_time_ms=now_ms(),
                command_id=command_id,
                shell_name=shell_name,
            )
            recorded: asyncio.Future[bool] | None = None
            if command_id is None and shell_name is None:
                # Nothing to deduplicate or queue behind: the row is written while the command starts
                # (awaited below, before the id is given out).
                recorded = asyncio.ensure_future(self._store.insert(execution))
            elif not await self._store.insert(execution):
                # A concurrent request with the same command_id won the insert: answer with its execution.
                assert command_id is not None
                existing = await self._by_command_id(owner, devbox_id, command_id, command)
                if existing is None:
                    raise NotFound(f"no execution with command_id {command_id} on devbox {devbox_id}")
                if turn is not None:
                    turn.set_result(None)
                return existing
        except BaseException:
            if turn is not None:
                turn.set_result(None)
            raise
        live = LiveExecution(
            execution, devbox, bool(attach_stdin), lambda: self._watch.notify(f"output:{execution.id}"), self._spool
        )
        live.recorded = recorded
        self._live[execution.id] = live
        self._tasks.spawn(self._drive(live, before, turn), name=f"exec-{execution.id}")
        if recorded is not None:
            try:
                await asyncio.shield(recorded)  # an id handed out is an id a restart still knows
            except Exception:
                live.killed.set()  # not recorded: it must not run on unseen (the drive sees the flag)
                raise
        return execution

    async def _by_command_id(self, owner: str, devbox_id: str, command_id: str, command: str) -> Execution | None:
        """The execution a command_id already started, if any; the same id for another command is a conflict."""
        existing = await self._store.by_command_id(devbox_id, command_id, owner)
        if existing is not None and existing.command != command:
            raise Conflict(f"command_id {command_id} was already used for a different command")
        return existing

    async def execute(
        self,
        owner: str,
        devbox_id: str,
        command_id: str,
        command: str,
        shell_name: str | None,
        optimistic_timeout: float | None,
        last_n: int,
    ) -> ExecutionDetail:
        """Start once per command_id (a repeated id returns the same execution), then wait a little for it."""
        try:
            uuid.UUID(command_id)
        except ValueError:
            raise InvalidRequest(f"command_id must be a UUID (UUIDv7 recommended), got {command_id!r}") from None
        execution = await self._by_command_id(owner, devbox_id, command_id, command)
        if execution is None:
            execution = await self.execute_async(owner, devbox_id, command, shell_name, None, command_id)
        timeout = hold_seconds(optimistic_timeout, WAIT_DEFAULT_SECONDS, WAIT_MAX_SECONDS)
        return await self.detail(await self._wait(owner, devbox_id, execution, timeout), last_n)

    async def _wait(self, owner: str, devbox_id: str, execution: Execution, timeout: float) -> Execution:
        live = self._live.get(execution.id)
        if live is not None:  # the fast path: no reads of the store while it runs
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(live.finished.wait()), timeout)
            return live.execution
        execution_id = execution.id
        execution, _ = await self._watch.wait_until(
            f"executions:{devbox_id}",
            lambda: self.get(owner, devbox_id, execution_id),
            lambda e: e.status == ExecutionStatus.COMPLETED,
            timeout,
        )
        return execution

    # ----- running ------------------------------------------------------------------------------

    async def _drive(
        self, live: LiveExecution, before: asyncio.Future[None] | None, turn: asyncio.Future[None] | None
    ) -> None:
        execution = live.execution
        exit_status, note = ENDED_EXIT_STATUS, None
        try:
            if before is not None:
                killed: asyncio.Future[Any] = asyncio.ensure_future(live.killed.wait())
                await asyncio.wait([before, killed], return_when=asyncio.FIRST_COMPLETED)
                killed.cancel()
                if not live.killed.is_set():
                    await self._store.update(execution.id, status=ExecutionStatus.RUNNING.value)
                    live.execution = replace(execution, status=ExecutionStatus.RUNNING)
                    self._watch.notify(f"executions:{execution.devbox_id}")
            if live.killed.is_set():
                note = "execution was killed before it started"
            else:
                exit_status, note = await self._run(live)
        except (BackendError, DomainError) as exc:
            note = f"execution could not run: {exc}"
        finally:
            for f in live.files.values():
                f.close()
            if turn is not None:
                # The next command on the shell goes after this one and after everything before it.
                if before is None or before.done():
                    turn.set_result(None)
                else:
                    before.add_done_callback(lambda _: turn.set_result(None))
            await self._finish(live, exit_status, note)

    async def _run(self, live: LiveExecution) -> tuple[int, str | None]:
        execution, devbox = live.execution, live.devbox
        channel = await self._channels.get(devbox.id)
        EXECUTIONS_STARTED.inc()
        await channel.run(
            execution.id, execution.command, devbox.username, execution.shell_name, live.attach_stdin, live
        )
        # Input sent until now waited in pending_stdin (the agent drops input for commands it has not
        # started): it goes first, in order; only then does new input go straight to the channel.
        while live.pending_stdin:
            data, eof = live.pending_stdin.pop(0)
            await channel.send_stdin(execution.id, data, eof)
        live.channel = channel
        if live.killed.is_set():  # killed while it was being started
            await channel.signal(execution.id, signal.SIGKILL, group=True)
        await self._devboxes.touch(devbox.id)  # after the start: the command need not wait for this write
        return await live.ended

    async def _finish(self, live: LiveExecution, exit_status: int, note: str | None) -> None:
        execution = live.execution
        EXECUTIONS_FINISHED.labels("killed" if live.killed.is_set() else "lost" if note else "exited").inc()
        end = now_ms()
        entry = LogEntry(
            devbox_id=execution.devbox_id,
            timestamp_ms=end,
            source=LogSource.EXEC.value,
            level="info" if exit_status == 0 else "error",
            message=note or f"exit status {exit_status}",
            cmd=execution.command,
            cmd_id=execution.id,
            exit_code=exit_status,
            shell_name=execution.shell_name,
        )
        completed = replace(
            execution, status=ExecutionStatus.COMPLETED, exit_status=exit_status, stderr=note, end_time_ms=end
        )
        try:
            if live.recorded is not None:
                await live.recorded
            # Stored before anyone hears of the end: an answer never gets ahead of what a restart finds.
            if await self._store.complete(execution.id, exit_status, note, end, entry):
                live.execution = completed
                self._logs.announce(execution.devbox_id)  # the log entry went in with the completion
            else:  # a devbox stop ended it first: what the store says is the truth
                live.execution = await self._store.get(execution.devbox_id, execution.id, execution.owner) or completed
        finally:
            self._live.pop(execution.id, None)
            live.finished.set()
            self._watch.notify(f"executions:{execution.devbox_id}")
            self._watch.notify(f"output:{execution.id}")

    # ----- acting on a running execution ----------------------------------------------------------

    async def _require_live(self, owner: str, devbox_id: str, execution_id: str, action: str) -> LiveExecution:
        execution = await self.get(owner, devbox_id, execution_id)
        live = self._live.get(execution_id)
        if execution.status == ExecutionStatus.COMPLETED or live is None:
            raise InvalidState(f"cannot {action}: execution {execution_id} has completed")
        return live

    async def send_stdin(
        self, owner: str, devbox_id: str, execution_id: str, text: str | None, signal_name: str | None
    ) -> None:
        if text is None and signal_name is None:
            raise InvalidRequest("send text, a signal (EOF or INTERRUPT), or both")
        live = await self._require_live(owner, devbox_id, execution_id, "send stdin")
        if not live.attach_stdin:
            raise InvalidRequest(
                f"execution {execution_id} was started without attach_stdin; "
                "start it with execute_async and attach_stdin: true to send it input"
            )
        data = (text or "").encode()
        if signal_name == "INTERRUPT":
            if data:
                await self._to_stdin(live, data, eof=False)
            if live.channel is None:
                raise InvalidState(f"cannot interrupt execution {execution_id}: it has not started yet")
            await live.channel.signal(execution_id, signal.SIGINT, group=True)
        else:
            await self._to_stdin(live, data, eof=signal_name == "EOF")

    @staticmethod
    async def _to_stdin(live: LiveExecution, data: bytes, eof: bool) -> None:
        if live.channel is None:  # still queued: delivered when it starts
            live.pending_stdin.append((data, eof))
        else:
            await live.channel.send_stdin(live.execution.id, data, eof)

    async def kill(self, owner: str, devbox_id: str, execution_id: str, process_group: bool) -> ExecutionDetail:
        """SIGKILL the command (or its whole process group); answers once it completed."""
        execution = await self.get(owner, devbox_id, execution_id)
        live = self._live.get(execution_id)
        if live is not None and execution.status != ExecutionStatus.COMPLETED:
            live.killed.set()
            if live.channel is not None:
                with contextlib.suppress(BackendError):
                    await live.channel.signal(execution_id, signal.SIGKILL, group=process_group)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(live.finished.wait()), KILL_WAIT_SECONDS)
        return await self.detail(await self.get(owner, devbox_id, execution_id), LAST_N_DEFAULT)

    # ----- reading ------------------------------------------------------------------------------

    async def get(self, owner: str, devbox_id: str, execution_id: str) -> Execution:
        live = self._live.get(execution_id)
        if live is not None and live.execution.owner == owner and live.execution.devbox_id == devbox_id:
            return live.execution  # newest there, and its row may not be written yet
        await self._devboxes.get(owner, devbox_id)
        execution = await self._store.get(devbox_id, execution_id, owner)
        if execution is None:
            raise NotFound(f"execution {execution_id} not found on devbox {devbox_id}")
        return execution

    async def get_detail(self, owner: str, devbox_id: str, execution_id: str, last_n: int) -> ExecutionDetail:
        return await self.detail(await self.get(owner, devbox_id, execution_id), last_n)

    async def detail(self, execution: Execution, last_n: int | None) -> ExecutionDetail:
        if execution.status != ExecutionStatus.COMPLETED:
            return ExecutionDetail(execution)

        def tail(fd: int, stored: str | None) -> Tail:
            spooled = self._spool.tail(execution.devbox_id, execution.id, fd, last_n)
            if spooled is None:
                return cut_lines((stored or "").encode(), last_n)
            if not stored:
                return spooled
            # A note from the server (why the execution ended) follows the output.
            joined = cut_lines((spooled.text + stored).encode(), last_n)
            return Tail(joined.text, joined.truncated or spooled.truncated)

        def both() -> tuple[Tail, Tail]:
            return tail(STDOUT, execution.stdout), tail(STDERR, execution.stderr)

        sizes = sum(self._spool.size(execution.devbox_id, execution.id, fd) for fd in (STDOUT, STDERR))
        # Small outputs are read in place (a thread hop costs more); big ones off the event loop.
        stdout, stderr = both() if sizes <= SMALL_OUTPUT_BYTES else await asyncio.to_thread(both)
        return ExecutionDetail(execution, stdout, stderr)

    async def wait_for_status(
        self,
        owner: str,
        devbox_id: str,
        execution_id: str,
        statuses: list[str],
        timeout_seconds: float | None,
        last_n: int = LAST_N_DEFAULT,
    ) -> ExecutionDetail:
        check_statuses(statuses, ExecutionStatus, "execution")
        timeout = hold_seconds(timeout_seconds, WAIT_DEFAULT_SECONDS, WAIT_MAX_SECONDS)
        execution, reached = await self._watch.wait_until(
            f"executions:{devbox_id}",
            lambda: self.get(owner, devbox_id, execution_id),
            lambda e: e.status.value in statuses,
            timeout,
        )
        if not reached:
            raise WaitTimeout(f"execution {execution_id} is still {execution.status.value} after {timeout:g} s")
        return await self.detail(execution, last_n)

    async def stream_output(
        self, owner: str, devbox_id: str, execution_id: str, fd: int, offset: str | None
    ) -> AsyncIterator[tuple[str, int]]:
        """(text, end offset) chunks of stdout or stderr from byte `offset`, live until the execution
        completed and everything was sent. Validates before the first chunk, so errors answer as JSON."""
        try:
            position = int(offset) if offset not in (None, "") else 0
        except ValueError:
            raise InvalidRequest(f"offset must be a byte offset (an integer >= 0), got {offset!r}") from None
        if position < 0:
            raise InvalidRequest(f"offset must be >= 0, got {position}")
        await self.get(owner, devbox_id, execution_id)
        return self._stream(owner, devbox_id, execution_id, fd, position)

    async def _stream(
        self, owner: str, devbox_id: str, execution_id: str, fd: int, position: int
    ) -> AsyncIterator[tuple[str, int]]:
        while True:
            with self._watch.subscribe(f"output:{execution_id}") as changed:
                changed.clear()
                execution = await self.get(owner, devbox_id, execution_id)
                done = execution.status == ExecutionStatus.COMPLETED
                data = await asyncio.to_thread(
                    self._spool.read, devbox_id, execution_id, fd, position, STREAM_CHUNK_BYTES
                )
                if data:
                    # Whole characters only, unless the output ended mid-character.
                    keep = utf8_boundary(data)
                    if keep == 0 and (done or len(data) >= 4):
                        keep = len(data)
                    if keep:
                        position += keep
                        yield data[:keep].decode(errors="replace"), position
                        continue
                if done:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout=5.0)
