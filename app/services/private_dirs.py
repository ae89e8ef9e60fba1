"""A devbox's private state: what must never travel into a snapshot of its disk.

Docker copies a container's configured environment into every image committed from it, so secrets
there would travel into snapshots (and `docker inspect`). Instead each devbox gets a host directory,
bind-mounted at ENV_DIR, and bind mounts are never part of a commit. It holds:
- `env`: the environment variables and secrets, NUL-separated NAME=value pairs, root-only; the
  command agent, the entrypoint and launch commands read it;
- `shells/`: the named shells' saved state (their environment includes the secrets);
- `launched`: the entrypoint's go signal;
- `agent.py`: the command agent (app/agent), the server's own version, written before the container
  starts (it is the container's command) and on every channel open (a host file write, where copying it
  into the container would cost a `docker cp`);
- `agent.sock`: where that agent listens; `agent.listens` marks a container made to run it (older ones
  get theirs over a `docker exec`).
The directory survives suspend/resume and server restarts, and goes with the container.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ENV_DIR = "/run/devboxd-env"
ENV_FILE = f"{ENV_DIR}/env"
AGENT_FILE = f"{ENV_DIR}/agent.py"
AGENT_SOCKET = f"{ENV_DIR}/agent.sock"
LISTENS_MARKER = "agent.listens"
GATE_FILE = "launched"


def encode_environment(env: dict[str, str]) -> bytes:
    return b"".join(f"{name}={value}".encode() + b"\0" for name, value in env.items())


class PrivateDirs:
    def __init__(self, root: Path, agent_source: bytes = b"") -> None:
        self._root = root
        self.agent_source = agent_source  # what install_agent writes: the server's own agent

    def host_dir(self, devbox_id: str) -> Path:
        return self._root / devbox_id

    def write_environment(self, devbox_id: str, env: dict[str, str]) -> Path:
        folder = self.host_dir(devbox_id)
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o711)  # the devbox user may pass through (to its shells' state) but not list it
        target = folder / "env"
        fd = os.open(target.with_suffix(".new"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(encode_environment(env))
        os.replace(target.with_suffix(".new"), target)
        return folder

    def prepare(self, devbox_id: str, env: dict[str, str]) -> Path:
        """Everything a new container needs from its private directory before it starts."""
        folder = self.write_environment(devbox_id, env)
        self.install_agent(devbox_id)
        (folder / LISTENS_MARKER).touch()
        return folder

    def agent_socket(self, devbox_id: str) -> Path | None:
        """The host path of the container's listening agent, None for a container made without one."""
        folder = self.host_dir(devbox_id)
        return folder / "agent.sock" if (folder / LISTENS_MARKER).exists() else None

    def install_agent(self, devbox_id: str) -> None:
        folder = self.host_dir(devbox_id)
        if not folder.is_dir():
            raise FileNotFoundError(f"devbox {devbox_id} has no private directory")
        fresh = folder / "agent.py.new"
        fresh.write_bytes(self.agent_source)
        fresh.chmod(0o644)
        os.replace(fresh, folder / "agent.py")

    def open_gate(self, devbox_id: str) -> None:
        """Let the entrypoint start (it waits for this file)."""
        (self.host_dir(devbox_id) / GATE_FILE).touch()

    def remove(self, devbox_id: str) -> None:
        shutil.rmtree(self.host_dir(devbox_id), ignore_errors=True)
