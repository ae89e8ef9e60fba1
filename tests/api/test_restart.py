"""Server restarts (graceful and SIGKILL) keep devboxes truthful: running and suspended devboxes survive,
vanished containers become failures, our orphaned containers are removed and foreign ones are left alone;
while running, the server follows Docker events for containers stopped behind its back."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
import httpx
import pytest

from app.drivers.base import LABEL_DEVBOX, LABEL_INSTANCE, LABEL_MANAGED
from tests.conftest import API_KEY, ServerProcess, tracked_client, wait_for


@pytest.fixture
def client(restartable_server: ServerProcess) -> Iterator[httpx.Client]:
    """A client that follows the server across restarts (same port) and shuts down what it created."""
    with tracked_client(restartable_server) as http:
        yield http


def create_running(http: httpx.Client, **body: Any) -> dict[str, Any]:
    response = http.post("/v1/devboxes", json=body)
    assert response.status_code == 200, response.text
    devbox = wait_for(http, response.json()["id"], ["running", "failure", "shutdown"])
    assert devbox["status"] == "running", devbox
    return devbox


def sh(http: httpx.Client, devbox_id: str, command: str) -> dict[str, Any]:
    response = http.post(f"/v1/devboxes/{devbox_id}/execute_sync", json={"command": command})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def get(http: httpx.Client, devbox_id: str) -> dict[str, Any]:
    response = http.get(f"/v1/devboxes/{devbox_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def container_of(client: docker.DockerClient, devbox_id: str) -> Any | None:
    """The devbox's container, or None (low-level listing: no per-container inspect that races removals)."""
    found = client.api.containers(all=True, filters={"label": f"{LABEL_DEVBOX}={devbox_id}"})
    assert len(found) <= 1
    if not found:
        return None
    try:
        return client.containers.get(found[0]["Id"])
    except docker.errors.NotFound:
        return None


def exists(client: docker.DockerClient, container_id: str) -> bool:
    try:
        client.containers.get(container_id)
    except docker.errors.NotFound:
        return False
    return True


def test_running_and_suspended_devboxes_survive_restarts(restartable_server, client, docker_client):
    running = create_running(client, name="survivor")
    sh(client, running["id"], "echo kept > /home/user/file.txt")
    sleeper = create_running(client, name="sleeper")
    sh(client, sleeper["id"], "echo zzz > /home/user/dream.txt")
    assert client.post(f"/v1/devboxes/{sleeper['id']}/suspend").status_code == 200
    assert wait_for(client, sleeper["id"], ["suspended"])["status"] == "suspended"

    restartable_server.restart()
    assert get(client, running["id"])["status"] == "running"
    assert sh(client, running["id"], "cat /home/user/file.txt")["stdout"] == "kept\n"
    assert get(client, sleeper["id"])["status"] == "suspended"
    container = container_of(docker_client, sleeper["id"])
    assert container is not None and container.status != "running"

    # An execution in flight when the server is killed is ended truthfully after the restart.
    started = client.post(f"/v1/devboxes/{running['id']}/execute_async", json={"command": "sleep 30"})
    assert started.status_code == 200, started.text
    execution_id = started.json()["execution_id"]

    restartable_server.restart(kill=True)
    after = get(client, running["id"])
    assert after["status"] == "running"
    assert after["end_time_ms"] is None
    assert sh(client, running["id"], "cat /home/user/file.txt")["stdout"] == "kept\n"
    execution = client.get(f"/v1/devboxes/{running['id']}/executions/{execution_id}")
    assert execution.status_code == 200, execution.text
    assert execution.json()["status"] == "completed"
    assert execution.json()["exit_status"] is not None
    assert get(client, sleeper["id"])["status"] == "suspended"

    assert client.post(f"/v1/devboxes/{sleeper['id']}/resume").status_code == 200
    assert wait_for(client, sleeper["id"], ["running", "failure", "shutdown"])["status"] == "running"
    assert sh(client, sleeper["id"], "cat /home/user/dream.txt")["stdout"] == "zzz\n"
    statuses = [t["status"] for t in get(client, sleeper["id"])["state_transitions"]]
    assert statuses == ["provisioning", "initializing", "running", "suspending", "suspended", "resuming", "running"]


@pytest.mark.parametrize("kill", [False, True], ids=["graceful", "sigkill"])
def test_container_removed_while_server_down_becomes_failure(restartable_server, client, docker_client, kill):
    lost = create_running(client, name="lost")
    lost_suspended = create_running(client, name="lost-suspended")
    assert client.post(f"/v1/devboxes/{lost_suspended['id']}/suspend").status_code == 200
    wait_for(client, lost_suspended["id"], ["suspended"])

    restartable_server.stop(kill=kill)
    for devbox in (lost, lost_suspended):
        container = container_of(docker_client, devbox["id"])
        assert container is not None
        container.remove(force=True)
    restartable_server.start()

    for devbox in (lost, lost_suspended):
        ended = get(client, devbox["id"])
        assert ended["status"] == "failure", ended
        assert ended["failure_reason"] == "execution_failed"
        assert ended["end_time_ms"] is not None
        assert ended["state_transitions"][-1]["status"] == "failure"


def test_orphan_containers_of_this_instance_are_removed_foreign_ones_kept(
    restartable_server, client, docker_client, default_image
):
    keeper = create_running(client, name="keeper")
    orphan = docker_client.containers.run(
        default_image,
        ["sleep", "infinity"],
        detach=True,
        name=f"devboxd-test-orphan-{uuid.uuid4().hex[:8]}",
        labels={LABEL_MANAGED: "true", LABEL_INSTANCE: restartable_server.instance, LABEL_DEVBOX: "dbx_bogus"},
    )
    other_instance = docker_client.containers.run(
        default_image,
        ["sleep", "infinity"],
        detach=True,
        name=f"devboxd-test-other-instance-{uuid.uuid4().hex[:8]}",
        labels={
            LABEL_MANAGED: "true",
            LABEL_INSTANCE: f"test-foreign-{uuid.uuid4().hex[:8]}",
            LABEL_DEVBOX: "dbx_foreign",
        },
    )
    foreign = docker_client.containers.run(
        default_image,
        ["sleep", "infinity"],
        detach=True,
        name=f"devboxd-test-foreign-{uuid.uuid4().hex[:8]}",
        labels={"purpose": "devboxd-test-foreign"},
    )
    try:
        restartable_server.restart()
        assert not exists(docker_client, orphan.id), "our labelled orphan must be removed at start"
        for untouched in (foreign, other_instance):
            untouched.reload()
            assert untouched.status == "running"
        assert get(client, keeper["id"])["status"] == "running"
        assert container_of(docker_client, keeper["id"]) is not None
    finally:
        for container in (orphan, foreign, other_instance):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


def test_container_stopped_behind_our_back_fails_the_devbox(client, docker_client):
    devbox = create_running(client, name="stopped-outside")
    container = container_of(docker_client, devbox["id"])
    assert container is not None
    t0 = time.monotonic()
    container.stop(timeout=1)
    ended = wait_for(client, devbox["id"], ["failure", "shutdown"], seconds=15)
    assert time.monotonic() - t0 < 10
    assert ended["status"] == "failure"
    assert ended["failure_reason"] == "execution_failed"
    assert ended["end_time_ms"] is not None
    deadline = time.monotonic() + 10
    while container_of(docker_client, devbox["id"]) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert container_of(docker_client, devbox["id"]) is None


def test_container_removed_behind_our_back_fails_the_devbox(client, docker_client):
    devbox = create_running(client, name="removed-outside")
    container = container_of(docker_client, devbox["id"])
    assert container is not None
    container.remove(force=True)
    ended = wait_for(client, devbox["id"], ["failure", "shutdown"], seconds=15)
    assert ended["status"] == "failure"
    assert ended["failure_reason"] == "execution_failed"


def test_devbox_being_set_up_when_server_is_killed_becomes_failure(restartable_server, client, docker_client):
    response = client.post("/v1/devboxes", json={"launch_parameters": {"launch_commands": ["sleep 20"]}})
    assert response.status_code == 200, response.text
    devbox_id = response.json()["id"]
    initializing = wait_for(client, devbox_id, ["initializing", "running", "failure", "shutdown"])
    assert initializing["status"] == "initializing", initializing

    restartable_server.restart(kill=True)
    ended = get(client, devbox_id)
    assert ended["status"] == "failure", ended
    assert ended["failure_reason"] == "execution_failed"
    assert ended["end_time_ms"] is not None
    assert container_of(docker_client, devbox_id) is None


def test_container_stopped_while_server_down_becomes_failure(restartable_server, client, docker_client):
    devbox = create_running(client, name="stopped-while-down")
    restartable_server.stop()
    container = container_of(docker_client, devbox["id"])
    assert container is not None
    container.stop(timeout=1)
    restartable_server.start()
    ended = get(client, devbox["id"])
    assert ended["status"] == "failure", ended
    assert ended["failure_reason"] == "execution_failed"
    assert container_of(docker_client, devbox["id"]) is None


def test_suspended_container_started_while_server_down_is_stopped_again(restartable_server, client, docker_client):
    devbox = create_running(client, name="woken-while-down")
    sh(client, devbox["id"], "echo still > /home/user/here.txt")
    assert client.post(f"/v1/devboxes/{devbox['id']}/suspend").status_code == 200
    wait_for(client, devbox["id"], ["suspended"])
    restartable_server.stop()
    container = container_of(docker_client, devbox["id"])
    assert container is not None
    container.start()
    restartable_server.start()
    assert get(client, devbox["id"])["status"] == "suspended"
    container.reload()
    assert container.status != "running"
    assert client.post(f"/v1/devboxes/{devbox['id']}/resume").status_code == 200
    assert wait_for(client, devbox["id"], ["running", "failure", "shutdown"])["status"] == "running"
    assert sh(client, devbox["id"], "cat /home/user/here.txt")["stdout"] == "still\n"


def test_graceful_stop_answers_in_flight_long_polls_cleanly(restartable_server, client):
    """A wait_for_status held when the server stops must get a proper answer (408/503 JSON, so the client
    re-polls), not a bare 500 cut by the server's graceful-shutdown timeout."""
    devbox = create_running(client, name="long-poll")
    outcome: dict[str, Any] = {}

    def hold() -> None:
        try:
            with httpx.Client(
                base_url=restartable_server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60
            ) as other:
                outcome["response"] = other.post(
                    f"/v1/devboxes/{devbox['id']}/wait_for_status",
                    json={"statuses": ["suspended"], "timeout_seconds": 25},
                )
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=hold)
    thread.start()
    time.sleep(0.5)
    try:
        restartable_server.stop()
    finally:
        thread.join(timeout=30)
        restartable_server.start()
    assert "response" in outcome, outcome
    response = outcome["response"]
    assert response.status_code in (408, 503), (response.status_code, response.headers, response.text)
    assert set(response.json()) == {"error", "detail"}
    assert get(client, devbox["id"])["status"] == "running"


def test_container_of_suspended_devbox_removed_behind_our_back_fails_the_devbox(client, docker_client):
    """Like the reconciler at start, the live event follower must notice a suspended devbox's container vanish."""
    devbox = create_running(client, name="suspended-removed-outside")
    assert client.post(f"/v1/devboxes/{devbox['id']}/suspend").status_code == 200
    wait_for(client, devbox["id"], ["suspended"])
    container = container_of(docker_client, devbox["id"])
    assert container is not None
    container.remove(force=True)
    response = client.post(
        f"/v1/devboxes/{devbox['id']}/wait_for_status", json={"statuses": ["failure", "shutdown"], "timeout_seconds": 8}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "failure"
    assert response.json()["failure_reason"] == "execution_failed"
