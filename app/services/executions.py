"""Running commands in a devbox: `bash -lc` as the devbox user in its home, synchronously or in the
background. Named shells, stdin, kill and streaming are built on top of this in later work."""

from __future__ import annotations

import uuid

from app.domain.devbox import Devbox, Execution, LogEntry, container_name, now_ms
from app.domain.errors import BackendError, Conflict, InvalidRequest, NotFound, Unsupported, WaitTimeout
from app.domain.ids import new_id
from app.domain.statuses import ExecutionStatus, LogSource
from app.drivers.base import ExecResult, SandboxDriver
from app.services.background import BackgroundTasks
from app.services.devboxes import DevboxService
from app.services.status_watch import StatusWatch, check_statuses, hold_seconds
from app.store.executions import ExecutionStore
from app.store.logs import LogStore

WAIT_DEFAULT_SECONDS = 25.0
WAIT_MAX_SECONDS = 25.0
LAST_N_DEFAULT = 100


def last_lines(text: str | None, n: int) -> tuple[str | None, bool]:
    """The last `n` lines of `text`, and whether anything was cut."""
    if text is None:
        return None, False
    lines = text.splitlines(keepends=True)
    if len(lines) <= n:
        return text, False
    return "".join(lines[-n:]) if n > 0 else "", True


class ExecutionService:
    def __init__(
        self,
        devboxes: DevboxService,
        store: ExecutionStore,
        logs: LogStore,
        driver: SandboxDriver,
        watch: StatusWatch,
        tasks: BackgroundTasks,
    ) -> None:
        self._devboxes = devboxes
        self._store = store
        self._logs = logs
        self._driver = driver
        self._watch = watch
        self._tasks = tasks

    @staticmethod
    def _check_options(shell_name: str | None, attach_stdin: bool | None) -> None:
        if shell_name is not None:
            raise Unsupported("shell_name (persistent named shells) is not supported by this server yet")
        if attach_stdin:
            raise Unsupported("attach_stdin is not supported by this server yet")

    async def _run(self, devbox: Devbox, command: str) -> ExecResult:
        await self._devboxes.touch(devbox.id)
        return await self._driver.exec(
            container_name(devbox.id), ["bash", "-lc", command], user=devbox.username, workdir=devbox.home
        )

    async def _log(self, devbox_id: str, execution_id: str, command: str, exit_code: int) -> None:
        await self._logs.append(
            LogEntry(
                devbox_id=devbox_id,
                timestamp_ms=now_ms(),
                source=LogSource.EXEC.value,
                level="info" if exit_code == 0 else "error",
                message=f"exit status {exit_code}",
                cmd=command,
                cmd_id=execution_id,
                exit_code=exit_code,
            )
        )

    async def execute_sync(
        self, owner: str, devbox_id: str, command: str, shell_name: str | None, attach_stdin: bool | None
    ) -> tuple[Devbox, ExecResult]:
        if attach_stdin:
            raise InvalidRequest("attach_stdin is not valid for execute_sync; use execute_async")
        self._check_options(shell_name, None)
        devbox = await self._devboxes.require_running(owner, devbox_id, "execute a command")
        result = await self._run(devbox, command)
        await self._log(devbox_id, new_id("exe"), command, result.exit_code)
        return devbox, result

    async def execute_async(
        self,
        owner: str,
        devbox_id: str,
        command: str,
        shell_name: str | None,
        attach_stdin: bool | None,
        command_id: str | None = None,
    ) -> Execution:
        self._check_options(shell_name, attach_stdin)
        devbox = await self._devboxes.require_running(owner, devbox_id, "execute a command")
        execution = Execution(
            id=new_id("exe"),
            devbox_id=devbox_id,
            owner=owner,
            command=command,
            status=ExecutionStatus.RUNNING,
            create_time_ms=now_ms(),
            command_id=command_id,
            shell_name=shell_name,
        )
        if not await self._store.insert(execution):
            # A concurrent request with the same command_id won the insert: answer with its execution.
            assert command_id is not None
            return await self._by_command_id(owner, devbox_id, command_id, command)
        self._tasks.spawn(self._complete(devbox, execution), name=f"exec-{execution.id}")
        return execution

    async def _by_command_id(self, owner: str, devbox_id: str, command_id: str, command: str) -> Execution:
        existing = await self._store.by_command_id(devbox_id, command_id, owner)
        if existing is None:
            raise NotFound(f"no execution with command_id {command_id} on devbox {devbox_id}")
        if existing.command != command:
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
    ) -> Execution:
        """Start once per command_id (a repeated id returns the same execution), then wait a little for it."""
        try:
            uuid.UUID(command_id)
        except ValueError:
            raise InvalidRequest(f"command_id must be a UUID (UUIDv7 recommended), got {command_id!r}") from None
        await self._devboxes.get(owner, devbox_id)
        if await self._store.by_command_id(devbox_id, command_id, owner) is not None:
            execution = await self._by_command_id(owner, devbox_id, command_id, command)
        else:
            execution = await self.execute_async(owner, devbox_id, command, shell_name, None, command_id)
        timeout = hold_seconds(optimistic_timeout, WAIT_DEFAULT_SECONDS, WAIT_MAX_SECONDS)
        execution_id = execution.id
        execution, _ = await self._watch.wait_until(
            f"executions:{devbox_id}",
            lambda: self.get(owner, devbox_id, execution_id),
            lambda e: e.status == ExecutionStatus.COMPLETED,
            timeout,
        )
        return execution

    async def _complete(self, devbox: Devbox, execution: Execution) -> None:
        try:
            result = await self._run(devbox, execution.command)
            exit_status, stdout, stderr = (
                result.exit_code,
                result.stdout.decode(errors="replace"),
                result.stderr.decode(errors="replace"),
            )
        except BackendError as exc:
            exit_status, stdout, stderr = 137, "", f"execution ended: {exc}"
        await self._store.update(
            execution.id,
            status=ExecutionStatus.COMPLETED.value,
            exit_status=exit_status,
            stdout=stdout,
            stderr=stderr,
            end_time_ms=now_ms(),
        )
        await self._log(devbox.id, execution.id, execution.command, exit_status)
        self._watch.notify(f"executions:{devbox.id}")

    async def get(self, owner: str, devbox_id: str, execution_id: str) -> Execution:
        await self._devboxes.get(owner, devbox_id)
        execution = await self._store.get(devbox_id, execution_id, owner)
        if execution is None:
            raise NotFound(f"execution {execution_id} not found on devbox {devbox_id}")
        return execution

    async def wait_for_status(
        self, owner: str, devbox_id: str, execution_id: str, statuses: list[str], timeout_seconds: float | None
    ) -> Execution:
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
        return execution
