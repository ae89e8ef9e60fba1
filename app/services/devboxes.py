"""The devbox lifecycle: create (provision, launch commands, entrypoint), suspend, resume, shutdown, and
the reactions to containers that stop under us. Every status change goes through `_move`, a
compare-and-set on the store checked against the transition table."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.domain.devbox import Devbox, LogEntry, Transition, container_name, now_ms
from app.domain.errors import (
    BackendError,
    Conflict,
    ContainerGone,
    DomainError,
    InvalidRequest,
    InvalidState,
    NotFound,
    Unsupported,
    WaitTimeout,
)
from app.domain.ids import new_id
from app.domain.limits import check_metadata
from app.domain.resources import fit_to_host, requested_resources
from app.domain.statuses import (
    ALLOWED_TRANSITIONS,
    TERMINAL,
    DevboxStatus,
    FailureReason,
    LogSource,
    ShutdownReason,
    SnapshotStatus,
    sources_for,
)
from app.domain.timers import check_keep_alive, idle_policy
from app.domain.usage import Usage, compute_usage
from app.drivers.base import LABEL_DEVBOX, LABEL_INSTANCE, LABEL_MANAGED, ContainerSpec, SandboxDriver
from app.services.background import BackgroundTasks
from app.services.private_dirs import AGENT_FILE, AGENT_SOCKET, ENV_DIR, ENV_FILE, GATE_FILE, PrivateDirs
from app.services.startup import StartupContent, StartupWriter, plan_startup
from app.services.status_watch import StatusWatch, check_statuses, hold_seconds
from app.services.warm_pool import WarmContainer, WarmPool
from app.store.devboxes import DevboxStore
from app.store.executions import ExecutionStore
from app.store.logs import LogStore
from app.store.snapshots import SnapshotStore

log = logging.getLogger(__name__)
S = DevboxStatus

DEFAULT_USER = "user"
DEFAULT_UID = 1000
# The gate lives in the devbox's private mount: a snapshot never carries an open gate to a new devbox.
ENTRYPOINT_GATE = f"{ENV_DIR}/{GATE_FILE}"
# With an entrypoint, the container's main process waits until launch commands are done, then becomes
# the entrypoint: its exit is the container's exit, which shuts the devbox down.
# The container's command: the command agent listening in the private mount (app/agent), or where the
# image has no python3, a container that just stays up (commands then report that the agent is missing).
_LISTENING_AGENT = f"command -v python3 >/dev/null 2>&1 && exec python3 -I -S {AGENT_FILE} --listen {AGENT_SOCKET}"
AGENT_CONTAINER_COMMAND = f"{_LISTENING_AGENT}; exec sleep infinity"
# With an entrypoint, the agent runs beside it; the entrypoint's exit ends the container.
_ENTRYPOINT_WRAPPER = (
    f"{{ {_LISTENING_AGENT} & }}; "
    f"while [ ! -e {ENTRYPOINT_GATE} ]; do sleep 0.05; done; "
    f'if [ -r {ENV_FILE} ]; then while IFS= read -r -d "" kv; do export "$kv"; done < {ENV_FILE}; fi; '
    'cd "$3" 2>/dev/null; exec runuser -u "$2" -- bash -lc "$1"'
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
WAIT_DEFAULT_SECONDS = 10.0
WAIT_MAX_SECONDS = 30.0
TOUCH_INTERVAL_MS = 1000


@dataclass(frozen=True)
class ContainerPolicy:
    """How every devbox container is confined, from the server's settings."""

    pids_limit: int = 4096
    network: str | None = None
    runtime: str | None = None


@dataclass
class CreateDevbox:
    """A validated create request, in the service's terms."""

    name: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    entrypoint: str | None = None
    launch_parameters: dict[str, Any] = field(default_factory=dict)
    file_mounts: dict[str, str] = field(default_factory=dict)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    code_mounts: list[dict[str, Any]] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    snapshot_id: str | None = None
    tunnel: dict[str, Any] | None = None  # a new tunnel's fields (app/services/tunnels.new_tunnel)
    # Names of other create fields the caller set; each must be supported or the create is refused.
    other_fields: list[str] = field(default_factory=list)


# Features this server does not provide (yet): refusing them beats silently dropping what was asked.
NOT_SUPPORTED: dict[str, str] = {
    "blueprint_id": "blueprints are not supported by this server",
    "blueprint_name": "blueprints are not supported by this server",
    "repo_connection_id": "repository connections are not supported by this server",
    "gateways": "agent gateways are not supported by this server",
    "mcp": "MCP specs are not supported by this server",
    "launch_parameters.required_services": "containerized services are not supported by this server",
    "launch_parameters.network_policy_id": "network policies are not supported by this server",
    "launch_parameters.lifecycle.resume_triggers": "resume triggers are not supported by this server yet",
}


class DevboxService:
    def __init__(
        self,
        store: DevboxStore,
        logs: LogStore,
        executions: ExecutionStore,
        driver: SandboxDriver,
        watch: StatusWatch,
        tasks: BackgroundTasks,
        instance: str,
        default_image: str,
        stop_timeout_seconds: int,
        containers: ContainerPolicy,
        startup: StartupWriter,
        secrets: dict[str, str],
        private_dirs: PrivateDirs,
        snapshots: SnapshotStore,
    ) -> None:
        self._store = store
        self._logs = logs
        self._executions = executions
        self._driver = driver
        self._watch = watch
        self._tasks = tasks
        self._instance = instance
        self.default_image = default_image
        self._stop_timeout = stop_timeout_seconds
        self._containers = containers
        self._startup = startup
        self._secrets = secrets
        self._private_dirs = private_dirs
        self._snapshots = snapshots
        # Called with the devbox id whenever its container (re)starts: at create, before set-up, so work
        # such as opening the command channel overlaps with it; and at resume.
        self.started_listeners: list[Callable[[str], None]] = []
        # Called with the devbox id when its container stops or goes (suspend, shutdown, failure): work
        # still waiting to reach it gives up rather than waiting for a container that will not answer.
        self.stopped_listeners: list[Callable[[str], None]] = []
        # Called with the devbox id after its container was removed (images it used may now go).
        self.removed_listeners: list[Callable[[str], None]] = []
        self._pool: WarmPool | None = None
        self.creates_in_flight = 0  # devboxes being provisioned now; the warm pool waits for none
        self._touched: dict[str, int] = {}
        # Running devboxes as of their last status change: every change goes through _move, so this
        # answers require_running (once per command) without a query.
        self._running: dict[str, Devbox] = {}

    # ----- reads -------------------------------------------------------------------------------

    async def get(self, owner: str, devbox_id: str, with_transitions: bool = True) -> Devbox:
        devbox = await self._store.get(devbox_id, owner, with_transitions)
        if devbox is None:
            raise NotFound(f"devbox {devbox_id} not found")
        return devbox

    async def status_counts(self) -> dict[str, int]:
        """Devboxes of all tenants by status, every status present (zeros included)."""
        counts = await self._store.count_by_status()
        return {status.value: counts.get(status.value, 0) for status in S}

    def warm_ready(self) -> int:
        return self._pool.ready_count() if self._pool is not None else 0

    async def get_for_credential(self, devbox_id: str) -> Devbox | None:
        """For credentials that name their devbox themselves (SSH keys), which say nothing of the tenant."""
        return await self._store.get(devbox_id, with_transitions=False)

    async def list_devboxes(
        self,
        owner: str,
        status: DevboxStatus | None,
        limit: int,
        starting_after: str | None,
        include_total_count: bool,
    ) -> tuple[list[Devbox], bool, int | None]:
        if not 1 <= limit <= 5000:
            raise InvalidRequest(f"limit must be between 1 and 5000, got {limit}")
        devboxes, has_more = await self._store.list_page(owner, status, limit, starting_after)
        total = await self._store.count(owner, status) if include_total_count else None
        return devboxes, has_more, total

    async def usage(self, owner: str, devbox_id: str) -> tuple[Devbox, Usage]:
        devbox = await self.get(owner, devbox_id)
        transitions = [(t.status, t.time_ms) for t in devbox.transitions]
        usage = compute_usage(
            transitions, now_ms(), devbox.end_time_ms, devbox.cpus, devbox.memory_bytes / 1024**3, devbox.disk_gb
        )
        return devbox, usage

    async def metadata_keys(self, owner: str) -> list[str]:
        return sorted({key for meta in await self._store.metadata_of(owner) for key in meta})

    async def metadata_values(self, owner: str, key: str) -> list[str]:
        if not key.strip():
            raise InvalidRequest("metadata key must not be empty")
        return sorted({meta[key] for meta in await self._store.metadata_of(owner) if key in meta})

    # ----- create ------------------------------------------------------------------------------

    def use_pool(self, pool: WarmPool) -> None:
        self._pool = pool

    def pool_container_spec(self, devbox_id: str, cpus: float, memory_bytes: int, env_dir: Path) -> ContainerSpec:
        """A warm container is made exactly as a cold create of the default devbox would make it."""
        template = Devbox(
            id=devbox_id,
            owner="",
            status=S.PROVISIONING,
            create_time_ms=0,
            image=self.default_image,
            cpus=cpus,
            memory_bytes=memory_bytes,
        )
        return self._container_spec(template, env_dir)

    def _warm_container_for(self, devbox: Devbox) -> WarmContainer | None:
        """Only what a warm container can become: the default image, user and command (no entrypoint)."""
        plain = (
            devbox.image == self.default_image
            and devbox.snapshot_id is None
            and not devbox.entrypoint
            and (devbox.username, devbox.uid) == (DEFAULT_USER, DEFAULT_UID)
        )
        if self._pool is None or not plain:
            return None
        return self._pool.take(devbox.cpus, devbox.memory_bytes)

    async def create(self, owner: str, request: CreateDevbox) -> Devbox:
        params = request.launch_parameters
        for name in request.other_fields:
            reason = NOT_SUPPORTED.get(name, "not supported by this server")
            raise Unsupported(f"{name}: {reason}")
        for name in request.environment:
            if not _ENV_NAME.match(name):
                raise InvalidRequest(f"environment variable name {name!r} is not a valid shell identifier")
        check_metadata(request.metadata)
        check_keep_alive(params.get("keep_alive_time_seconds"))
        idle_policy(params)
        if params.get("architecture") not in (None, "x86_64"):
            raise InvalidRequest("architecture arm64 is not supported by this server (x86_64 only)")
        username, uid = self._user_of(params)
        startup = plan_startup(
            request.file_mounts,
            request.mounts,
            request.code_mounts,
            request.secrets,
            request.environment,
            self._secrets,
        )
        wanted = requested_resources(
            params.get("resource_size_request"),
            params.get("custom_cpu_cores"),
            params.get("custom_gb_memory"),
            params.get("custom_disk_size"),
        )
        image = await self._image_for(owner, request.snapshot_id)
        capacity = await self._driver.capacity()
        placement = fit_to_host(wanted, capacity.cpus, capacity.memory_bytes)
        created = now_ms()
        devbox = Devbox(
            id="",
            owner=owner,
            status=S.PROVISIONING,
            create_time_ms=created,
            name=request.name,
            metadata=dict(request.metadata),
            launch_parameters=params,
            environment=dict(request.environment),
            entrypoint=request.entrypoint,
            image=image,
            snapshot_id=request.snapshot_id,
            username=username,
            uid=uid,
            cpus=placement.cpus,
            memory_bytes=placement.memory_bytes,
            disk_gb=wanted.disk_gb,
            last_activity_ms=created,
            keep_alive_ms=created,
            tunnel_key=request.tunnel["tunnel_key"] if request.tunnel else None,
            tunnel=request.tunnel,
            transitions=[Transition(S.PROVISIONING, created)],
        )
        warm = self._warm_container_for(devbox)
        devbox.id = warm.devbox_id if warm else new_id("dbx")
        self.creates_in_flight += 1
        try:
            await self._store.insert(devbox)
        except BaseException:
            self.creates_in_flight -= 1
            if warm is not None and self._pool is not None:
                self._pool.settled(warm, recorded=False)
            raise
        if warm is not None and self._pool is not None:
            self._pool.settled(warm, recorded=True)
        if placement.note:
            await self._log(devbox.id, LogSource.SETUP_COMMANDS, "warn", placement.note)
        self._tasks.spawn(self._provision(devbox, startup, warm), name=f"provision-{devbox.id}")
        return devbox

    async def _image_for(self, owner: str, snapshot_id: str | None) -> str:
        if snapshot_id is None:
            return self.default_image
        snapshot = await self._snapshots.get(snapshot_id)
        if (
            snapshot is None
            or snapshot.status == SnapshotStatus.DELETED
            or not (snapshot.owner == owner or snapshot.public)
        ):
            raise NotFound(f"snapshot {snapshot_id} not found")
        if snapshot.status != SnapshotStatus.COMPLETE or snapshot.image is None:
            raise InvalidState(f"snapshot {snapshot_id} is {snapshot.status.value}; only a complete one can be used")
        return snapshot.image

    @staticmethod
    def _user_of(params: dict[str, Any]) -> tuple[str, int]:
        user = params.get("user_parameters")
        if not user:
            return DEFAULT_USER, DEFAULT_UID
        username, uid = user["username"], user["uid"]
        if not _USERNAME.match(username):
            raise InvalidRequest(f"user_parameters.username {username!r} is not a valid Linux user name")
        if not 0 <= uid <= 60000 or (username == "root") != (uid == 0):
            raise InvalidRequest("user_parameters.uid must be 0..60000, and 0 exactly when username is root")
        return username, uid

    def _container_spec(self, devbox: Devbox, env_dir: Path) -> ContainerSpec:
        if devbox.entrypoint:
            command = [
                "/bin/bash",
                "-c",
                _ENTRYPOINT_WRAPPER,
                "devbox-entrypoint",
                devbox.entrypoint,
                devbox.username,
                devbox.home,
            ]
        else:
            command = ["/bin/sh", "-c", AGENT_CONTAINER_COMMAND]
        return ContainerSpec(
            name=container_name(devbox.id),
            image=devbox.image,
            command=command,
            labels={LABEL_MANAGED: "true", LABEL_INSTANCE: self._instance, LABEL_DEVBOX: devbox.id},
            binds={str(env_dir): ENV_DIR},
            cpus=devbox.cpus,
            memory_bytes=devbox.memory_bytes,
            pids_limit=self._containers.pids_limit,
            network=self._containers.network,
            runtime=self._containers.runtime,
            hostname=devbox.id.replace("_", "-")[:63],
            # Not the home: Docker would create it root-owned before useradd could make it the user's.
            # Every exec names its own working directory anyway.
            working_dir="/",
        )

    def _bootstrap_script(self, devbox: Devbox) -> str | None:
        """Root-side preparation; None when the image already has all it needs (the fast, common case)."""
        steps = []
        custom_user = (devbox.username, devbox.uid) != (DEFAULT_USER, DEFAULT_UID)
        if (custom_user or devbox.image != self.default_image) and devbox.username != "root":
            steps.append(
                f"id -u {devbox.username} >/dev/null 2>&1 || "
                f"useradd --create-home --uid {devbox.uid} --shell /bin/bash {devbox.username}"
            )
        return " && ".join(steps) or None

    async def _provision(self, devbox: Devbox, startup: StartupContent, warm: WarmContainer | None) -> None:
        try:
            await self._set_up(devbox, startup, warm)
        finally:
            self.creates_in_flight -= 1

    async def _claim(self, warm: WarmContainer, env: dict[str, str]) -> str | None:
        """The warm container's id once it has the devbox's environment; None if it is unusable (then
        it is removed and the create goes the cold way, under the same name)."""
        assert self._pool is not None
        try:
            await self._pool.claim(warm, env)
            return warm.container_id
        except (BackendError, OSError) as exc:
            log.warning("warm container %s unusable, creating cold: %s", warm.devbox_id, exc)
            await self._driver.remove(container_name(warm.devbox_id))
            return None

    async def _set_up(self, devbox: Devbox, startup: StartupContent, warm: WarmContainer | None) -> None:
        name = container_name(devbox.id)
        try:
            env = startup.environment(devbox)
            container_id = await self._claim(warm, env) if warm is not None else None
            if container_id is None:
                env_dir = await asyncio.to_thread(self._private_dirs.prepare, devbox.id, env)
                container_id = await self._driver.run_container(self._container_spec(devbox, env_dir))
            self._container_started(devbox.id)
            if not await self._move(devbox.id, S.INITIALIZING, container_id=container_id):
                await self._driver.remove(name)  # shut down while we were creating it
                return
            script = self._bootstrap_script(devbox)
            if script:
                result = await self._driver.exec(name, ["/bin/sh", "-c", script], user="root")
                if result.exit_code != 0:
                    err = (result.stderr or result.stdout).decode(errors="replace").strip()
                    await self.fail(devbox.id, FailureReason.EXECUTION_FAILED, f"preparing the devbox failed: {err}")
                    return
            await self._startup.write_files(devbox, startup.files)
            for repo in startup.repos:
                problem = await self._startup.clone(devbox, repo, env)
                if problem:
                    await self.fail(devbox.id, FailureReason.EXECUTION_FAILED, problem)
                    return
            for command in devbox.launch_parameters.get("launch_commands") or []:
                if not await self._run_launch_command(devbox, command, env):
                    return
            # Running first, then open the gate: an entrypoint that exits at once must find the devbox
            # running, so its exit reads as entrypoint_exit rather than as a failure during set-up.
            # The gate is a file in the private mount, written on the host: no exec that a suspend right
            # after running could make fail.
            if await self._move(devbox.id, S.RUNNING) and devbox.entrypoint:
                await asyncio.to_thread(self._private_dirs.open_gate, devbox.id)
        except (BackendError, DomainError, OSError) as exc:
            current = await self._store.get(devbox.id)
            if current is not None and current.status in (S.PROVISIONING, S.INITIALIZING):
                await self.fail(devbox.id, FailureReason.EXECUTION_FAILED, f"provisioning failed: {exc}")

    async def _run_launch_command(self, devbox: Devbox, command: str, env: dict[str, str]) -> bool:
        result = await self._driver.exec(
            container_name(devbox.id),
            ["bash", "-lc", command],
            user=devbox.username,
            workdir=devbox.home,
            environment=env,
        )
        output = (result.stdout + result.stderr).decode(errors="replace")
        await self._logs.append(
            LogEntry(
                devbox_id=devbox.id,
                timestamp_ms=now_ms(),
                source=LogSource.SETUP_COMMANDS.value,
                level="info" if result.exit_code == 0 else "error",
                message=output,
                cmd=command,
                exit_code=result.exit_code,
            )
        )
        if result.exit_code != 0:
            await self.fail(
                devbox.id,
                FailureReason.EXECUTION_FAILED,
                f"launch command exited with status {result.exit_code}: {command}",
            )
            return False
        return True

    # ----- transitions -------------------------------------------------------------------------

    async def _move(
        self, devbox_id: str, to: DevboxStatus, from_any: Iterable[DevboxStatus] | None = None, **fields: Any
    ) -> Devbox | None:
        """Compare-and-set a status change allowed by the table; None if the devbox was elsewhere."""
        sources = sources_for(to) if from_any is None else frozenset(from_any)
        assert all(to in ALLOWED_TRANSITIONS[s] for s in sources), f"illegal transition to {to}"
        at = now_ms()
        if to in TERMINAL:
            fields.setdefault("end_time_ms", at)
        moved = await self._store.transition(devbox_id, to, sources, at, **fields)
        if moved is not None:
            self._watch.notify(devbox_id)
            if to == S.RUNNING:
                self._running[devbox_id] = moved
            else:
                self._running.pop(devbox_id, None)
        return moved

    def _container_started(self, devbox_id: str) -> None:
        for listener in self.started_listeners:
            listener(devbox_id)

    async def _log(self, devbox_id: str, source: LogSource, level: str, message: str) -> None:
        await self._logs.append(
            LogEntry(devbox_id=devbox_id, timestamp_ms=now_ms(), source=source.value, level=level, message=message)
        )

    async def fail(self, devbox_id: str, reason: FailureReason, message: str) -> Devbox | None:
        """Enter failure, record why, and remove the container (its logs are already stored)."""
        moved = await self._move(devbox_id, S.FAILURE, failure_reason=reason.value)
        if moved is None:
            return None
        await self._log(devbox_id, LogSource.SETUP_COMMANDS, "error", message)
        await self._end_executions(devbox_id, f"devbox failed: {message}")
        try:
            await self._remove_container(devbox_id)
        except BackendError as exc:
            log.warning("could not remove the container of failed devbox %s: %s", devbox_id, exc)
        return moved

    async def _end_executions(self, devbox_id: str, why: str) -> None:
        for listener in self.stopped_listeners:
            listener(devbox_id)
        await self._executions.complete_unfinished(devbox_id, 137, why, now_ms())
        self._watch.notify(f"executions:{devbox_id}")

    # ----- lifecycle operations ----------------------------------------------------------------

    async def update(self, owner: str, devbox_id: str, name: str | None, metadata: dict[str, str]) -> Devbox:
        check_metadata(metadata)
        await self.get(owner, devbox_id)
        await self._store.update_fields(devbox_id, name=name, metadata=metadata)
        return await self.get(owner, devbox_id)

    async def keep_alive(self, owner: str, devbox_id: str) -> None:
        devbox = await self.get(owner, devbox_id)
        if devbox.status in TERMINAL:
            raise InvalidState(f"devbox {devbox_id} is {devbox.status.value}; keep_alive needs a live devbox")
        at = now_ms()
        await self._store.update_fields(devbox_id, last_activity_ms=at, keep_alive_ms=at)

    async def touch(self, devbox_id: str) -> None:
        """Record activity (executions, file operations) for idle policies: at most one write per
        TOUCH_INTERVAL_MS per devbox, so a stream of commands does not pay a write each."""
        at = now_ms()
        if at - self._touched.get(devbox_id, 0) < TOUCH_INTERVAL_MS:
            return
        self._touched[devbox_id] = at
        await self._store.update_fields(devbox_id, last_activity_ms=at)

    async def require_running(self, owner: str, devbox_id: str, action: str) -> Devbox:
        cached = self._running.get(devbox_id)
        if cached is not None and cached.owner == owner:
            return cached
        devbox = await self.get(owner, devbox_id, with_transitions=False)
        if devbox.status != S.RUNNING:
            hint = " (resume it first)" if devbox.status == S.SUSPENDED else ""
            raise InvalidState(f"cannot {action}: devbox {devbox_id} is {devbox.status.value}, not running{hint}")
        return devbox

    async def _begin(self, owner: str, devbox_id: str, source: DevboxStatus, to: DevboxStatus, verb: str) -> Devbox:
        """Enter the transient status of a suspend or resume, or say why the devbox cannot."""
        devbox = await self.get(owner, devbox_id)
        moved = await self._move(devbox_id, to, from_any=[source]) if devbox.status == source else None
        if moved is None:
            raise InvalidState(
                f"devbox {devbox_id} is {devbox.status.value}; only a {source.value} devbox can be {verb}"
            )
        return moved

    async def _engine_step(self, devbox_id: str, action: str, step: Awaitable[None]) -> bool:
        """Run one engine operation for a devbox; on failure the devbox fails with a reason a person can read."""
        try:
            await step
        except ContainerGone:
            await self.fail(devbox_id, FailureReason.EXECUTION_FAILED, f"the container vanished during {action}")
            return False
        except BackendError as exc:
            await self.fail(devbox_id, FailureReason.EXECUTION_FAILED, f"{action} failed: {exc}")
            return False
        return True

    async def suspend(self, owner: str, devbox_id: str) -> Devbox:
        moved = await self._begin(owner, devbox_id, S.RUNNING, S.SUSPENDING, "suspended")
        self._tasks.spawn(self._suspend(devbox_id), name=f"suspend-{devbox_id}")
        return moved

    async def _suspend(self, devbox_id: str) -> None:
        if await self._engine_step(
            devbox_id, "suspend", self._driver.stop(container_name(devbox_id), self._stop_timeout)
        ):
            await self.finish_suspend(devbox_id)

    async def finish_suspend(self, devbox_id: str) -> None:
        """The container is stopped: the devbox is suspended (unless a shutdown won meanwhile)."""
        await self._end_executions(devbox_id, "devbox was suspended")
        await self._move(devbox_id, S.SUSPENDED, from_any=[S.SUSPENDING])

    async def resume(self, owner: str, devbox_id: str) -> Devbox:
        moved = await self._begin(owner, devbox_id, S.SUSPENDED, S.RESUMING, "resumed")
        self._tasks.spawn(self.finish_resume(devbox_id), name=f"resume-{devbox_id}")
        return moved

    async def finish_resume(self, devbox_id: str) -> None:
        """Start the stopped container and mark the devbox running."""
        if await self._engine_step(devbox_id, "resume", self._driver.start(container_name(devbox_id))):
            self._container_started(devbox_id)
            at = now_ms()  # a resumed devbox starts its idle and keep-alive countdowns afresh
            await self._store.update_fields(devbox_id, last_activity_ms=at, keep_alive_ms=at)
            await self._move(devbox_id, S.RUNNING, from_any=[S.RESUMING])

    async def shutdown(
        self,
        owner: str,
        devbox_id: str,
        reason: ShutdownReason = ShutdownReason.API_SHUTDOWN,
        force: bool = False,
    ) -> Devbox:
        """Remove the container and end the devbox; shutting down an ended devbox returns it unchanged.
        A snapshot in progress blocks it (409) unless `force`, which ends the snapshot as an error."""
        devbox = await self.get(owner, devbox_id)
        if devbox.status not in TERMINAL and await self._snapshots.in_progress_for(devbox_id):
            if not force:
                raise Conflict(
                    f"devbox {devbox_id} has a disk snapshot in progress; wait for it, or shut down with force=true"
                )
            await self._snapshots.fail_in_progress(devbox_id, "the devbox was shut down (force) during the snapshot")
        if devbox.status not in TERMINAL:
            moved = await self._move(devbox_id, S.SHUTDOWN, shutdown_reason=reason.value)
            if moved is not None:
                devbox = moved
                await self._end_executions(devbox_id, "devbox was shut down")
        await self._remove_container(devbox_id)
        return await self.get(owner, devbox_id)

    async def _remove_container(self, devbox_id: str) -> None:
        """The container and its private directory go together, even when the engine is away (the
        container is then removed later, as an orphan)."""
        try:
            await self._driver.remove(container_name(devbox_id))
        finally:
            await asyncio.to_thread(self._private_dirs.remove, devbox_id)
            for listener in self.removed_listeners:
                listener(devbox_id)

    async def wait_for_status(
        self, owner: str, devbox_id: str, statuses: list[str], timeout_seconds: float | None
    ) -> Devbox:
        """Hold the request until the devbox is in one of `statuses`, or raise WaitTimeout."""
        check_statuses(statuses, DevboxStatus, "devbox")
        timeout = hold_seconds(timeout_seconds, WAIT_DEFAULT_SECONDS, WAIT_MAX_SECONDS)
        devbox, reached = await self._watch.wait_until(
            devbox_id, lambda: self.get(owner, devbox_id), lambda d: d.status.value in statuses, timeout
        )
        if not reached:
            raise WaitTimeout(
                f"devbox {devbox_id} is still {devbox.status.value} after {timeout:g} s; "
                f"waited for {', '.join(statuses)}"
            )
        return devbox

    async def await_settled(self, owner: str, devbox_id: str, timeout_seconds: float) -> Devbox:
        """Hold until the devbox is running or ended, at most `timeout_seconds`; returns it either way."""
        devbox, _ = await self._watch.wait_until(
            devbox_id,
            lambda: self.get(owner, devbox_id),
            lambda d: d.status == S.RUNNING or d.status in TERMINAL,
            timeout_seconds,
        )
        return devbox

    # ----- reactions to the container engine ---------------------------------------------------

    async def on_container_stopped(self, devbox_id: str, removed: bool) -> None:
        """A container of ours died or was removed without us asking: end the devbox truthfully."""
        devbox = await self._store.get(devbox_id)
        watched = (S.RUNNING, S.INITIALIZING, S.SUSPENDED) if removed else (S.RUNNING, S.INITIALIZING)
        if devbox is None or devbox.status not in watched:
            # Our own suspend/shutdown, or already handled; or ended by `devboxd devboxes shutdown` in
            # another process, which this one learns of here: forget it as running, wake its waiters.
            forgotten = (
                self._running.pop(devbox_id, None) if devbox is not None and devbox.status != S.RUNNING else None
            )
            if forgotten is not None:
                self._watch.notify(devbox_id)
            return
        name = container_name(devbox_id)
        state = None if removed else await self._driver.inspect(name)
        if state is not None and state.running:
            return  # restarted meanwhile
        if state is not None and state.oom_killed:
            await self.fail(devbox_id, FailureReason.OUT_OF_MEMORY, "the devbox ran out of memory and was killed")
        elif devbox.entrypoint and devbox.status == S.RUNNING and state is not None:
            await self._record_entrypoint_output(devbox_id, state.exit_code)
            if await self._move(devbox_id, S.SHUTDOWN, shutdown_reason=ShutdownReason.ENTRYPOINT_EXIT.value):
                await self._end_executions(devbox_id, "the entrypoint exited and the devbox shut down")
                await self._remove_container(devbox_id)
        elif removed or state is None:
            await self.fail(
                devbox_id, FailureReason.EXECUTION_FAILED, "the devbox's container was removed outside devboxd"
            )
        else:
            await self.fail(
                devbox_id,
                FailureReason.EXECUTION_FAILED,
                f"the devbox's container stopped unexpectedly (exit code {state.exit_code})",
            )

    async def _record_entrypoint_output(self, devbox_id: str, exit_code: int | None) -> None:
        try:
            output = (await self._driver.logs(container_name(devbox_id))).decode(errors="replace")
        except BackendError:
            output = ""
        entries = [
            LogEntry(
                devbox_id=devbox_id,
                timestamp_ms=now_ms(),
                source=LogSource.ENTRYPOINT.value,
                level="info",
                message=line,
            )
            for line in output.splitlines()
        ]
        entries.append(
            LogEntry(
                devbox_id=devbox_id,
                timestamp_ms=now_ms(),
                source=LogSource.ENTRYPOINT.value,
                level="info",
                message=f"entrypoint exited with status {exit_code}",
                exit_code=exit_code,
            )
        )
        await self._logs.append(*entries)
