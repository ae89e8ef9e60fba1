"""Packaging: the server image builds on the local devbox image (scripts/build-server-image.sh), and
docker-compose.yml runs it with PostgreSQL against this host's engine well enough for a Runloop client
to create a devbox, run a command in it and shut it down; `docker-compose down` then leaves nothing of
the deployment behind. A warm Docker layer cache makes the build a matter of seconds."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import docker
import httpx
import pytest
from runloop_api_client import Runloop

from app.drivers.base import LABEL_DEVBOX, LABEL_INSTANCE
from tests.conftest import REPO, remove_containers_of

pytestmark = pytest.mark.docker

API_KEY = "packaging-key"
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"


def _label_filter(label: str, value: str) -> dict[str, str | list[str] | bool]:
    return {"label": f"{label}={value}"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ensure_docker_compose() -> None:
    """docker-compose (v1) comes from Debian's packages, installed the way scripts/lib.sh installs the rest."""
    if shutil.which("docker-compose") is None:
        subprocess.run(["bash", "-c", f"source {REPO}/scripts/lib.sh && apt_install docker-compose"], check=True)


def _run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run a command from the repository root; a failure shows its output in the test report."""
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def _wait_healthy(base_url: str, compose: list[str], env: dict[str, str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    logs = subprocess.run(
        [*compose, "logs", "--no-color", "--tail=60"], cwd=REPO, env=env, capture_output=True, text=True
    )
    raise AssertionError(f"the compose deployment never became healthy:\n{logs.stdout[-6000:]}")


def _get_when_served(url: str) -> str:
    """The body once something listens behind the tunnel (the devbox's server starts asynchronously)."""
    deadline = time.monotonic() + 60
    while True:
        response = httpx.get(url, timeout=10)
        if response.status_code == 200 or time.monotonic() > deadline:
            assert response.status_code == 200, response.text
            return response.text
        time.sleep(0.3)


def _leftovers(client: docker.DockerClient, project: str) -> list[str]:
    """What `docker-compose down` should have removed: compose's containers and volumes, and the
    server's devbox containers (labelled with its instance id)."""
    compose_label = _label_filter(COMPOSE_PROJECT_LABEL, project)
    found = [f"container {c.name}" for c in client.containers.list(all=True, filters=compose_label)]
    found += [f"volume {v.name}" for v in client.volumes.list(filters=compose_label)]
    devbox_label = _label_filter(LABEL_INSTANCE, project)
    found += [f"devbox {c.name}" for c in client.containers.list(all=True, filters=devbox_label)]
    return found


def _remove_everything_of(client: docker.DockerClient, project: str) -> None:
    """Whatever of this run is still there, and the devbox network the server made (it keeps it across
    restarts, so `down` does not take it away)."""
    compose_label = _label_filter(COMPOSE_PROJECT_LABEL, project)
    for container in client.containers.list(all=True, filters=compose_label):
        container.remove(force=True)
    remove_containers_of(project)
    for volume in client.volumes.list(filters=compose_label):
        volume.remove(force=True)
    for network in client.networks.list(names=[project]):
        if network.name == project:
            network.remove()


@pytest.mark.timeout(900)  # a cold layer cache installs Debian and Python packages
def test_compose_deployment_serves_a_devbox(default_image: str, tmp_path: Path) -> None:
    _ensure_docker_compose()
    _run([str(REPO / "scripts/build-server-image.sh"), default_image], timeout=840)

    # One name for the compose project, the instance label and the devbox network: unique per run, so
    # it never touches test servers' devboxes, and teardown can check that nothing of it is left.
    project = f"devboxd-packaging-{uuid.uuid4().hex[:8]}"
    port = _free_port()
    env = {
        **os.environ,
        "DEVBOX_API_KEYS": API_KEY,
        "DEVBOX_PORT": str(port),
        "DEVBOX_SSH_PORT": "0",
        "DEVBOX_DATA_DIR": str(tmp_path / "data"),
        "DEVBOX_DEFAULT_IMAGE": default_image,
        "DEVBOX_INSTANCE_ID": project,
        "DEVBOX_NETWORK": project,
        "DEVBOX_WARM_POOL": "SMALL=1",  # `down` must take the warm container away too
    }
    compose = ["docker-compose", "-f", str(REPO / "docker-compose.yml"), "-p", project]
    client = docker.from_env()
    try:
        _run([*compose, "up", "-d"], env=env)
        base_url = f"http://127.0.0.1:{port}"
        _wait_healthy(base_url, compose, env)
        health = httpx.get(f"{base_url}/health", timeout=10).json()
        assert health == {"status": "ok", "database": "ok", "docker": "ok", "image": "ready"}

        sdk = Runloop(base_url=base_url, bearer_token=API_KEY, _strict_response_validation=True, max_retries=0)
        devbox = sdk.devboxes.create_and_await_running(name="packaging-smoke", tunnel={"auth_mode": "open"})
        assert devbox.status == "running"
        result = sdk.devboxes.execute_and_await_completion(devbox.id, command="echo packaged; id -un")
        assert (result.exit_status, result.stdout) == (0, "packaged\nuser\n")
        # Tunnels reach the devbox's address from the server's container: why it runs on the host's network.
        sdk.devboxes.execute_async(
            devbox.id,
            command="mkdir -p /tmp/site && echo tunnelled > /tmp/site/index.html && "
            "python3 -m http.server 8080 --directory /tmp/site",
        )
        assert devbox.tunnel is not None
        assert _get_when_served(f"{base_url}/tunnels/{devbox.tunnel.tunnel_key}/8080/index.html") == "tunnelled\n"
        # The devbox runs on the host's engine under this deployment's label; shutdown removes its container.
        devbox_label = _label_filter(LABEL_DEVBOX, devbox.id)
        assert [c.labels[LABEL_INSTANCE] for c in client.containers.list(all=True, filters=devbox_label)] == [project]
        assert sdk.devboxes.shutdown(devbox.id).status == "shutdown"
        assert client.containers.list(all=True, filters=devbox_label) == []
    finally:
        # Printed output shows in the report only when the test fails.
        logs = subprocess.run(
            [*compose, "logs", "--no-color", "--tail=80"], cwd=REPO, env=env, capture_output=True, text=True
        )
        print(logs.stdout[-8000:])
        down = subprocess.run(
            [*compose, "down", "--volumes", "--remove-orphans"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        leftovers = _leftovers(client, project)
        _remove_everything_of(client, project)  # only does something when the test or `down` failed
        client.close()
    assert down.returncode == 0, down.stderr
    assert leftovers == []
