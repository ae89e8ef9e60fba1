"""The warm pool (app/services/warm_pool.py): it fills to its target and refills after a claim; a pooled
create is indistinguishable from a cold one (view, hostname, environment, secrets, file mounts, launch
commands, lifecycle); creates the pool cannot serve leave it alone; list order is by create time even though
a warm devbox's id is older; restarts and graceful stops leave no unclaimed pool container behind; and a pool
container killed behind the server's back is never handed out.

A pool container is one of the server's labelled containers whose devbox id has no devbox yet (404). Every
wait polls with a deadline; nothing asserts a duration."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from app.drivers.base import LABEL_DEVBOX, LABEL_INSTANCE
from tests.api.test_ptys import open_pty, terminal
from tests.conftest import ServerProcess, tracked_client, wait_for

POOL = "SMALL=2"
POOL_TARGET = 2
SECRET_VALUE = "pool-secret-value"
DEADLINE_SECONDS = 60.0


@pytest.fixture(scope="module")
def pool_server(server_factory: Callable[..., ServerProcess]) -> Iterator[ServerProcess]:
    server = server_factory(DEVBOX_WARM_POOL=POOL, DEVBOX_SECRETS=json.dumps({"POOL_SECRET": SECRET_VALUE}))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cold_server(server_factory: Callable[..., ServerProcess]) -> Iterator[ServerProcess]:
    """No pool, whatever DEVBOX_TEST_WARM_POOL says: every create here is cold."""
    server = server_factory(DEVBOX_WARM_POOL="", DEVBOX_SECRETS=json.dumps({"POOL_SECRET": SECRET_VALUE}))
    yield server
    server.stop()


@pytest.fixture
def pool_http(pool_server: ServerProcess) -> Iterator[httpx.Client]:
    with tracked_client(pool_server) as http:
        yield http


@pytest.fixture
def cold_http(cold_server: ServerProcess) -> Iterator[httpx.Client]:
    with tracked_client(cold_server) as http:
        yield http


# ----- helpers -------------------------------------------------------------------------------------------


def containers_of(client: docker.DockerClient, instance: str, running_only: bool = False) -> dict[str, str]:
    """devbox id -> container state for every container labelled with this server's instance."""
    found = client.api.containers(all=not running_only, filters={"label": f"{LABEL_INSTANCE}={instance}"})
    return {c["Labels"][LABEL_DEVBOX]: c["State"] for c in found}


def has_devbox(http: httpx.Client, devbox_id: str) -> bool:
    response = http.get(f"/v1/devboxes/{devbox_id}")
    assert response.status_code in (200, 404), response.text
    return response.status_code == 200


def pool_ids(http: httpx.Client, client: docker.DockerClient, instance: str) -> set[str]:
    """Running containers of the instance that no devbox owns yet: the pool's."""
    running = containers_of(client, instance, running_only=True)
    return {devbox_id for devbox_id in running if not has_devbox(http, devbox_id)}


def wait_pool(
    http: httpx.Client,
    client: docker.DockerClient,
    instance: str,
    count: int = POOL_TARGET,
    excluding: set[str] | frozenset[str] = frozenset(),
) -> set[str]:
    """Poll until the pool holds exactly `count` running containers, none of them in `excluding`."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    ids: set[str] = set()
    while time.monotonic() < deadline:
        ids = pool_ids(http, client, instance)
        if len(ids) == count and not ids & excluding:
            return ids
        time.sleep(0.2)
    raise AssertionError(f"the pool never held {count} fresh containers; it holds {sorted(ids)}")


def create(http: httpx.Client, **body: Any) -> dict[str, Any]:
    response = http.post("/v1/devboxes", json=body)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def create_running(http: httpx.Client, **body: Any) -> dict[str, Any]:
    devbox = wait_for(http, create(http, **body)["id"], ["running", "failure", "shutdown"])
    assert devbox["status"] == "running", devbox
    return devbox


def sh(http: httpx.Client, devbox_id: str, command: str, shell_name: str | None = None) -> str:
    body: dict[str, Any] = {"command": command}
    if shell_name:
        body["shell_name"] = shell_name
    response = http.post(f"/v1/devboxes/{devbox_id}/execute_sync", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["exit_status"] == 0, result
    return str(result["stdout"])


def shutdown(http: httpx.Client, devbox_id: str) -> dict[str, Any]:
    response = http.post(f"/v1/devboxes/{devbox_id}/shutdown")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def hostname_for(devbox_id: str) -> str:
    return devbox_id.replace("_", "-")[:63]


# A create that uses every piece of start-up content a claim must apply.
FULL_BODY: dict[str, Any] = {
    "name": "pooled-or-cold",
    "metadata": {"team": "pool", "kind": "full"},
    "environment_variables": {"POOL_VAR": "var-value", "POOL_SPACES": "a b  c"},
    "secrets": {"MY_SECRET": "POOL_SECRET"},
    "file_mounts": {"/home/user/mounted.txt": "mounted-content\n", "/tmp/pool/nested.txt": "nested"},
    "launch_parameters": {
        "launch_commands": ["echo launch-$((40+2)) $POOL_VAR", "echo ran > /home/user/launched.txt"],
        "keep_alive_time_seconds": 3600,
        "after_idle": {"idle_time_seconds": 3600, "on_idle": "suspend"},
    },
}

# Differ between any two devboxes, pooled or not.
PER_DEVBOX = {"id", "create_time_ms", "end_time_ms", "state_transitions"}


def comparable(view: dict[str, Any]) -> dict[str, Any]:
    rest = {key: value for key, value in view.items() if key not in PER_DEVBOX}
    rest["statuses"] = [t["status"] for t in view["state_transitions"]]
    rest["ended"] = view["end_time_ms"] is not None
    return rest


# ----- filling ----------------------------------------------------------------------------------------------


def test_pool_fills_to_its_target_and_refills_after_a_claim(
    pool_server: ServerProcess, pool_http: httpx.Client, docker_client: docker.DockerClient
) -> None:
    before = wait_pool(pool_http, docker_client, pool_server.instance)
    devbox = create(pool_http)
    assert devbox["id"] in before  # the default create took a ready container
    assert wait_for(pool_http, devbox["id"], ["running", "failure", "shutdown"])["status"] == "running"
    after = wait_pool(pool_http, docker_client, pool_server.instance, excluding={devbox["id"]})
    assert len(after - before) == 1  # one new container replaced the claimed one
    shutdown(pool_http, devbox["id"])


# ----- a claim is a create like any other -------------------------------------------------------------------


def test_pooled_and_cold_creates_give_the_same_view(
    pool_server: ServerProcess,
    pool_http: httpx.Client,
    cold_http: httpx.Client,
    docker_client: docker.DockerClient,
) -> None:
    ready = wait_pool(pool_http, docker_client, pool_server.instance)
    pooled_created = create(pool_http, **FULL_BODY)
    cold_created = create(cold_http, **FULL_BODY)
    assert pooled_created["id"] in ready
    assert pooled_created.keys() == cold_created.keys()
    assert comparable(pooled_created) == comparable(cold_created)
    assert pooled_created["launch_parameters"] == cold_created["launch_parameters"]

    pooled = wait_for(pool_http, pooled_created["id"], ["running", "failure", "shutdown"])
    cold = wait_for(cold_http, cold_created["id"], ["running", "failure", "shutdown"])
    assert pooled["status"] == cold["status"] == "running", (pooled, cold)
    assert pooled.keys() == cold.keys()
    assert comparable(pooled) == comparable(cold)
    assert [t["status"] for t in pooled["state_transitions"]] == ["provisioning", "initializing", "running"]

    for http, devbox in ((pool_http, pooled), (cold_http, cold)):
        assert sh(http, devbox["id"], "hostname").strip() == hostname_for(devbox["id"])
        listed = http.get("/v1/devboxes", params={"limit": 1}).json()["devboxes"][0]
        assert listed == http.get(f"/v1/devboxes/{devbox['id']}").json()

    pooled_end, cold_end = shutdown(pool_http, pooled["id"]), shutdown(cold_http, cold["id"])
    assert comparable(pooled_end) == comparable(cold_end)
    assert pooled_end["status"] == "shutdown"


def test_claimed_devbox_gets_its_start_up_content(
    pool_server: ServerProcess, pool_http: httpx.Client, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    ready = wait_pool(pool_http, docker_client, pool_server.instance)
    devbox = create_running(pool_http, **FULL_BODY)
    devbox_id = devbox["id"]
    assert devbox_id in ready
    assert devbox["name"] == FULL_BODY["name"] and devbox["metadata"] == FULL_BODY["metadata"]

    printenv = 'echo "$POOL_VAR|$POOL_SPACES|$MY_SECRET"'
    expected = f"var-value|a b  c|{SECRET_VALUE}"
    assert sh(pool_http, devbox_id, printenv).strip() == expected
    assert sh(pool_http, devbox_id, printenv, shell_name="pool-shell").strip() == expected
    assert sh(pool_http, devbox_id, "cat /home/user/mounted.txt /tmp/pool/nested.txt") == "mounted-content\nnested"
    assert sh(pool_http, devbox_id, "cat /home/user/launched.txt") == "ran\n"
    assert sh(pool_http, devbox_id, "hostname").strip() == hostname_for(devbox_id)
    assert sh(pool_http, devbox_id, "whoami; pwd") == "user\n/home/user\n"

    logs = pool_http.get(f"/v1/devboxes/{devbox_id}/logs").json()["logs"]
    launched = [entry for entry in logs if entry.get("cmd") == FULL_BODY["launch_parameters"]["launch_commands"][0]]
    assert len(launched) == 1 and launched[0]["message"].strip() == "launch-42 var-value", logs
    assert SECRET_VALUE not in json.dumps(logs)

    view = open_pty(pool_http, devbox_id, "pool-pty")
    with terminal(pool_server, view["connect_url"]) as term:
        term.send('echo "E-$POOL_VAR-$MY_SECRET-E"')
        assert term.expect_re(r"E-([^$\s]*)-E").group(1) == f"var-value-{SECRET_VALUE}"

    if shutil.which("ssh") is not None:
        answer = pool_http.post(f"/v1/devboxes/{devbox_id}/create_ssh_key").json()
        key_file = tmp_path / "key"
        key_file.write_text(answer["ssh_private_key"])
        key_file.chmod(0o600)
        host, port = answer["url"].rsplit(":", 1)
        options = ["-i", str(key_file), "-p", port, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"]
        options += ["-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={tmp_path / 'known'}"]
        options += ["-o", "LogLevel=ERROR"]
        result = subprocess.run(
            ["ssh", *options, f"{answer['ssh_user']}@{host}", printenv], capture_output=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.decode().strip() == expected
    shutdown(pool_http, devbox_id)


def test_pooled_devbox_suspends_resumes_snapshots_and_shuts_down(
    pool_server: ServerProcess, pool_http: httpx.Client, docker_client: docker.DockerClient
) -> None:
    ready = wait_pool(pool_http, docker_client, pool_server.instance)
    devbox_id = create_running(pool_http, environment_variables={"KEPT": "kept-value"})["id"]
    assert devbox_id in ready
    sh(pool_http, devbox_id, "echo survives > /home/user/state.txt")

    assert pool_http.post(f"/v1/devboxes/{devbox_id}/suspend").status_code == 200
    assert wait_for(pool_http, devbox_id, ["suspended", "failure", "shutdown"])["status"] == "suspended"
    assert pool_http.post(f"/v1/devboxes/{devbox_id}/resume").status_code == 200
    assert wait_for(pool_http, devbox_id, ["running", "failure", "shutdown"])["status"] == "running"
    assert sh(pool_http, devbox_id, 'cat /home/user/state.txt; echo "$KEPT"') == "survives\nkept-value\n"

    snapshot = pool_http.post(f"/v1/devboxes/{devbox_id}/snapshot_disk", json={"name": "pool-snap"})
    assert snapshot.status_code == 200, snapshot.text
    snapshot_id = snapshot.json()["id"]
    try:
        status = pool_http.get(f"/v1/devboxes/disk_snapshots/{snapshot_id}/status").json()
        assert status["status"] == "complete", status
        # From the snapshot: not a pool create (another image), and the pool is left as it was.
        ready = wait_pool(pool_http, docker_client, pool_server.instance)
        restored = create_running(pool_http, snapshot_id=snapshot_id)
        assert restored["id"] not in ready
        assert sh(pool_http, restored["id"], "cat /home/user/state.txt") == "survives\n"
        assert pool_ids(pool_http, docker_client, pool_server.instance) == ready
        shutdown(pool_http, restored["id"])
    finally:
        shutdown(pool_http, devbox_id)
        pool_http.post(f"/v1/devboxes/disk_snapshots/{snapshot_id}/delete")
    assert containers_of(docker_client, pool_server.instance).get(devbox_id) is None


@pytest.mark.parametrize(
    "body",
    [
        {"entrypoint": "sleep infinity"},
        {"launch_parameters": {"user_parameters": {"username": "root", "uid": 0}}},
        {"launch_parameters": {"resource_size_request": "MEDIUM"}},
        {"launch_parameters": {"resource_size_request": "X_SMALL"}},
    ],
    ids=["entrypoint", "user", "medium", "x-small"],
)
def test_creates_the_pool_cannot_serve_leave_it_alone(
    pool_server: ServerProcess, pool_http: httpx.Client, docker_client: docker.DockerClient, body: dict[str, Any]
) -> None:
    ready = wait_pool(pool_http, docker_client, pool_server.instance)
    devbox = create_running(pool_http, **body)
    assert devbox["id"] not in ready
    assert devbox["launch_parameters"] == body.get("launch_parameters", {}) | devbox["launch_parameters"]
    assert sh(pool_http, devbox["id"], "hostname").strip() == hostname_for(devbox["id"])
    assert pool_ids(pool_http, docker_client, pool_server.instance) == ready
    shutdown(pool_http, devbox["id"])


def test_list_is_newest_first_by_create_time_though_a_warm_id_is_older(
    pool_server: ServerProcess, pool_http: httpx.Client, docker_client: docker.DockerClient
) -> None:
    ready = wait_pool(pool_http, docker_client, pool_server.instance)
    cold = create(pool_http, launch_parameters={"resource_size_request": "MEDIUM"})
    warm = create(pool_http)
    assert warm["id"] in ready and cold["id"] not in ready
    assert warm["id"] < cold["id"]  # minted when its container was made, before the cold create
    assert warm["create_time_ms"] >= cold["create_time_ms"]

    first = pool_http.get("/v1/devboxes", params={"limit": 2}).json()
    assert [d["id"] for d in first["devboxes"]] == [warm["id"], cold["id"]]
    page_one = pool_http.get("/v1/devboxes", params={"limit": 1}).json()
    assert [d["id"] for d in page_one["devboxes"]] == [warm["id"]] and page_one["has_more"]
    page_two = pool_http.get("/v1/devboxes", params={"limit": 1, "starting_after": warm["id"]}).json()
    assert [d["id"] for d in page_two["devboxes"]] == [cold["id"]]
    page_three = pool_http.get("/v1/devboxes", params={"limit": 50, "starting_after": cold["id"]}).json()
    assert {warm["id"], cold["id"]}.isdisjoint(d["id"] for d in page_three["devboxes"])
    for devbox in (warm, cold):
        wait_for(pool_http, devbox["id"], ["running", "failure", "shutdown"])
        shutdown(pool_http, devbox["id"])


# ----- a pool container that dies ---------------------------------------------------------------------------


def wait_not_running(client: docker.DockerClient, instance: str, devbox_ids: set[str]) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        running = containers_of(client, instance, running_only=True)
        if not devbox_ids & running.keys():
            return
        time.sleep(0.1)
    raise AssertionError(f"containers of {sorted(devbox_ids)} still running")


def test_a_killed_pool_container_is_replaced_without_a_create(
    pool_server: ServerProcess, pool_http: httpx.Client, docker_client: docker.DockerClient
) -> None:
    ready = wait_pool(pool_http, docker_client, pool_server.instance)
    victim = sorted(ready)[0]
    docker_client.api.kill(f"devbox-{victim}")
    wait_not_running(docker_client, pool_server.instance, {victim})
    wait_pool(pool_http, docker_client, pool_server.instance, excluding={victim})


def test_killed_pool_containers_are_not_handed_out(
    pool_server: ServerProcess, pool_http: httpx.Client, docker_client: docker.DockerClient
) -> None:
    ready = wait_pool(pool_http, docker_client, pool_server.instance)
    for devbox_id in ready:
        docker_client.api.kill(f"devbox-{devbox_id}")
    wait_not_running(docker_client, pool_server.instance, ready)
    devbox = create_running(pool_http, environment_variables={"AFTER_KILL": "yes"})
    assert devbox["id"] not in ready
    assert sh(pool_http, devbox["id"], 'echo "$AFTER_KILL"; hostname') == f"yes\n{hostname_for(devbox['id'])}\n"
    wait_pool(pool_http, docker_client, pool_server.instance, excluding=ready)
    deadline = time.monotonic() + DEADLINE_SECONDS  # the dead ones are removed, not left behind
    while ready & containers_of(docker_client, pool_server.instance).keys():
        assert time.monotonic() < deadline, "killed pool containers were never removed"
        time.sleep(0.2)
    shutdown(pool_http, devbox["id"])


# ----- restarts and stops -----------------------------------------------------------------------------------


def assert_only_devboxes_and_pool(
    http: httpx.Client, client: docker.DockerClient, instance: str, claimed: set[str], pool: set[str]
) -> None:
    everything = containers_of(client, instance)
    assert everything.keys() == claimed | pool, everything
    assert {devbox_id for devbox_id in everything if not has_devbox(http, devbox_id)} == pool


@pytest.mark.parametrize("kill", [False, True], ids=["graceful", "sigkill"])
def test_restart_leaves_only_claimed_devboxes_and_the_new_pool(
    server_factory: Callable[..., ServerProcess], docker_client: docker.DockerClient, kill: bool
) -> None:
    server = server_factory(DEVBOX_WARM_POOL=POOL)
    try:
        with tracked_client(server) as http:
            ready = wait_pool(http, docker_client, server.instance)
            claimed = create_running(http, environment_variables={"SURVIVES": "restart"})["id"]
            assert claimed in ready
            old_pool = wait_pool(http, docker_client, server.instance, excluding={claimed})

            server.restart(kill=kill)
            new_pool = wait_pool(http, docker_client, server.instance, excluding=old_pool | {claimed})
            assert_only_devboxes_and_pool(http, docker_client, server.instance, {claimed}, new_pool)
            assert http.get(f"/v1/devboxes/{claimed}").json()["status"] == "running"
            assert sh(http, claimed, 'echo "$SURVIVES"') == "restart\n"

            server.stop()  # graceful: the pool goes with the server, the devbox stays
            assert containers_of(docker_client, server.instance).keys() == {claimed}
            server.start()
            assert http.get(f"/v1/devboxes/{claimed}").json()["status"] == "running"
            final_pool = wait_pool(http, docker_client, server.instance, excluding=new_pool | {claimed})
            assert_only_devboxes_and_pool(http, docker_client, server.instance, {claimed}, final_pool)
    finally:
        server.stop()


def test_hostname_is_derived_from_the_id_like_a_cold_create(
    pool_server: ServerProcess, pool_http: httpx.Client, docker_client: docker.DockerClient
) -> None:
    ready = wait_pool(pool_http, docker_client, pool_server.instance)
    devbox_id = create_running(pool_http)["id"]
    assert devbox_id in ready
    attrs = docker_client.api.inspect_container(f"devbox-{devbox_id}")
    assert attrs["Config"]["Hostname"] == hostname_for(devbox_id)
    assert attrs["Config"]["Labels"][LABEL_DEVBOX] == devbox_id
    assert re.fullmatch(r"dbx_[0-9a-z]+", devbox_id)
    shutdown(pool_http, devbox_id)
