"""Shared fixtures: a real `devboxd serve` process on a free port, with its own data dir and instance
label, talking to the real Docker engine; HTTP and Runloop SDK clients pointed at it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from runloop_api_client import Runloop

from app.drivers.base import LABEL_INSTANCE
from app.drivers.docker_image import ensure_default_image

REPO = Path(__file__).resolve().parents[1]
API_KEY = "test-key-primary"
OTHER_API_KEY = "test-key-other"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """One devboxd server; restart() keeps its data dir, database and instance label."""

    data_dir: Path
    instance: str
    port: int = field(default_factory=_free_port)
    env_extra: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, expect_healthy: bool = True) -> None:
        self.log_path = self.data_dir / "server.log"
        env = {
            **os.environ,
            "DEVBOX_DATA_DIR": str(self.data_dir),
            "DEVBOX_PORT": str(self.port),
            "DEVBOX_API_KEYS": f"{API_KEY},{OTHER_API_KEY}",
            "DEVBOX_INSTANCE_ID": self.instance,
            "DEVBOX_STOP_TIMEOUT_SECONDS": "1",
            "DEVBOX_SSH_PORT": "0",  # servers run side by side: each gateway on a free port
            # Cold creates unless a test asks for a pool; DEVBOX_TEST_WARM_POOL=SMALL=2 runs the suite on warm ones.
            "DEVBOX_WARM_POOL": os.environ.get("DEVBOX_TEST_WARM_POOL", ""),
            **self.env_extra,
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"devboxd exited early:\n{self.log_tail()}")
            try:
                status = httpx.get(f"{self.base_url}/health", timeout=2).status_code
                if status == 200 or (status == 503 and not expect_healthy):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"devboxd did not become healthy:\n{self.log_tail()}")

    def stop(self, kill: bool = False) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def tracked_client(server: ServerProcess) -> Iterator[httpx.Client]:
    """A client that follows the server across restarts (same port) and shuts down what it created."""
    created: list[str] = []

    def remember(response: httpx.Response) -> None:
        request = response.request
        if request.method == "POST" and request.url.path == "/v1/devboxes" and response.status_code == 200:
            response.read()
            created.append(response.json()["id"])

    with httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=60,
        event_hooks={"response": [remember]},
    ) as http:
        yield http
        for devbox_id in created:
            with contextlib.suppress(httpx.HTTPError):
                http.post(f"/v1/devboxes/{devbox_id}/shutdown")


def remove_containers_of(instance: str) -> None:
    client = docker.from_env()
    for container in client.containers.list(all=True, filters={"label": f"{LABEL_INSTANCE}={instance}"}):
        container.remove(force=True)
    client.close()


@pytest.fixture(scope="session")
def default_image() -> str:
    """Built once per machine (cached by recipe hash); the test command builds it before pytest runs."""
    client = docker.from_env()
    try:
        return ensure_default_image(client)
    finally:
        client.close()


@pytest.fixture(scope="session")
def server_factory(
    default_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def make(expect_healthy: bool = True, **env_extra: str) -> ServerProcess:
        server = ServerProcess(
            data_dir=tmp_path_factory.mktemp("devboxd"), instance=f"test-{uuid.uuid4().hex[:10]}", env_extra=env_extra
        )
        server.start(expect_healthy)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
        remove_containers_of(server.instance)


@pytest.fixture(scope="module")
def docker_client() -> Iterator[docker.DockerClient]:
    """For looking at containers behind the server's back (and tampering with them)."""
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture(scope="module")
def restartable_server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    """A module's own server, which its tests may stop, kill and restart."""
    return server_factory()


@pytest.fixture(scope="session")
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory()


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def shared_http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def module_devbox(shared_http: httpx.Client, request: pytest.FixtureRequest) -> Iterator[str]:
    """One running devbox shared by a module's tests that only read from it or fail against it."""
    response = shared_http.post("/v1/devboxes", json={"name": request.module.__name__.rsplit(".", 1)[-1]})
    assert response.status_code == 200, response.text
    devbox_id: str = response.json()["id"]
    try:
        assert wait_for(shared_http, devbox_id, ["running", "failure", "shutdown"])["status"] == "running"
        yield devbox_id
    finally:
        shared_http.post(f"/v1/devboxes/{devbox_id}/shutdown")


@pytest.fixture
def sdk(server: ServerProcess) -> Runloop:
    return Runloop(base_url=server.base_url, bearer_token=API_KEY, _strict_response_validation=True, max_retries=0)


@pytest.fixture
def devbox_factory(http: httpx.Client) -> Iterator[Callable[..., dict[str, Any]]]:
    """Creates devboxes through the API, waits for `running` (unless told not to), shuts them down after."""
    created: list[str] = []

    def make(wait: bool = True, **body: Any) -> dict[str, Any]:
        response = http.post("/v1/devboxes", json=body)
        assert response.status_code == 200, response.text
        devbox: dict[str, Any] = response.json()
        created.append(devbox["id"])
        if wait:
            devbox = wait_for(http, devbox["id"], ["running", "failure", "shutdown"])
        return devbox

    yield make
    for devbox_id in created:
        http.post(f"/v1/devboxes/{devbox_id}/shutdown")


def wait_for(http: httpx.Client, devbox_id: str, statuses: list[str], seconds: float = 60) -> dict[str, Any]:
    """Long-poll wait_for_status until one of `statuses` (re-asking on 408) or fail the test."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = http.post(
            f"/v1/devboxes/{devbox_id}/wait_for_status", json={"statuses": statuses, "timeout_seconds": 10}
        )
        if response.status_code == 200:
            return response.json()  # type: ignore[no-any-return]
        assert response.status_code == 408, response.text
    raise AssertionError(f"devbox {devbox_id} never reached {statuses}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On failure only, attach the tail of every server log this test touched."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for name in ("server", "restartable_server"):
            srv = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            if isinstance(srv, ServerProcess):
                report.sections.append((f"devboxd log ({name})", srv.log_tail()))
