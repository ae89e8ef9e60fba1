"""The devbox lifecycle over HTTP against real Docker: create, launch commands, entrypoint, suspend/resume,
shutdown, keep_alive, update, usage, state transitions, resource sizes and the devbox user."""

from __future__ import annotations

import time
from typing import Any

import docker
import httpx
import pytest

from app.drivers.base import LABEL_DEVBOX
from tests.conftest import wait_for

GIB = 1024**3
ACTIVE_OR_LATER = {"provisioning", "initializing", "running"}


def containers_of(client: docker.DockerClient, devbox_id: str) -> list[str]:
    """Ids of the devbox's containers (low-level listing: no per-container inspect that races removals)."""
    found = client.api.containers(all=True, filters={"label": f"{LABEL_DEVBOX}={devbox_id}"})
    return [c["Id"] for c in found]


def only_container(client: docker.DockerClient, devbox_id: str) -> Any:
    found = containers_of(client, devbox_id)
    assert len(found) == 1, f"expected one container for {devbox_id}, found {len(found)}"
    return client.containers.get(found[0])


def wait_no_container(
    client: docker.DockerClient, devbox_id: str, seconds: float = 10, stable: float = 0.0
) -> list[str]:
    """Poll until the devbox has had no container for `stable` seconds; returns what is left at the deadline."""
    deadline = time.monotonic() + seconds
    gone_since: float | None = None
    while True:
        left = containers_of(client, devbox_id)
        now = time.monotonic()
        if left:
            gone_since = None
        elif gone_since is None:
            gone_since = now
        if gone_since is not None and now - gone_since >= stable:
            return []
        if now >= deadline:
            return left
        time.sleep(0.2)


def sh(http: httpx.Client, devbox_id: str, command: str) -> dict[str, Any]:
    response = http.post(f"/v1/devboxes/{devbox_id}/execute_sync", json={"command": command})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def statuses_of(devbox: dict[str, Any]) -> list[str]:
    return [t["status"] for t in devbox["state_transitions"]]


def assert_times_non_decreasing(devbox: dict[str, Any]) -> None:
    times = [t["transition_time_ms"] for t in devbox["state_transitions"]]
    assert times == sorted(times), devbox["state_transitions"]
    assert times[0] >= devbox["create_time_ms"] - 1


# ----- create ----------------------------------------------------------------------------------


def test_create_returns_at_once_then_initializes_and_runs(http, devbox_factory):
    launch = {"launch_commands": ["sleep 2"], "keep_alive_time_seconds": 3600, "resource_size_request": "SMALL"}
    started = time.monotonic()
    created = devbox_factory(
        wait=False, name="life-1", metadata={"team": "core", "tier": "gold"}, launch_parameters=launch
    )
    assert time.monotonic() - started < 1.5, "create must not wait for launch commands"
    assert created["status"] in ACTIVE_OR_LATER
    assert created["status"] != "running", "the 2 s launch command cannot have finished yet"
    assert created["id"].startswith("dbx_")
    assert created["state_transitions"][0]["status"] == "provisioning"
    assert created["end_time_ms"] is None
    assert created["name"] == "life-1"
    assert created["metadata"] == {"team": "core", "tier": "gold"}
    for key, value in launch.items():
        assert created["launch_parameters"][key] == value

    running = wait_for(http, created["id"], ["running", "failure", "shutdown"])
    assert running["status"] == "running"
    assert statuses_of(running) == ["provisioning", "initializing", "running"]
    assert_times_non_decreasing(running)
    assert running["name"] == "life-1"
    assert running["metadata"] == {"team": "core", "tier": "gold"}
    for key, value in launch.items():
        assert running["launch_parameters"][key] == value
    assert running["end_time_ms"] is None
    assert running["failure_reason"] is None
    assert running["shutdown_reason"] is None

    fetched = http.get(f"/v1/devboxes/{created['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["status"] == "running"
    assert fetched.json()["state_transitions"] == running["state_transitions"]


def test_environment_variables_reach_commands(http, devbox_factory):
    devbox = devbox_factory(environment_variables={"GREETING": "hello world", "ANSWER": "42"})
    assert devbox["status"] == "running"
    result = sh(http, devbox["id"], 'printf "%s|%s" "$GREETING" "$ANSWER"')
    assert result["exit_status"] == 0
    assert result["stdout"] == "hello world|42"


def test_launch_commands_run_in_order_as_user_in_home(http, devbox_factory):
    commands = [
        "echo one >> order.txt",
        "echo two >> order.txt",
        "whoami > who.txt && pwd > where.txt && echo three >> /home/user/order.txt",
    ]
    devbox = devbox_factory(launch_parameters={"launch_commands": commands})
    assert devbox["status"] == "running", devbox
    result = sh(http, devbox["id"], "cat /home/user/order.txt; cat /home/user/who.txt /home/user/where.txt")
    assert result["stdout"] == "one\ntwo\nthree\nuser\n/home/user\n"
    owner = sh(http, devbox["id"], "stat -c %U /home/user/order.txt")
    assert owner["stdout"].strip() == "user"


def test_failing_launch_command_fails_the_devbox(http, devbox_factory, docker_client):
    devbox = devbox_factory(
        wait=False, launch_parameters={"launch_commands": ["echo before > before.txt", "exit 3", "touch never.txt"]}
    )
    ended = wait_for(http, devbox["id"], ["failure", "shutdown", "running"])
    assert ended["status"] == "failure"
    assert ended["failure_reason"] == "execution_failed"
    assert ended["end_time_ms"] is not None
    assert ended["end_time_ms"] >= ended["create_time_ms"]
    assert statuses_of(ended) == ["provisioning", "initializing", "failure"]
    assert_times_non_decreasing(ended)
    assert wait_no_container(docker_client, devbox["id"]) == []
    # A failed devbox cannot run commands.
    response = http.post(f"/v1/devboxes/{devbox['id']}/execute_sync", json={"command": "true"})
    assert response.status_code == 400


def test_entrypoint_runs_after_launch_commands_and_its_exit_shuts_down(http, devbox_factory, docker_client):
    entrypoint = (
        "if [ -e /home/user/launched ]; then echo yes > /home/user/ep_saw_launch; "
        "else echo no > /home/user/ep_saw_launch; fi; whoami > /home/user/ep_user; sleep 3"
    )
    devbox = devbox_factory(
        wait=False, entrypoint=entrypoint, launch_parameters={"launch_commands": ["sleep 1; touch launched"]}
    )
    running = wait_for(http, devbox["id"], ["running", "failure", "shutdown"])
    assert running["status"] == "running", running
    # The entrypoint starts after the launch commands; give it a moment to write its files.
    result: dict[str, Any] = {}
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        result = sh(http, devbox["id"], "cat /home/user/ep_saw_launch /home/user/ep_user 2>/dev/null")
        if result["stdout"].count("\n") == 2:
            break
        time.sleep(0.1)
    assert result["stdout"] == "yes\nuser\n"
    # The entrypoint is the container's main process (a child of the init), not a side exec.
    top = only_container(docker_client, devbox["id"]).top(ps_args="-eo pid,ppid,args")
    args = [p[-1] for p in top["Processes"]]
    assert any("sleep 3" in a for a in args), args

    ended = wait_for(http, devbox["id"], ["shutdown", "failure"], seconds=30)
    assert ended["status"] == "shutdown"
    assert ended["shutdown_reason"] == "entrypoint_exit"
    assert ended["failure_reason"] is None
    assert ended["end_time_ms"] is not None
    assert statuses_of(ended) == ["provisioning", "initializing", "running", "shutdown"]
    assert wait_no_container(docker_client, devbox["id"]) == []


# ----- suspend / resume / shutdown -----------------------------------------------------------


def test_suspend_resume_keeps_files_and_records_transitions(http, devbox_factory, docker_client):
    devbox = devbox_factory()
    devbox_id = devbox["id"]
    sh(http, devbox_id, "echo persisted > /home/user/keep.txt")

    suspending = http.post(f"/v1/devboxes/{devbox_id}/suspend")
    assert suspending.status_code == 200, suspending.text
    assert suspending.json()["status"] in ("suspending", "suspended")
    suspended = wait_for(http, devbox_id, ["suspended", "failure", "shutdown"])
    assert suspended["status"] == "suspended"
    container = only_container(docker_client, devbox_id)
    container.reload()
    assert container.status != "running"
    assert container.attrs["State"]["Running"] is False

    resuming = http.post(f"/v1/devboxes/{devbox_id}/resume")
    assert resuming.status_code == 200, resuming.text
    assert resuming.json()["status"] in ("resuming", "running")
    running = wait_for(http, devbox_id, ["running", "failure", "shutdown"])
    assert running["status"] == "running"
    container.reload()
    assert container.attrs["State"]["Running"] is True
    assert sh(http, devbox_id, "cat /home/user/keep.txt")["stdout"] == "persisted\n"

    assert statuses_of(running) == [
        "provisioning",
        "initializing",
        "running",
        "suspending",
        "suspended",
        "resuming",
        "running",
    ]
    assert_times_non_decreasing(running)
    assert running["end_time_ms"] is None


def test_shutdown_removes_container_and_is_idempotent(http, devbox_factory, docker_client):
    devbox = devbox_factory()
    devbox_id = devbox["id"]
    assert len(containers_of(docker_client, devbox_id)) == 1

    first = http.post(f"/v1/devboxes/{devbox_id}/shutdown")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["status"] == "shutdown"
    assert body["shutdown_reason"] == "api_shutdown"
    assert body["end_time_ms"] is not None
    assert containers_of(docker_client, devbox_id) == []

    second = http.post(f"/v1/devboxes/{devbox_id}/shutdown")
    assert second.status_code == 200, second.text
    assert second.json()["status"] == "shutdown"
    assert second.json()["end_time_ms"] == body["end_time_ms"]
    assert statuses_of(second.json()) == ["provisioning", "initializing", "running", "shutdown"]
    assert_times_non_decreasing(second.json())


def test_shutdown_of_suspended_devbox(http, devbox_factory, docker_client):
    devbox = devbox_factory()
    assert http.post(f"/v1/devboxes/{devbox['id']}/suspend").status_code == 200
    wait_for(http, devbox["id"], ["suspended"])
    done = http.post(f"/v1/devboxes/{devbox['id']}/shutdown")
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "shutdown"
    assert containers_of(docker_client, devbox["id"]) == []


def test_keep_alive(http, devbox_factory):
    devbox = devbox_factory()
    response = http.post(f"/v1/devboxes/{devbox['id']}/keep_alive")
    assert response.status_code == 200, response.text
    assert response.json() == {}
    assert http.post(f"/v1/devboxes/{devbox['id']}/shutdown").status_code == 200
    after = http.post(f"/v1/devboxes/{devbox['id']}/keep_alive")
    assert after.status_code == 400, after.text
    assert set(after.json()) == {"error", "detail"}


# ----- update ----------------------------------------------------------------------------------


def test_update_replaces_name_and_metadata(http, devbox_factory):
    devbox = devbox_factory(wait=False, name="before", metadata={"a": "1", "b": "2"})
    url = f"/v1/devboxes/{devbox['id']}"

    updated = http.post(url, json={"name": "after", "metadata": {"c": "3"}})
    assert updated.status_code == 200, updated.text
    assert updated.json()["name"] == "after"
    assert updated.json()["metadata"] == {"c": "3"}  # replaced, not merged
    assert http.get(url).json()["metadata"] == {"c": "3"}

    no_meta = http.post(url, json={"name": "again"})
    assert no_meta.status_code == 200, no_meta.text
    assert no_meta.json()["name"] == "again"
    assert no_meta.json()["metadata"] == {}
    fetched = http.get(url).json()
    assert fetched["name"] == "again"
    assert fetched["metadata"] == {}
    wait_for(http, devbox["id"], ["running", "failure", "shutdown"])


# ----- usage -----------------------------------------------------------------------------------


def test_usage_counts_active_and_elapsed_time(http, devbox_factory):
    devbox = devbox_factory()
    devbox_id = devbox["id"]
    live = http.get(f"/v1/devboxes/{devbox_id}/usage")
    assert live.status_code == 200, live.text
    assert live.json()["status"] == "running"
    assert live.json()["end_time_ms"] is None

    assert http.post(f"/v1/devboxes/{devbox_id}/suspend").status_code == 200
    wait_for(http, devbox_id, ["suspended"])
    time.sleep(2.2)
    assert http.post(f"/v1/devboxes/{devbox_id}/resume").status_code == 200
    wait_for(http, devbox_id, ["running"])
    ended = http.post(f"/v1/devboxes/{devbox_id}/shutdown").json()

    response = http.get(f"/v1/devboxes/{devbox_id}/usage")
    assert response.status_code == 200, response.text
    usage = response.json()
    for field in (
        "total_active_seconds",
        "total_elapsed_seconds",
        "vcpu_seconds",
        "memory_gb_seconds",
        "disk_gb_seconds",
        "start_time_ms",
    ):
        assert isinstance(usage[field], int) and not isinstance(usage[field], bool), (field, usage)
        assert usage[field] >= 0
    assert usage["id"] == devbox_id
    assert usage["status"] == "shutdown"
    assert usage["start_time_ms"] == devbox["create_time_ms"]
    assert usage["end_time_ms"] == ended["end_time_ms"]
    assert usage["total_active_seconds"] <= usage["total_elapsed_seconds"]
    # About 2.2 s were spent suspended: elapsed but not active.
    assert usage["total_elapsed_seconds"] - usage["total_active_seconds"] >= 2, usage
    expected_elapsed = (ended["end_time_ms"] - ended["create_time_ms"]) // 1000
    assert usage["total_elapsed_seconds"] == expected_elapsed
    # SMALL: 1 vCPU, 2 GiB; usage is frozen once ended.
    assert usage["vcpu_seconds"] >= usage["total_active_seconds"]
    assert usage["memory_gb_seconds"] >= 2 * usage["total_active_seconds"]
    again = http.get(f"/v1/devboxes/{devbox_id}/usage").json()
    assert again == usage


# ----- resources -------------------------------------------------------------------------------


def test_x_small_maps_to_docker_limits(devbox_factory, docker_client):
    devbox = devbox_factory(launch_parameters={"resource_size_request": "X_SMALL"})
    assert devbox["status"] == "running"
    host = only_container(docker_client, devbox["id"]).attrs["HostConfig"]
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 1 * GIB


def test_custom_size_maps_to_docker_limits(devbox_factory, docker_client):
    devbox = devbox_factory(
        launch_parameters={"resource_size_request": "CUSTOM_SIZE", "custom_cpu_cores": 1, "custom_gb_memory": 4}
    )
    assert devbox["status"] == "running"
    host = only_container(docker_client, devbox["id"]).attrs["HostConfig"]
    assert host["NanoCpus"] == 1_000_000_000
    assert host["Memory"] == 4 * GIB


@pytest.mark.parametrize(
    "launch",
    [
        pytest.param({"custom_cpu_cores": 3, "custom_gb_memory": 6}, id="cpu-3"),
        pytest.param({"custom_cpu_cores": 1, "custom_gb_memory": 3}, id="memory-3"),
        pytest.param({"custom_cpu_cores": 1, "custom_gb_memory": 16}, id="ratio-1-to-16"),
        pytest.param({}, id="missing-custom-fields"),
        pytest.param({"custom_cpu_cores": 2}, id="missing-memory"),
        pytest.param({"custom_gb_memory": 4}, id="missing-cpu"),
    ],
)
def test_custom_size_violations_are_400(http, launch):
    body = {"launch_parameters": {"resource_size_request": "CUSTOM_SIZE", **launch}}
    response = http.post("/v1/devboxes", json=body)
    if response.status_code == 200:  # do not leak a devbox if the server wrongly accepts it
        http.post(f"/v1/devboxes/{response.json()['id']}/shutdown")
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error", "detail"}


def test_xx_large_is_capped_to_the_host(http, devbox_factory, docker_client):
    devbox = devbox_factory(launch_parameters={"resource_size_request": "XX_LARGE"})
    assert devbox["status"] == "running", devbox
    info = docker_client.info()
    host = only_container(docker_client, devbox["id"]).attrs["HostConfig"]
    # 8 vCPU / 32 GiB requested: each capped to what the host has (2 cores / ~24 GiB here).
    assert host["NanoCpus"] == min(8, int(info["NCPU"])) * 1_000_000_000
    assert host["Memory"] == min(32 * GIB, int(info["MemTotal"]))
    assert sh(http, devbox["id"], "echo ok")["stdout"] == "ok\n"


# ----- user ------------------------------------------------------------------------------------


def test_root_user_parameters_run_commands_as_root(http, devbox_factory):
    devbox = devbox_factory(
        launch_parameters={"user_parameters": {"username": "root", "uid": 0}, "launch_commands": ["id -u > uid.txt"]}
    )
    assert devbox["status"] == "running", devbox
    result = sh(http, devbox["id"], "whoami; id -u; pwd; cat /root/uid.txt")
    assert result["stdout"] == "root\n0\n/root\n0\n"


def test_custom_user_parameters_run_commands_as_that_user_in_a_home_it_owns(http, devbox_factory):
    devbox = devbox_factory(launch_parameters={"user_parameters": {"username": "alice", "uid": 1234}})
    assert devbox["status"] == "running", devbox
    result = sh(http, devbox["id"], "whoami; id -u; pwd")
    assert result["stdout"] == "alice\n1234\n/home/alice\n"
    home = sh(http, devbox["id"], "stat -c %U /home/alice; touch /home/alice/x && echo writable")
    assert home["stdout"] == "alice\nwritable\n", home


def test_custom_user_launch_commands_can_write_their_home(http, devbox_factory):
    devbox = devbox_factory(
        launch_parameters={"user_parameters": {"username": "alice", "uid": 1234}, "launch_commands": ["pwd > at.txt"]}
    )
    assert devbox["status"] == "running", devbox
    assert sh(http, devbox["id"], "cat /home/alice/at.txt")["stdout"] == "/home/alice\n"


@pytest.mark.parametrize(
    "user",
    [
        pytest.param({"username": "root", "uid": 5}, id="root-not-uid-0"),
        pytest.param({"username": "bob", "uid": 0}, id="uid-0-not-root"),
        pytest.param({"username": "Bad Name", "uid": 1001}, id="invalid-name"),
        pytest.param({"username": "bob", "uid": -1}, id="negative-uid"),
    ],
)
def test_invalid_user_parameters_are_400(http, user):
    response = http.post("/v1/devboxes", json={"launch_parameters": {"user_parameters": user}})
    if response.status_code == 200:
        http.post(f"/v1/devboxes/{response.json()['id']}/shutdown")
    assert response.status_code == 400, response.text


def test_environment_variables_reach_launch_commands_and_entrypoint(http, devbox_factory):
    devbox = devbox_factory(
        environment_variables={"GREETING": "hi there"},
        launch_parameters={"launch_commands": ['echo "$GREETING" > /home/user/from_launch']},
        entrypoint='echo "$GREETING" > /home/user/from_entrypoint; sleep infinity',
    )
    assert devbox["status"] == "running", devbox
    result: dict[str, Any] = {}
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        result = sh(http, devbox["id"], "cat /home/user/from_launch /home/user/from_entrypoint 2>/dev/null")
        if result["stdout"].count("\n") == 2:
            break
        time.sleep(0.1)
    assert result["stdout"] == "hi there\nhi there\n"


def test_shutdown_while_initializing_stays_shut_down(http, devbox_factory, docker_client):
    devbox = devbox_factory(wait=False, launch_parameters={"launch_commands": ["sleep 3", "touch /home/user/x"]})
    initializing = wait_for(http, devbox["id"], ["initializing", "running", "failure", "shutdown"])
    assert initializing["status"] == "initializing", initializing
    suspend = http.post(f"/v1/devboxes/{devbox['id']}/suspend")
    assert suspend.status_code == 400, suspend.text  # only a running devbox can be suspended
    done = http.post(f"/v1/devboxes/{devbox['id']}/shutdown")
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "shutdown"
    # The launch command's end must not bring the devbox back to running (or failure).
    late = http.post(
        f"/v1/devboxes/{devbox['id']}/wait_for_status", json={"statuses": ["running", "failure"], "timeout_seconds": 4}
    )
    assert late.status_code == 408, late.text
    final = http.get(f"/v1/devboxes/{devbox['id']}").json()
    assert final["status"] == "shutdown"
    assert final["shutdown_reason"] == "api_shutdown"
    assert [t["status"] for t in final["state_transitions"]] == ["provisioning", "initializing", "shutdown"]
    assert containers_of(docker_client, devbox["id"]) == []


def test_shutdown_right_after_create_leaves_no_container(http, devbox_factory, docker_client):
    devbox = devbox_factory(wait=False)
    done = http.post(f"/v1/devboxes/{devbox['id']}/shutdown")
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "shutdown"
    # A container whose creation was already under way may appear briefly; it must be removed and stay gone.
    assert wait_no_container(docker_client, devbox["id"], seconds=15, stable=2.0) == []
    assert http.get(f"/v1/devboxes/{devbox['id']}").json()["status"] == "shutdown"


def test_name_length_limit(http, devbox_factory):
    ok = devbox_factory(wait=False, name="n" * 256)
    assert ok["name"] == "n" * 256
    response = http.post("/v1/devboxes", json={"name": "n" * 257})
    if response.status_code == 200:
        http.post(f"/v1/devboxes/{response.json()['id']}/shutdown")
    assert response.status_code in (400, 422), response.text


def test_arm64_is_refused(http):
    response = http.post("/v1/devboxes", json={"launch_parameters": {"architecture": "arm64"}})
    if response.status_code == 200:
        http.post(f"/v1/devboxes/{response.json()['id']}/shutdown")
    assert response.status_code == 400, response.text
    assert "arm64" in response.json()["detail"]


def test_usage_scales_with_size(http, devbox_factory):
    devbox = devbox_factory(launch_parameters={"resource_size_request": "X_SMALL"})
    time.sleep(1.1)
    ended = http.post(f"/v1/devboxes/{devbox['id']}/shutdown").json()
    usage = http.get(f"/v1/devboxes/{devbox['id']}/usage").json()
    active_ms = ended["end_time_ms"] - ended["create_time_ms"]
    assert usage["total_active_seconds"] == active_ms // 1000 >= 1
    assert usage["vcpu_seconds"] == int(active_ms * 0.5) // 1000
    assert usage["memory_gb_seconds"] == active_ms // 1000
    assert usage["disk_gb_seconds"] == active_ms * 4 // 1000


def test_entrypoint_survives_suspend_and_resume(http, devbox_factory):
    devbox = devbox_factory(entrypoint="sleep infinity")
    assert devbox["status"] == "running", devbox
    assert http.post(f"/v1/devboxes/{devbox['id']}/suspend").status_code == 200
    assert wait_for(http, devbox["id"], ["suspended", "failure", "shutdown"])["status"] == "suspended"
    assert http.post(f"/v1/devboxes/{devbox['id']}/resume").status_code == 200
    assert wait_for(http, devbox["id"], ["running", "failure", "shutdown"])["status"] == "running"
    # Still running a moment later: resuming restarted the entrypoint rather than ending the devbox.
    late = http.post(
        f"/v1/devboxes/{devbox['id']}/wait_for_status", json={"statuses": ["shutdown", "failure"], "timeout_seconds": 2}
    )
    assert late.status_code == 408, late.text
    assert sh(http, devbox["id"], "pgrep -f 'sleep infinity' >/dev/null && echo up")["stdout"] == "up\n"


@pytest.mark.parametrize("entrypoint", ["true", "exit 3"])
def test_entrypoint_that_exits_at_once_shuts_the_devbox_down(http, devbox_factory, docker_client, entrypoint):
    devbox = devbox_factory(wait=False, entrypoint=entrypoint)
    ended = wait_for(http, devbox["id"], ["shutdown", "failure"], seconds=30)
    assert ended["status"] == "shutdown", ended
    assert ended["shutdown_reason"] == "entrypoint_exit"
    assert ended["end_time_ms"] is not None
    assert wait_no_container(docker_client, devbox["id"]) == []


@pytest.mark.parametrize("phase", ["suspending", "resuming"])
def test_shutdown_during_suspend_or_resume_wins(http, devbox_factory, docker_client, phase):
    devbox = devbox_factory()
    devbox_id = devbox["id"]
    assert http.post(f"/v1/devboxes/{devbox_id}/suspend").status_code == 200
    if phase == "resuming":
        wait_for(http, devbox_id, ["suspended"])
        assert http.post(f"/v1/devboxes/{devbox_id}/resume").status_code == 200
    done = http.post(f"/v1/devboxes/{devbox_id}/shutdown")
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "shutdown"
    # The interrupted suspend/resume must not move the devbox on afterwards.
    late = http.post(
        f"/v1/devboxes/{devbox_id}/wait_for_status",
        json={"statuses": ["running", "suspended", "failure"], "timeout_seconds": 1.5},
    )
    assert late.status_code == 408, late.text
    final = http.get(f"/v1/devboxes/{devbox_id}").json()
    assert final["status"] == "shutdown"
    assert final["shutdown_reason"] == "api_shutdown"
    assert final["state_transitions"][-1]["status"] == "shutdown"
    assert containers_of(docker_client, devbox_id) == []
