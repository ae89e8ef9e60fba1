"""What a devbox starts with beyond its image: files, cloned repositories and secrets.

Validated at create (so a bad request is a 400, not a failed devbox) and then held only in memory until
provisioning uses it: secret values and git tokens are never stored, logged or shown in a view.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

from app.domain.devbox import Devbox, LogEntry, container_name, now_ms
from app.domain.errors import InvalidRequest, Unsupported
from app.domain.statuses import LogSource
from app.drivers.base import SandboxDriver
from app.services.container_files import ContainerFiles
from app.store.logs import LogStore

_REPO_PART = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_CLONE = 'git clone --quiet -- "$1" "$2" && if [ -n "$3" ]; then git -C "$2" checkout --quiet "$3"; fi'
UNSUPPORTED_MOUNTS = {
    "object_mount": "object mounts are not supported by this server",
    "agent_mount": "agent mounts are not supported by this server",
    "broker_mount": "broker mounts are not supported by this server",
}


@dataclass(frozen=True)
class CodeMount:
    repo_owner: str
    repo_name: str
    git_ref: str | None = None
    install_command: str | None = None
    token: str | None = field(default=None, repr=False)


@dataclass
class StartupContent:
    files: list[tuple[str, str]] = field(default_factory=list)
    repos: list[CodeMount] = field(default_factory=list)
    secret_env: dict[str, str] = field(default_factory=dict, repr=False)

    def environment(self, devbox: Devbox) -> dict[str, str]:
        """What every command in the devbox sees: its environment variables plus its secrets."""
        return {**devbox.environment, **self.secret_env}


def _code_mount(raw: dict[str, Any], where: str) -> CodeMount:
    owner, name = raw.get("repo_owner"), raw.get("repo_name")
    for label, value in (("repo_owner", owner), ("repo_name", name)):
        if not isinstance(value, str) or not _REPO_PART.match(value) or value in (".", ".."):
            raise InvalidRequest(f"{where}.{label} must be 1-100 of [A-Za-z0-9_.-], got {value!r}")
    optional = {k: raw.get(k) for k in ("git_ref", "install_command", "token")}
    for key, value in optional.items():
        if value is not None and not isinstance(value, str):
            raise InvalidRequest(f"{where}.{key} must be a string")
    if optional["git_ref"] is not None and optional["git_ref"].startswith("-"):
        raise InvalidRequest(f"{where}.git_ref must not start with '-'")
    return CodeMount(str(owner), str(name), optional["git_ref"], optional["install_command"], optional["token"])


def plan_startup(
    file_mounts: dict[str, str],
    mounts: list[dict[str, Any]],
    code_mounts: list[dict[str, Any]],
    secrets: dict[str, str],
    environment: dict[str, str],
    known_secrets: dict[str, str],
) -> StartupContent:
    """Validate the create request's start-up content (InvalidRequest / Unsupported on bad input)."""
    plan = StartupContent(files=list(file_mounts.items()))
    plan.repos = [_code_mount(raw, f"code_mounts[{i}]") for i, raw in enumerate(code_mounts)]
    for i, mount in enumerate(mounts):
        kind = mount.get("type")
        if kind == "file_mount":
            target, content = mount.get("target"), mount.get("content")
            if not isinstance(target, str) or not isinstance(content, str):
                raise InvalidRequest(f"mounts[{i}]: a file_mount needs string target and content")
            plan.files.append((target, content))
        elif kind == "code_mount":
            plan.repos.append(_code_mount(mount, f"mounts[{i}]"))
        elif isinstance(kind, str) and kind in UNSUPPORTED_MOUNTS:
            raise Unsupported(f"mounts[{i}].type {kind}: {UNSUPPORTED_MOUNTS[kind]}")
        else:
            raise InvalidRequest(f"mounts[{i}].type must be file_mount or code_mount, got {kind!r}")
    for path, _ in plan.files:
        if not path or "\0" in path or path.endswith("/"):
            raise InvalidRequest(f"file mount path {path!r} must name a file")
    for env_name, secret_name in secrets.items():
        if secret_name not in known_secrets:
            raise InvalidRequest(
                f"secrets.{env_name}: unknown secret {secret_name!r} (configure it in DEVBOX_SECRETS or "
                "DEVBOX_SECRETS_FILE)"
            )
        if env_name in environment:
            raise InvalidRequest(f"{env_name} is set both in environment_variables and in secrets")
        plan.secret_env[env_name] = known_secrets[secret_name]
    return plan


class StartupWriter:
    """Puts a devbox's start-up content in place during provisioning, before its launch commands."""

    def __init__(self, files: ContainerFiles, logs: LogStore, driver: SandboxDriver, git_base_url: str) -> None:
        self._files = files
        self._logs = logs
        self._driver = driver
        self._git_base_url = git_base_url.rstrip("/")

    async def write_files(self, devbox: Devbox, files: list[tuple[str, str]]) -> None:
        for path, content in files:
            await self._files.write_bytes(devbox, path, content.encode())

    async def clone(self, devbox: Devbox, repo: CodeMount, devbox_env: dict[str, str]) -> str | None:
        """Clone (and install) one repository; the failure message, or None on success."""
        url = f"{self._git_base_url}/{repo.repo_owner}/{repo.repo_name}.git"
        dest = f"{devbox.home}/{repo.repo_name}"
        env = {"GIT_TERMINAL_PROMPT": "0"}
        if repo.token:  # in the environment, never in argv (visible to ps) nor in any log
            basic = base64.b64encode(f"x-access-token:{repo.token}".encode()).decode()
            env |= {
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "http.extraHeader",
                "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
            }
        shown = f"git clone {url} {dest}" + (f" && git checkout {repo.git_ref}" if repo.git_ref else "")
        result = await self._driver.exec(
            container_name(devbox.id),
            ["bash", "-c", _CLONE, "clone", url, dest, repo.git_ref or ""],
            user=devbox.username,
            workdir=devbox.home,
            environment=env,
        )
        if not await self._record(devbox, shown, result.exit_code, result.stdout + result.stderr, repo.token):
            return f"code mount {repo.repo_owner}/{repo.repo_name}: git clone failed (exit {result.exit_code})"
        if repo.install_command:
            result = await self._driver.exec(
                container_name(devbox.id),
                ["bash", "-lc", repo.install_command],
                user=devbox.username,
                workdir=dest,
                environment=devbox_env,
            )
            output = result.stdout + result.stderr
            if not await self._record(devbox, repo.install_command, result.exit_code, output, repo.token):
                return f"code mount {repo.repo_owner}/{repo.repo_name}: install_command exited {result.exit_code}"
        return None

    async def _record(self, devbox: Devbox, cmd: str, exit_code: int, output: bytes, token: str | None) -> bool:
        message = output.decode(errors="replace")
        if token:
            message = message.replace(token, "***")
        await self._logs.append(
            LogEntry(
                devbox_id=devbox.id,
                timestamp_ms=now_ms(),
                source=LogSource.SETUP_COMMANDS.value,
                level="info" if exit_code == 0 else "error",
                message=message,
                cmd=cmd,
                exit_code=exit_code,
            )
        )
        return exit_code == 0
