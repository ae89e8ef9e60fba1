"""Disk snapshots over HTTP and through the real Runloop client against real Docker: taking them (sync and
async) of running and suspended devboxes, what travels into a devbox created from one (files, tools,
deletions) and what must not (environment, secrets, named-shell state), listing with filters and pages,
metadata keys, update, delete and image lifetime, operator-published snapshots across API keys, snapshots in
progress against shutdown, and server restarts (graceful and SIGKILL)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest
from runloop_api_client import (
    AsyncRunloop,
    BadRequestError,
    ConflictError,
    NotFoundError,
    Runloop,
    RunloopError,
    RunloopSDK,
)
from runloop_api_client.types import DevboxSnapshotView

from tests.conftest import API_KEY, OTHER_API_KEY, REPO, ServerProcess, wait_for

pytestmark = pytest.mark.docker

SNAPSHOT_REPOSITORY = "devboxd-snapshot"
LIST = "/v1/devboxes/disk_snapshots"
LIST_PUBLIC = "/v1/devboxes/disk_snapshots/list_public"
# 300 MB of incompressible data: its commit takes seconds, so a snapshot of it is reliably still in progress
# for the few milliseconds a test needs to act on it.
BIG_FILE_COMMAND = "head -c 300000000 /dev/urandom > /home/user/big.bin"
SECRET_NAME = "api-token"
SECRET_VALUE = f"tok-{uuid.uuid4().hex}"
UNKNOWN_SNAPSHOT = "snp_does_not_exist_00000000000"


# ----- helpers -------------------------------------------------------------------------------------------------


def ok(response: httpx.Response) -> Any:
    request = response.request
    assert response.status_code == 200, f"{request.method} {request.url} -> {response.status_code}: {response.text}"
    return response.json()


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text}"
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "detail"}, body
    return body


def sh(http: httpx.Client, devbox_id: str, command: str, **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = ok(http.post(f"/v1/devboxes/{devbox_id}/execute_sync", json={"command": command, **extra}))
    return result


def run_ok(http: httpx.Client, devbox_id: str, command: str, **extra: Any) -> str:
    result = sh(http, devbox_id, command, **extra)
    assert result["exit_status"] == 0, result
    return str(result["stdout"])


def create_running(http: httpx.Client, **body: Any) -> dict[str, Any]:
    devbox: dict[str, Any] = ok(http.post("/v1/devboxes", json=body))
    devbox = wait_for(http, devbox["id"], ["running", "failure", "shutdown"], seconds=120)
    assert devbox["status"] == "running", devbox
    return devbox


def take_snapshot(http: httpx.Client, devbox_id: str, **body: Any) -> dict[str, Any]:
    view: dict[str, Any] = ok(http.post(f"/v1/devboxes/{devbox_id}/snapshot_disk", json=body))
    return view


def status_of(http: httpx.Client, snapshot_id: str) -> dict[str, Any]:
    status: dict[str, Any] = ok(http.get(f"/v1/devboxes/disk_snapshots/{snapshot_id}/status"))
    return status


def wait_snapshot(http: httpx.Client, snapshot_id: str, seconds: float = 180) -> dict[str, Any]:
    """Poll the status endpoint until the snapshot is no longer in progress."""
    deadline = time.monotonic() + seconds
    while True:
        status = status_of(http, snapshot_id)
        if status["status"] != "in_progress":
            return status
        assert time.monotonic() < deadline, f"snapshot {snapshot_id} still in progress after {seconds:g} s"
        time.sleep(0.2)


def listing(http: httpx.Client, path: str = LIST, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = ok(http.get(path, params=params))
    return body


def ids_of(http: httpx.Client, path: str = LIST, **params: Any) -> list[str]:
    return [s["id"] for s in listing(http, path, **params)["snapshots"]]


def image_of(snapshot_id: str) -> str:
    return f"{SNAPSHOT_REPOSITORY}:{snapshot_id}"


def image_exists(client: docker.DockerClient, snapshot_id: str) -> bool:
    try:
        client.images.get(image_of(snapshot_id))
    except docker.errors.ImageNotFound:
        return False
    return True


def wait_image_gone(client: docker.DockerClient, snapshot_id: str, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while image_exists(client, snapshot_id):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def sha256_in(http: httpx.Client, devbox_id: str, path: str) -> str:
    return run_ok(http, devbox_id, f"sha256sum {path}").split()[0]


def start_big_snapshot(http: httpx.Client, devbox_id: str) -> str:
    """Write 300 MB into the devbox, then start an async snapshot of it; returns the snapshot id."""
    run_ok(http, devbox_id, BIG_FILE_COMMAND)
    view = ok(http.post(f"/v1/devboxes/{devbox_id}/snapshot_disk_async", json={}))
    return str(view["id"])


def skip_because_complete(http: httpx.Client, snapshot_id: str, what: str) -> None:
    """The only acceptable way out of an in-progress test: the commit really finished first."""
    assert status_of(http, snapshot_id)["status"] == "complete"
    pytest.skip(f"the 300 MB commit finished before {what}; nothing to assert")


def devboxd_cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """The operator's CLI with the server's environment, so it opens the same database."""
    env = {**os.environ, "DEVBOX_DATA_DIR": str(server.data_dir), **server.env_extra}
    installed = Path(sys.executable).with_name("devboxd")
    command = [str(installed)] if installed.exists() else [sys.executable, "-m", "app.cli"]
    return subprocess.run([*command, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


@dataclass
class Tracker:
    """Remembers the devboxes and snapshots a test made; shuts them down, deletes them and their images after."""

    devboxes: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)

    def hook(self, response: httpx.Response) -> None:
        request = response.request
        if request.method != "POST" or response.status_code != 200:
            return
        path = request.url.path
        if path in ("/v1/devboxes", "/v1/devboxes/create_and_await_running"):
            response.read()
            self.devboxes.append(response.json()["id"])
        elif path.endswith(("/snapshot_disk", "/snapshot_disk_async")):
            response.read()
            self.snapshots.append(response.json()["id"])

    def clean(self, http: httpx.Client) -> None:
        for devbox_id in self.devboxes:
            with contextlib.suppress(httpx.HTTPError):
                http.post(f"/v1/devboxes/{devbox_id}/shutdown", params={"force": "true"})
        for snapshot_id in self.snapshots:
            with contextlib.suppress(httpx.HTTPError, AssertionError):
                wait_snapshot(http, snapshot_id, seconds=120)
                http.post(f"/v1/devboxes/disk_snapshots/{snapshot_id}/delete")
        client = docker.from_env()
        try:
            for snapshot_id in self.snapshots:  # the server removes them; this only guards the machine's disk
                with contextlib.suppress(docker.errors.APIError):
                    client.images.remove(image_of(snapshot_id))
        finally:
            client.close()


@contextlib.contextmanager
def tracked_client(server: ServerProcess, key: str, tracker: Tracker | None = None) -> Iterator[httpx.Client]:
    tracker = tracker or Tracker()
    with httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=180,
        event_hooks={"response": [tracker.hook]},
    ) as http:
        try:
            yield http
        finally:
            tracker.clean(http)


# ----- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def restartable_server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    """This module's own server: it has a secret configured, gets snapshots published and is restarted."""
    return server_factory(DEVBOX_SECRETS=json.dumps({SECRET_NAME: SECRET_VALUE}))


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with tracked_client(server, API_KEY) as http:
        yield http


@pytest.fixture
def other_api(server: ServerProcess) -> Iterator[httpx.Client]:
    with tracked_client(server, OTHER_API_KEY) as http:
        yield http


@pytest.fixture
def own_api(restartable_server: ServerProcess) -> Iterator[httpx.Client]:
    with tracked_client(restartable_server, API_KEY) as http:
        yield http


@pytest.fixture
def own_other_api(restartable_server: ServerProcess) -> Iterator[httpx.Client]:
    with tracked_client(restartable_server, OTHER_API_KEY) as http:
        yield http


@pytest.fixture
def sdk_tracker(server: ServerProcess) -> Iterator[Tracker]:
    """For devboxes and snapshots made through the Runloop client: append their ids; cleaned up after."""
    tracker = Tracker()
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=180) as http:
        yield tracker
        tracker.clean(http)


# ----- taking snapshots ----------------------------------------------------------------------------------------


def test_snapshot_disk_returns_the_complete_view_and_status_agrees(api):
    devbox = create_running(api)
    run_ok(api, devbox["id"], "head -c 1048576 /dev/urandom > /home/user/one-mib.bin")
    before = int(time.time() * 1000)
    view = take_snapshot(
        api, devbox["id"], name="first", metadata={"team": "core", "tier": "gold"}, commit_message="m" * 1000
    )
    after = int(time.time() * 1000)

    assert set(view) == {
        "id",
        "name",
        "create_time_ms",
        "metadata",
        "source_devbox_id",
        "source_blueprint_id",
        "commit_message",
        "size_bytes",
    }
    assert view["id"].startswith("snp_")
    assert view["name"] == "first"
    assert view["metadata"] == {"team": "core", "tier": "gold"}
    assert view["commit_message"] == "m" * 1000
    assert view["source_devbox_id"] == devbox["id"]
    assert view["source_blueprint_id"] is None
    assert before - 1 <= view["create_time_ms"] <= after + 1
    assert isinstance(view["size_bytes"], int) and view["size_bytes"] >= 1048576

    status = status_of(api, view["id"])
    assert status == {"status": "complete", "snapshot": view, "error_message": None}
    assert listing(api, devbox_id=devbox["id"])["snapshots"] == [view]
    # Taking a snapshot leaves the devbox running and usable.
    assert ok(api.get(f"/v1/devboxes/{devbox['id']}"))["status"] == "running"
    assert run_ok(api, devbox["id"], "echo still-here") == "still-here\n"

    # No body at all is fine too: everything optional.
    bare = ok(api.post(f"/v1/devboxes/{devbox['id']}/snapshot_disk"))
    assert (bare["name"], bare["metadata"], bare["commit_message"]) == (None, {}, None)
    assert status_of(api, bare["id"])["status"] == "complete"


def test_files_tools_and_deletions_travel_into_a_new_devbox(api):
    source = create_running(api)
    sid = source["id"]
    text = "line one\nünïcödé ✓ 😀\n\ttabbed\n"
    ok(
        api.post(
            f"/v1/devboxes/{sid}/write_file_contents", json={"file_path": "/home/user/notes.txt", "contents": text}
        )
    )
    blob = os.urandom(3 * 1024 * 1024 + 17)
    ok(
        api.post(
            f"/v1/devboxes/{sid}/upload_file",
            data={"path": "blob.bin"},
            files={"file": ("blob.bin", blob, "application/octet-stream")},
        )
    )
    run_ok(
        api,
        sid,
        "mkdir -p ~/proj/empty_dir && head -c 2000000 /dev/urandom > ~/proj/random.bin"
        " && ln -s random.bin ~/proj/link && printf '#!/bin/sh\\necho script-ran\\n' > ~/proj/run.sh"
        " && chmod 751 ~/proj/run.sh && chmod 700 ~/proj",
    )
    run_ok(api, sid, "sudo cp /bin/true /usr/local/bin/mytool && sudo chmod 755 /usr/local/bin/mytool")
    run_ok(api, sid, "sudo rm /etc/issue && sudo mkdir -p /opt/devtool && echo v1 | sudo tee /opt/devtool/VERSION")
    stat_command = "stat -c '%n %U %G %a %F' ~/proj ~/proj/empty_dir ~/proj/random.bin ~/proj/run.sh ~/proj/link"
    stats = run_ok(api, sid, stat_command)
    random_sha = sha256_in(api, sid, "~/proj/random.bin")
    assert sha256_in(api, sid, "~/blob.bin") == hashlib.sha256(blob).hexdigest()

    snapshot = take_snapshot(api, sid, name="with-files")
    # Two ways to start from it: POST /v1/devboxes, and create_and_await_running.
    first = create_running(api, snapshot_id=snapshot["id"])
    second = ok(api.post("/v1/devboxes/create_and_await_running", json={"snapshot_id": snapshot["id"]}))
    if second["status"] != "running":
        second = wait_for(api, second["id"], ["running", "failure", "shutdown"], seconds=120)
    assert second["status"] == "running", second

    for devbox in (first, second):
        did = devbox["id"]
        assert devbox["snapshot_id"] == snapshot["id"]
        assert ok(api.get(f"/v1/devboxes/{did}"))["snapshot_id"] == snapshot["id"]
        read = api.post(f"/v1/devboxes/{did}/read_file_contents", json={"file_path": "/home/user/notes.txt"})
        assert read.status_code == 200, read.text
        assert read.text == text
        downloaded = api.post(f"/v1/devboxes/{did}/download_file", json={"path": "blob.bin"})
        assert downloaded.status_code == 200, downloaded.text
        assert hashlib.sha256(downloaded.content).hexdigest() == hashlib.sha256(blob).hexdigest()
        assert sha256_in(api, did, "~/proj/random.bin") == random_sha
        assert run_ok(api, did, stat_command) == stats
        assert run_ok(api, did, "readlink ~/proj/link; ~/proj/run.sh") == "random.bin\nscript-ran\n"
        assert run_ok(api, did, "command -v mytool && mytool && echo tool-ran") == "/usr/local/bin/mytool\ntool-ran\n"
        assert run_ok(api, did, "test -e /etc/issue && echo present || echo gone") == "gone\n"
        assert run_ok(api, did, "cat /opt/devtool/VERSION") == "v1\n"
        # The new devbox is itself, not a copy of the source: its own hostname and user.
        assert run_ok(api, did, "hostname; whoami; pwd") == f"{did.replace('_', '-')}\nuser\n/home/user\n"

    # Changes in a derived devbox touch neither the source nor the snapshot.
    run_ok(api, first["id"], "rm ~/blob.bin && echo changed > ~/notes.txt")
    third = create_running(api, snapshot_id=snapshot["id"])
    assert sha256_in(api, third["id"], "~/blob.bin") == hashlib.sha256(blob).hexdigest()
    assert sha256_in(api, sid, "~/blob.bin") == hashlib.sha256(blob).hexdigest()


def test_environment_secrets_and_shell_state_do_not_travel(own_api, docker_client):
    source = create_running(own_api, environment_variables={"FOO": "bar"}, secrets={"API_TOKEN": SECRET_NAME})
    sid = source["id"]
    assert run_ok(own_api, sid, 'echo "[$FOO][$API_TOKEN]"') == f"[bar][{SECRET_VALUE}]\n"
    run_ok(own_api, sid, "export SHELL_VAR=kept; cd /tmp", shell_name="keeper")
    assert run_ok(own_api, sid, 'echo "[$SHELL_VAR]"; pwd', shell_name="keeper") == "[kept]\n/tmp\n"

    snapshot = take_snapshot(own_api, sid)
    config = docker_client.images.get(image_of(snapshot["id"])).attrs["Config"]
    env_names = [entry.split("=", 1)[0] for entry in config.get("Env") or []]
    assert "FOO" not in env_names and "API_TOKEN" not in env_names, config.get("Env")
    assert SECRET_VALUE not in json.dumps(config)

    plain = create_running(own_api, snapshot_id=snapshot["id"])
    pid = plain["id"]
    assert run_ok(own_api, pid, 'echo "[$FOO][$API_TOKEN]"') == "[][]\n"
    assert run_ok(own_api, pid, 'echo "[$SHELL_VAR]"; pwd', shell_name="keeper") == "[]\n/home/user\n"
    # Nowhere on the new devbox's disk: not in the environment files, not in the shells' saved state.
    found = sh(own_api, pid, f"sudo grep -rl -- '{SECRET_VALUE}' /home /root /etc /tmp /var /opt /usr/local /run")
    assert found["stdout"] == "", found
    assert found["exit_status"] == 1, found  # grep: nothing matched (2 would be an error)

    # A devbox from the snapshot gets its own environment, not the source's.
    own_env = create_running(own_api, snapshot_id=snapshot["id"], environment_variables={"FOO": "mine"})
    assert run_ok(own_api, own_env["id"], 'echo "[$FOO][$API_TOKEN]"') == "[mine][]\n"
    # And the source keeps its own.
    assert run_ok(own_api, sid, 'echo "[$FOO][$API_TOKEN]"') == f"[bar][{SECRET_VALUE}]\n"
    assert run_ok(own_api, sid, 'echo "[$SHELL_VAR]"', shell_name="keeper") == "[kept]\n"


def test_snapshot_of_a_suspended_devbox_leaves_it_suspended(api):
    source = create_running(api)
    sid = source["id"]
    run_ok(api, sid, "echo before-suspend > ~/s.txt")
    ok(api.post(f"/v1/devboxes/{sid}/suspend"))
    assert wait_for(api, sid, ["suspended", "failure", "shutdown"])["status"] == "suspended"

    snapshot = take_snapshot(api, sid, name="from-suspended")
    assert snapshot["source_devbox_id"] == sid
    after = ok(api.get(f"/v1/devboxes/{sid}"))
    assert after["status"] == "suspended"
    assert after["state_transitions"][-1]["status"] == "suspended"

    child = create_running(api, snapshot_id=snapshot["id"])
    assert run_ok(api, child["id"], "cat ~/s.txt") == "before-suspend\n"

    ok(api.post(f"/v1/devboxes/{sid}/resume"))
    assert wait_for(api, sid, ["running", "failure", "shutdown"])["status"] == "running"
    assert run_ok(api, sid, "cat ~/s.txt") == "before-suspend\n"


def test_snapshot_of_a_snapshot_derived_devbox(api):
    first = create_running(api)
    run_ok(api, first["id"], "echo original > ~/a.txt")
    one = take_snapshot(api, first["id"], name="gen-1")

    second = create_running(api, snapshot_id=one["id"])
    run_ok(api, second["id"], "echo changed > ~/a.txt && echo added > ~/b.txt")
    two = take_snapshot(api, second["id"], name="gen-2")
    assert two["source_devbox_id"] == second["id"]

    third = create_running(api, snapshot_id=two["id"])
    assert third["snapshot_id"] == two["id"]
    assert run_ok(api, third["id"], "cat ~/a.txt ~/b.txt") == "changed\nadded\n"
    # The first generation is unchanged.
    again = create_running(api, snapshot_id=one["id"])
    assert run_ok(api, again["id"], "cat ~/a.txt; test -e ~/b.txt || echo no-b") == "original\nno-b\n"


def test_custom_user_home_travels(api):
    alice = {"user_parameters": {"username": "alice", "uid": 1234}}
    source = create_running(api, launch_parameters=alice)
    run_ok(api, source["id"], "echo mine > ~/mine.txt")
    snapshot = take_snapshot(api, source["id"])

    same_user = create_running(api, snapshot_id=snapshot["id"], launch_parameters=alice)
    assert run_ok(api, same_user["id"], "whoami; pwd; cat ~/mine.txt; stat -c %U ~/mine.txt") == (
        "alice\n/home/alice\nmine\nalice\n"
    )
    default_user = create_running(api, snapshot_id=snapshot["id"])
    assert run_ok(api, default_user["id"], "whoami; pwd; cat /home/alice/mine.txt") == "user\n/home/user\nmine\n"


def test_launch_commands_and_entrypoint_run_afresh_on_a_devbox_from_a_snapshot(api):
    source = create_running(api, launch_parameters={"launch_commands": ["echo source >> ~/launch.log"]})
    snapshot = take_snapshot(api, source["id"])

    # The entrypoint must wait for the new devbox's launch commands: the source's open gate does not travel.
    child = create_running(
        api,
        snapshot_id=snapshot["id"],
        launch_parameters={"launch_commands": ["sleep 1; echo child >> ~/launch.log"]},
        entrypoint="echo child-entrypoint >> /home/user/launch.log; sleep infinity",
    )
    log = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        log = run_ok(api, child["id"], "cat ~/launch.log")
        if log.count("\n") >= 3:
            break
        time.sleep(0.2)
    assert log == "source\nchild\nchild-entrypoint\n"


def test_two_concurrent_snapshots_of_one_devbox_both_complete(api):
    devbox = create_running(api)
    run_ok(api, devbox["id"], "head -c 50000000 /dev/urandom > ~/data.bin")
    digest = sha256_in(api, devbox["id"], "~/data.bin")
    with ThreadPoolExecutor(2) as pool:
        views = list(pool.map(lambda n: take_snapshot(api, devbox["id"], name=f"c{n}"), range(2)))
    assert views[0]["id"] != views[1]["id"]
    for view in views:
        assert status_of(api, view["id"])["status"] == "complete"
        child = create_running(api, snapshot_id=view["id"])
        assert sha256_in(api, child["id"], "~/data.bin") == digest
    assert run_ok(api, devbox["id"], "echo unpaused") == "unpaused\n"


def test_only_running_or_suspended_devboxes_can_be_snapshotted(api):
    slow = ok(api.post("/v1/devboxes", json={"launch_parameters": {"launch_commands": ["sleep 5"]}}))
    initializing = wait_for(api, slow["id"], ["initializing", "running", "failure", "shutdown"])
    assert initializing["status"] == "initializing", initializing
    for endpoint in ("snapshot_disk", "snapshot_disk_async"):
        assert "initializing" in error(api.post(f"/v1/devboxes/{slow['id']}/{endpoint}", json={}), 400)["detail"]

    assert ok(api.post(f"/v1/devboxes/{slow['id']}/shutdown"))["status"] == "shutdown"
    for endpoint in ("snapshot_disk", "snapshot_disk_async"):
        assert "shutdown" in error(api.post(f"/v1/devboxes/{slow['id']}/{endpoint}", json={}), 400)["detail"]

    failed = ok(api.post("/v1/devboxes", json={"launch_parameters": {"launch_commands": ["exit 3"]}}))
    assert wait_for(api, failed["id"], ["failure", "running", "shutdown"])["status"] == "failure"
    error(api.post(f"/v1/devboxes/{failed['id']}/snapshot_disk", json={}), 400)
    assert ids_of(api, devbox_id=slow["id"]) == [] and ids_of(api, devbox_id=failed["id"]) == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param({"commit_message": "m" * 1001}, 400, id="commit-message-1001"),
        pytest.param({"metadata": {"n": 1}}, 400, id="metadata-int"),
        pytest.param({"metadata": {"n": None}}, 400, id="metadata-null"),
        pytest.param({"metadata": {"n": {"nested": "x"}}}, 400, id="metadata-object"),
        pytest.param({"metadata": {"ok": "1", "n": True}}, 400, id="metadata-bool"),
        pytest.param({"name": "n" * 257}, 400, id="name-257"),
    ],
)
def test_invalid_snapshot_requests(api, body, status):
    devbox = create_running(api)
    for endpoint in ("snapshot_disk", "snapshot_disk_async"):
        error(api.post(f"/v1/devboxes/{devbox['id']}/{endpoint}", json=body), status)
    assert ids_of(api, devbox_id=devbox["id"]) == []


def test_unknown_and_foreign_ids_are_404(api, other_api):
    for endpoint in ("snapshot_disk", "snapshot_disk_async"):
        error(api.post(f"/v1/devboxes/dbx_does_not_exist_000000000000/{endpoint}", json={}), 404)
    error(api.get(f"/v1/devboxes/disk_snapshots/{UNKNOWN_SNAPSHOT}/status"), 404)
    error(api.post(f"/v1/devboxes/disk_snapshots/{UNKNOWN_SNAPSHOT}", json={"name": "x"}), 404)
    error(api.post(f"/v1/devboxes/disk_snapshots/{UNKNOWN_SNAPSHOT}/delete"), 404)
    error(api.post("/v1/devboxes", json={"snapshot_id": UNKNOWN_SNAPSHOT}), 404)
    error(api.post("/v1/devboxes/create_and_await_running", json={"snapshot_id": UNKNOWN_SNAPSHOT}), 404)

    devbox = create_running(api)
    snapshot = take_snapshot(api, devbox["id"], metadata={"owner": "primary"})
    # Another API key sees neither the devbox nor the snapshot.
    for endpoint in ("snapshot_disk", "snapshot_disk_async"):
        error(other_api.post(f"/v1/devboxes/{devbox['id']}/{endpoint}", json={}), 404)
    error(other_api.get(f"/v1/devboxes/disk_snapshots/{snapshot['id']}/status"), 404)
    error(other_api.post(f"/v1/devboxes/disk_snapshots/{snapshot['id']}", json={"name": "stolen"}), 404)
    error(other_api.post(f"/v1/devboxes/disk_snapshots/{snapshot['id']}/delete"), 404)
    error(other_api.post("/v1/devboxes", json={"snapshot_id": snapshot["id"]}), 404)
    assert ids_of(other_api, devbox_id=devbox["id"]) == []
    assert snapshot["id"] not in ids_of(other_api, limit=5000)
    assert status_of(api, snapshot["id"]) == {"status": "complete", "snapshot": snapshot, "error_message": None}


def test_async_snapshot_is_in_progress_then_complete(api):
    devbox = create_running(api)
    snapshot_id = start_big_snapshot(api, devbox["id"])
    first = status_of(api, snapshot_id)
    if first["status"] == "complete":
        skip_because_complete(api, snapshot_id, "the first status call")
    assert first == {"status": "in_progress", "snapshot": None, "error_message": None}
    # An in-progress snapshot is listed already, without a size yet.
    listed = listing(api, devbox_id=devbox["id"])["snapshots"]
    assert [s["id"] for s in listed] == [snapshot_id]

    done = wait_snapshot(api, snapshot_id)
    assert done["status"] == "complete", done
    assert done["error_message"] is None
    assert done["snapshot"]["id"] == snapshot_id
    assert done["snapshot"]["size_bytes"] >= 300_000_000
    assert listing(api, devbox_id=devbox["id"])["snapshots"] == [done["snapshot"]]
    child = create_running(api, snapshot_id=snapshot_id)
    assert run_ok(api, child["id"], "stat -c %s ~/big.bin") == "300000000\n"


def test_in_progress_snapshot_blocks_delete_create_and_shutdown_until_forced(api, docker_client):
    devbox = create_running(api)
    snapshot_id = start_big_snapshot(api, devbox["id"])

    deleting = api.post(f"/v1/devboxes/disk_snapshots/{snapshot_id}/delete")
    if deleting.status_code == 200:
        skip_because_complete(api, snapshot_id, "the delete")
    error(deleting, 409)
    assert deleting.headers.get("x-should-retry") == "false"

    creating = api.post("/v1/devboxes", json={"snapshot_id": snapshot_id})
    if creating.status_code == 200:
        skip_because_complete(api, snapshot_id, "the create")
    assert "in_progress" in error(creating, 400)["detail"]

    refused = api.post(f"/v1/devboxes/{devbox['id']}/shutdown")
    if refused.status_code == 200:
        skip_because_complete(api, snapshot_id, "the shutdown")
    error(refused, 409)
    assert refused.headers.get("x-should-retry") == "false"
    # Refused means untouched.
    assert ok(api.get(f"/v1/devboxes/{devbox['id']}"))["status"] == "running"
    also_refused = api.post(f"/v1/devboxes/{devbox['id']}/shutdown", params={"force": "false"})
    if also_refused.status_code == 200:
        skip_because_complete(api, snapshot_id, "the second shutdown")
    error(also_refused, 409)

    forced = ok(api.post(f"/v1/devboxes/{devbox['id']}/shutdown", params={"force": "true"}))
    assert forced["status"] == "shutdown"
    ended = status_of(api, snapshot_id)
    if ended["status"] == "complete":
        pytest.skip("the commit completed while the forced shutdown ran")  # force found nothing in progress
    assert ended["status"] == "error", ended
    assert ended["snapshot"] is None
    assert ended["error_message"]
    # The commit may still be finishing in the engine; its image must not be left behind.
    assert wait_image_gone(docker_client, snapshot_id, seconds=60), "a failed snapshot's image was left behind"
    error(api.post("/v1/devboxes", json={"snapshot_id": snapshot_id}), 400)
    assert ok(api.post(f"/v1/devboxes/disk_snapshots/{snapshot_id}/delete")) == {}
    assert status_of(api, snapshot_id)["status"] == "deleted"


# ----- listing -------------------------------------------------------------------------------------------------


def test_list_filters_pagination_and_tenants(api, other_api):
    tag = uuid.uuid4().hex[:10]
    devbox = create_running(api)
    elsewhere_box = create_running(api)
    specs = [
        {"color": "red", "n": "0"},
        {"color": "blue", "n": "1"},
        {"color": "red", "n": "2"},
        {"color": "green", "n": "3"},
        {"color": "red", "n": "4", "extra": "x"},
    ]
    made = [take_snapshot(api, devbox["id"], name=f"l{i}", metadata={"run": tag, **m}) for i, m in enumerate(specs)]
    elsewhere = take_snapshot(api, elsewhere_box["id"], metadata={"run": tag, "color": "red", "n": "5"})
    m = [s["id"] for s in made]
    newest_first = m[::-1]
    run = {"metadata[run]": tag}

    assert listing(api, devbox_id=devbox["id"])["snapshots"] == made[::-1]  # newest first, full views
    assert ids_of(api, devbox_id=devbox["id"]) == newest_first
    assert ids_of(api, **run) == [elsewhere["id"], *newest_first]
    assert ids_of(api, **run, **{"metadata[color]": "red"}) == [elsewhere["id"], m[4], m[2], m[0]]
    assert ids_of(api, **run, **{"metadata[color]": "red"}, devbox_id=devbox["id"]) == [m[4], m[2], m[0]]
    assert ids_of(api, **run, **{"metadata[n][in]": "1,3,9"}) == [m[3], m[1]]
    assert ids_of(api, **run, **{"metadata[color][in]": "blue,green", "metadata[n]": "3"}) == [m[3]]
    assert ids_of(api, **run, **{"metadata[extra]": "x"}) == [m[4]]
    assert ids_of(api, **run, **{"metadata[color]": "purple"}) == []
    assert ids_of(api, **run, **{"metadata[missing]": "x"}) == []
    assert ids_of(api, devbox_id=devbox["id"], source_blueprint_id="bpt_none") == []
    assert ids_of(api, devbox_id="dbx_unknown") == []

    # Pages: same query + starting_after=<last id>, until has_more is false.
    pages: list[list[str]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"devbox_id": devbox["id"], "limit": 2, "include_total_count": "true"}
        if after:
            params["starting_after"] = after
        body = listing(api, **params)
        assert body["total_count"] == 5
        pages.append([s["id"] for s in body["snapshots"]])
        if not body["has_more"]:
            break
        after = pages[-1][-1]
    assert pages == [newest_first[:2], newest_first[2:4], newest_first[4:]]
    # Pages of a filtered list.
    red = {**run, "metadata[color]": "red", "limit": 2}
    page1 = listing(api, **red)
    assert [s["id"] for s in page1["snapshots"]] == [elsewhere["id"], m[4]] and page1["has_more"]
    page2 = listing(api, **red, starting_after=m[4])
    assert [s["id"] for s in page2["snapshots"]] == [m[2], m[0]] and not page2["has_more"]
    # has_more is exact at the boundary; total_count only when asked for.
    assert listing(api, devbox_id=devbox["id"], limit=5)["has_more"] is False
    assert listing(api, devbox_id=devbox["id"], limit=4)["has_more"] is True
    assert listing(api, devbox_id=devbox["id"], include_total_count="false")["total_count"] is None
    assert listing(api, **run, include_total_count="true", limit=1)["total_count"] == 6

    # Another API key sees none of them; private snapshots are not public.
    assert ids_of(other_api, devbox_id=devbox["id"]) == []
    assert ids_of(other_api, **run) == []
    assert ids_of(api, LIST_PUBLIC, **run) == []
    assert ids_of(other_api, LIST_PUBLIC, **run) == []


@pytest.mark.parametrize("path", [LIST, LIST_PUBLIC])
@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"limit": "0"}, id="limit-0"),
        pytest.param({"limit": "5001"}, id="limit-5001"),
        pytest.param({"limit": "ten"}, id="limit-not-a-number"),
        pytest.param({"include_total_count": "maybe"}, id="total-count-not-a-bool"),
        pytest.param({"metadata": "x"}, id="metadata-without-key"),
        pytest.param({"metadata[k][nin]": "a"}, id="metadata-unknown-operator"),
    ],
)
def test_bad_list_parameters_are_400(api, path, params):
    error(api.get(path, params=params), 400)


def test_total_count_is_included_by_default(api):
    devbox = create_running(api)
    take_snapshot(api, devbox["id"])
    assert listing(api, devbox_id=devbox["id"])["total_count"] == 1


def test_metadata_keys_and_values(api, other_api):
    tag = uuid.uuid4().hex[:10]
    team, tier = f"team-{tag}", f"tier-{tag}"
    devbox = create_running(api)
    take_snapshot(api, devbox["id"], metadata={team: "core", tier: "gold"})
    second = take_snapshot(api, devbox["id"], metadata={team: "infra"})
    take_snapshot(api, devbox["id"], metadata={team: "core"})

    keys = ok(api.get("/v1/devboxes/disk_snapshots/metadata/keys"))["keys"]
    assert {team, tier} <= set(keys)
    assert keys == sorted(set(keys))
    assert ok(api.get(f"/v1/devboxes/disk_snapshots/metadata/keys/{team}/values")) == {
        "key": team,
        "values": ["core", "infra"],
    }
    assert ok(api.get(f"/v1/devboxes/disk_snapshots/metadata/keys/{tier}/values"))["values"] == ["gold"]
    assert ok(api.get(f"/v1/devboxes/disk_snapshots/metadata/keys/none-{tag}/values"))["values"] == []
    error(api.get("/v1/devboxes/disk_snapshots/metadata/keys/%20/values"), 400)

    # Per API key, and none of them public.
    assert team not in ok(other_api.get("/v1/devboxes/disk_snapshots/metadata/keys"))["keys"]
    assert ok(other_api.get(f"/v1/devboxes/disk_snapshots/metadata/keys/{team}/values"))["values"] == []
    assert team not in ok(api.get("/v1/devboxes/disk_snapshots/public/metadata/keys"))["keys"]
    assert ok(api.get(f"/v1/devboxes/disk_snapshots/public/metadata/keys/{team}/values"))["values"] == []

    # Deleted and updated snapshots stop contributing.
    assert ok(api.post(f"/v1/devboxes/disk_snapshots/{second['id']}/delete")) == {}
    assert ok(api.get(f"/v1/devboxes/disk_snapshots/metadata/keys/{team}/values"))["values"] == ["core"]


# ----- update and delete ---------------------------------------------------------------------------------------


def test_update_replaces_name_metadata_and_commit_message(api, other_api):
    devbox = create_running(api)
    view = take_snapshot(api, devbox["id"], name="orig", metadata={"a": "1", "b": "2"}, commit_message="msg")
    url = f"/v1/devboxes/disk_snapshots/{view['id']}"

    updated = ok(api.post(url, json={"name": "new", "metadata": {"c": "3"}, "commit_message": "new msg"}))
    assert updated == {**view, "name": "new", "metadata": {"c": "3"}, "commit_message": "new msg"}
    assert status_of(api, view["id"])["snapshot"] == updated
    assert listing(api, devbox_id=devbox["id"])["snapshots"] == [updated]

    only_name = ok(api.post(url, json={"name": "only-name"}))
    assert (only_name["name"], only_name["metadata"], only_name["commit_message"]) == ("only-name", {}, None)
    only_meta = ok(api.post(url, json={"metadata": {"d": "4"}}))
    assert (only_meta["name"], only_meta["metadata"], only_meta["commit_message"]) == (None, {"d": "4"}, None)
    empty = ok(api.post(url, json={}))
    assert (empty["name"], empty["metadata"], empty["commit_message"]) == (None, {}, None)
    ok(api.post(url, json={"name": "again", "metadata": {"e": "5"}}))
    no_body = ok(api.post(url))
    assert (no_body["name"], no_body["metadata"], no_body["commit_message"]) == (None, {}, None)
    # What never changes.
    for field_name in ("id", "create_time_ms", "source_devbox_id", "source_blueprint_id", "size_bytes"):
        assert no_body[field_name] == view[field_name]

    error(api.post(url, json={"commit_message": "m" * 1001}), 400)
    error(api.post(url, json={"metadata": {"n": 5}}), 400)
    error(api.post(url, json={"name": "n" * 257}), 400)
    error(other_api.post(url, json={"name": "stolen"}), 404)
    assert status_of(api, view["id"])["snapshot"] == no_body  # failed updates changed nothing

    # Still usable after all that.
    child = create_running(api, snapshot_id=view["id"])
    assert child["snapshot_id"] == view["id"]
    assert ok(api.post(f"{url}/delete")) == {}
    error(api.post(url, json={"name": "late"}), 404)


def test_delete_hides_the_snapshot_and_removes_its_image(api, docker_client):
    devbox = create_running(api)
    keep = take_snapshot(api, devbox["id"], name="keep")
    gone = take_snapshot(api, devbox["id"], name="gone", metadata={"k": "v"})
    assert image_exists(docker_client, gone["id"])

    assert ok(api.post(f"/v1/devboxes/disk_snapshots/{gone['id']}/delete")) == {}
    assert status_of(api, gone["id"]) == {"status": "deleted", "snapshot": None, "error_message": None}
    assert ids_of(api, devbox_id=devbox["id"]) == [keep["id"]]
    assert listing(api, devbox_id=devbox["id"], include_total_count="true")["total_count"] == 1
    assert wait_image_gone(docker_client, gone["id"]), "the image of a deleted, unused snapshot is still there"
    assert image_exists(docker_client, keep["id"])

    error(api.post(f"/v1/devboxes/disk_snapshots/{gone['id']}/delete"), 404)
    error(api.post("/v1/devboxes", json={"snapshot_id": gone["id"]}), 404)
    error(api.post(f"/v1/devboxes/disk_snapshots/{gone['id']}", json={"name": "x"}), 404)
    # The source devbox does not care.
    assert run_ok(api, devbox["id"], "echo fine") == "fine\n"


def test_image_lives_while_devboxes_use_it(api, docker_client):
    source = create_running(api)
    run_ok(api, source["id"], "echo shared > ~/shared.txt")
    snapshot = take_snapshot(api, source["id"])
    users = [create_running(api, snapshot_id=snapshot["id"]) for _ in range(2)]

    assert ok(api.post(f"/v1/devboxes/disk_snapshots/{snapshot['id']}/delete")) == {}
    assert status_of(api, snapshot["id"])["status"] == "deleted"
    assert image_exists(docker_client, snapshot["id"]), "the image went while devboxes still use it"
    error(api.post("/v1/devboxes", json={"snapshot_id": snapshot["id"]}), 404)

    assert ok(api.post(f"/v1/devboxes/{users[0]['id']}/shutdown"))["status"] == "shutdown"
    assert image_exists(docker_client, snapshot["id"]), "the image went while a devbox still uses it"
    assert run_ok(api, users[1]["id"], "cat ~/shared.txt") == "shared\n"
    # Suspending and resuming the last user keeps its container, so the image stays.
    ok(api.post(f"/v1/devboxes/{users[1]['id']}/suspend"))
    assert wait_for(api, users[1]["id"], ["suspended", "failure", "shutdown"])["status"] == "suspended"
    assert image_exists(docker_client, snapshot["id"])
    ok(api.post(f"/v1/devboxes/{users[1]['id']}/resume"))
    assert wait_for(api, users[1]["id"], ["running", "failure", "shutdown"])["status"] == "running"
    assert run_ok(api, users[1]["id"], "cat ~/shared.txt") == "shared\n"

    assert ok(api.post(f"/v1/devboxes/{users[1]['id']}/shutdown"))["status"] == "shutdown"
    assert wait_image_gone(docker_client, snapshot["id"]), "the image stayed after its last devbox was shut down"


def test_shutting_down_the_source_keeps_its_snapshots(api, docker_client):
    source = create_running(api)
    run_ok(api, source["id"], "echo survives > ~/x.txt")
    snapshot = take_snapshot(api, source["id"], name="orphan")
    assert ok(api.post(f"/v1/devboxes/{source['id']}/shutdown"))["status"] == "shutdown"

    assert status_of(api, snapshot["id"]) == {"status": "complete", "snapshot": snapshot, "error_message": None}
    assert ids_of(api, devbox_id=source["id"]) == [snapshot["id"]]
    assert image_exists(docker_client, snapshot["id"])
    child = create_running(api, snapshot_id=snapshot["id"])
    assert run_ok(api, child["id"], "cat ~/x.txt") == "survives\n"
    # Shutting down the child (the image's only user) must not remove a snapshot that still exists.
    assert ok(api.post(f"/v1/devboxes/{child['id']}/shutdown"))["status"] == "shutdown"
    assert image_exists(docker_client, snapshot["id"])
    assert status_of(api, snapshot["id"])["status"] == "complete"
    assert create_running(api, snapshot_id=snapshot["id"])["snapshot_id"] == snapshot["id"]


def test_a_container_run_from_a_snapshot_image_outside_devboxd_does_not_end_the_source(api, docker_client):
    source = create_running(api)
    snapshot = take_snapshot(api, source["id"])
    # What an operator might do: `docker run --rm devboxd-snapshot:<id> true`.
    docker_client.containers.run(image_of(snapshot["id"]), ["true"], remove=True)
    late = api.post(
        f"/v1/devboxes/{source['id']}/wait_for_status", json={"statuses": ["failure", "shutdown"], "timeout_seconds": 5}
    )
    assert late.status_code == 408, late.text
    assert ok(api.get(f"/v1/devboxes/{source['id']}"))["status"] == "running"


# ----- public snapshots ----------------------------------------------------------------------------------------


def test_publish_makes_a_snapshot_usable_by_every_key_until_unpublished(
    restartable_server, own_api, own_other_api, docker_client
):
    tag = uuid.uuid4().hex[:10]
    key = f"pub-{tag}"
    source = create_running(own_api)
    run_ok(own_api, source["id"], "echo public-data > ~/pub.txt")
    snapshot = take_snapshot(own_api, source["id"], name="shared", metadata={key: "yes"})
    sid = snapshot["id"]

    # Private: the other key cannot see or use it.
    assert sid not in ids_of(own_other_api, LIST_PUBLIC, limit=5000)
    assert sid not in ids_of(own_api, LIST_PUBLIC, limit=5000)
    error(own_other_api.get(f"/v1/devboxes/disk_snapshots/{sid}/status"), 404)
    error(own_other_api.post("/v1/devboxes", json={"snapshot_id": sid}), 404)

    published = devboxd_cli(restartable_server, "snapshot", "publish", sid)
    assert published.returncode == 0, published.stderr
    assert published.stdout.strip() == f"{sid}: public"

    for http in (own_api, own_other_api):
        assert listing(http, LIST_PUBLIC, **{f"metadata[{key}]": "yes"})["snapshots"] == [snapshot]
        assert key in ok(http.get("/v1/devboxes/disk_snapshots/public/metadata/keys"))["keys"]
        assert ok(http.get(f"/v1/devboxes/disk_snapshots/public/metadata/keys/{key}/values"))["values"] == ["yes"]
        assert status_of(http, sid) == {"status": "complete", "snapshot": snapshot, "error_message": None}
    # Public does not make it the other key's own: not in its private list, not its to change.
    assert ids_of(own_other_api, **{f"metadata[{key}]": "yes"}) == []
    assert key not in ok(own_other_api.get("/v1/devboxes/disk_snapshots/metadata/keys"))["keys"]
    error(own_other_api.post(f"/v1/devboxes/disk_snapshots/{sid}", json={"name": "mine now"}), 404)
    error(own_other_api.post(f"/v1/devboxes/disk_snapshots/{sid}/delete"), 404)
    # The owner still lists it privately too.
    assert ids_of(own_api, **{f"metadata[{key}]": "yes"}) == [sid]

    borrowed = create_running(own_other_api, snapshot_id=sid)
    assert borrowed["snapshot_id"] == sid
    assert run_ok(own_other_api, borrowed["id"], "cat ~/pub.txt") == "public-data\n"
    error(own_api.get(f"/v1/devboxes/{borrowed['id']}"), 404)  # the devbox is the other key's

    unpublished = devboxd_cli(restartable_server, "snapshot", "unpublish", sid)
    assert unpublished.returncode == 0, unpublished.stderr
    assert unpublished.stdout.strip() == f"{sid}: private"
    assert sid not in ids_of(own_other_api, LIST_PUBLIC, limit=5000)
    assert sid not in ids_of(own_api, LIST_PUBLIC, limit=5000)
    assert key not in ok(own_other_api.get("/v1/devboxes/disk_snapshots/public/metadata/keys"))["keys"]
    error(own_other_api.get(f"/v1/devboxes/disk_snapshots/{sid}/status"), 404)
    error(own_other_api.post("/v1/devboxes", json={"snapshot_id": sid}), 404)
    # A devbox already made from it is not affected.
    assert run_ok(own_other_api, borrowed["id"], "cat ~/pub.txt") == "public-data\n"

    missing = devboxd_cli(restartable_server, "snapshot", "publish", UNKNOWN_SNAPSHOT)
    assert missing.returncode == 1
    assert UNKNOWN_SNAPSHOT in missing.stderr

    # The owner deletes it while the other key's devbox still runs on it: the image waits for that devbox.
    assert ok(own_api.post(f"/v1/devboxes/disk_snapshots/{sid}/delete")) == {}
    assert image_exists(docker_client, sid)
    assert ok(own_other_api.post(f"/v1/devboxes/{borrowed['id']}/shutdown"))["status"] == "shutdown"
    assert wait_image_gone(docker_client, sid), "the image stayed after its last devbox (another key's) ended"


# ----- the Runloop client --------------------------------------------------------------------------------------


def test_sdk_snapshot_list_update_and_delete(sdk: Runloop, sdk_tracker: Tracker) -> None:
    tag = uuid.uuid4().hex[:10]
    devbox = sdk.devboxes.create_and_await_running(name="sdk-snapshots")
    sdk_tracker.devboxes.append(devbox.id)
    sdk.devboxes.execute_and_await_completion(devbox.id, command="echo from-sdk > ~/sdk.txt")

    view = sdk.devboxes.snapshot_disk(
        devbox.id, name="sdk-sync", metadata={"run": tag, "kind": "sync"}, commit_message="via the client"
    )
    sdk_tracker.snapshots.append(view.id)
    assert isinstance(view, DevboxSnapshotView)
    assert (view.name, view.metadata, view.commit_message) == (
        "sdk-sync",
        {"run": tag, "kind": "sync"},
        "via the client",
    )
    assert view.source_devbox_id == devbox.id

    started = sdk.devboxes.snapshot_disk_async(
        devbox.id, name="sdk-async", metadata={"run": tag, "kind": "async", "key": f"k-{tag}"}
    )
    sdk_tracker.snapshots.append(started.id)
    done = sdk.devboxes.disk_snapshots.await_completed(started.id)
    assert done.status == "complete"
    assert done.snapshot is not None and done.snapshot.id == started.id and done.snapshot.name == "sdk-async"
    assert sdk.devboxes.disk_snapshots.query_status(view.id).status == "complete"

    page = sdk.devboxes.disk_snapshots.list(devbox_id=devbox.id, include_total_count=True)
    assert [s.id for s in page.snapshots] == [started.id, view.id]
    assert page.total_count == 2 and page.has_more is False
    # Any metadata key through extra_query; the client's own metadata_key / metadata_key_in name the key "key".
    by_kind = sdk.devboxes.disk_snapshots.list(extra_query={"metadata[run]": tag, "metadata[kind]": "sync"})
    assert [s.id for s in by_kind.snapshots] == [view.id]
    by_kind_in = sdk.devboxes.disk_snapshots.list(extra_query={"metadata[run]": tag, "metadata[kind][in]": "a,sync"})
    assert [s.id for s in by_kind_in.snapshots] == [view.id]
    assert [s.id for s in sdk.devboxes.disk_snapshots.list(metadata_key=f"k-{tag}").snapshots] == [started.id]
    in_list = sdk.devboxes.disk_snapshots.list(metadata_key_in=f"other,k-{tag}")
    assert [s.id for s in in_list.snapshots] == [started.id]
    # Auto-pagination walks every page.
    assert [s.id for s in sdk.devboxes.disk_snapshots.list(devbox_id=devbox.id, limit=1)] == [started.id, view.id]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        legacy = sdk.devboxes.list_disk_snapshots(devbox_id=devbox.id)
    assert [s.id for s in legacy] == [started.id, view.id]

    updated = sdk.devboxes.disk_snapshots.update(view.id, name="renamed", metadata={"run": tag})
    assert (updated.name, updated.metadata, updated.commit_message) == ("renamed", {"run": tag}, None)

    child = sdk.devboxes.create_and_await_running(snapshot_id=view.id)
    sdk_tracker.devboxes.append(child.id)
    assert child.snapshot_id == view.id
    assert sdk.devboxes.execute_and_await_completion(child.id, command="cat ~/sdk.txt").stdout == "from-sdk\n"

    assert sdk.devboxes.disk_snapshots.delete(started.id) == {}
    assert sdk.devboxes.disk_snapshots.query_status(started.id).status == "deleted"
    with pytest.raises(NotFoundError):
        sdk.devboxes.disk_snapshots.query_status(UNKNOWN_SNAPSHOT)
    with pytest.raises(NotFoundError):
        sdk.devboxes.create(snapshot_id=started.id)
    with pytest.raises(BadRequestError):
        sdk.devboxes.snapshot_disk(devbox.id, commit_message="m" * 1001)


def test_sdk_shutdown_conflict_then_force_fails_the_snapshot(sdk: Runloop, sdk_tracker: Tracker) -> None:
    devbox = sdk.devboxes.create_and_await_running()
    sdk_tracker.devboxes.append(devbox.id)
    sdk.devboxes.execute_and_await_completion(devbox.id, command=BIG_FILE_COMMAND)
    started = sdk.devboxes.snapshot_disk_async(devbox.id, name="doomed")
    sdk_tracker.snapshots.append(started.id)
    try:
        sdk.devboxes.shutdown(devbox.id)
    except ConflictError as exc:
        assert "force" in str(exc)
    else:
        assert sdk.devboxes.disk_snapshots.query_status(started.id).status == "complete"
        pytest.skip("the 300 MB commit finished before the shutdown")
    ended = sdk.devboxes.shutdown(devbox.id, force="true")
    assert ended.status == "shutdown"
    status = sdk.devboxes.disk_snapshots.query_status(started.id)
    if status.status == "complete":
        pytest.skip("the commit completed while the forced shutdown ran")
    assert status.status == "error" and status.error_message
    with pytest.raises(RunloopError, match="failed"):
        sdk.devboxes.disk_snapshots.await_completed(started.id)


def test_object_api_snapshot_and_devboxes_from_it(server: ServerProcess, sdk_tracker: Tracker) -> None:
    runloop = RunloopSDK(bearer_token=API_KEY, base_url=server.base_url, max_retries=0)
    runloop.api._strict_response_validation = True
    tag = uuid.uuid4().hex[:10]
    try:
        devbox = runloop.devbox.create(name="object-snapshots")
        sdk_tracker.devboxes.append(devbox.id)
        devbox.cmd.exec("echo object > ~/obj.txt")
        data = os.urandom(256 * 1024)
        assert devbox.file.upload(path="obj.bin", file=("obj.bin", data)) == {}

        snap = devbox.snapshot_disk(name="object", metadata={"run": tag})
        sdk_tracker.snapshots.append(snap.id)
        info = snap.get_info()
        assert info.status == "complete"
        assert info.snapshot is not None and info.snapshot.name == "object" and info.snapshot.metadata == {"run": tag}

        child = snap.create_devbox(name="from-snapshot")
        sdk_tracker.devboxes.append(child.id)
        assert child.get_info().snapshot_id == snap.id
        assert child.cmd.exec("cat ~/obj.txt").stdout() == "object\n"
        assert child.file.download(path="obj.bin") == data

        sibling = runloop.devbox.create_from_snapshot(snap.id, name="also-from-snapshot")
        sdk_tracker.devboxes.append(sibling.id)
        assert sibling.get_info().snapshot_id == snap.id
        assert sibling.cmd.exec("cat ~/obj.txt").stdout() == "object\n"

        later = devbox.snapshot_disk_async(name="later")
        sdk_tracker.snapshots.append(later.id)
        assert later.await_completed().status == "complete"
        assert [s.id for s in runloop.snapshot.list(devbox_id=devbox.id)] == [later.id, snap.id]
        assert runloop.snapshot.from_id(snap.id).get_info().status == "complete"

        renamed = snap.update(name="renamed", metadata={"run": tag, "v": "2"})
        assert (renamed.name, renamed.metadata) == ("renamed", {"run": tag, "v": "2"})
        assert later.delete() == {}
        assert later.get_info().status == "deleted"
        assert child.shutdown().status == "shutdown"
    finally:
        runloop.close()


def test_async_client_snapshot_and_list(server: ServerProcess, sdk_tracker: Tracker) -> None:
    async def scenario() -> None:
        client = AsyncRunloop(
            base_url=server.base_url, bearer_token=API_KEY, _strict_response_validation=True, max_retries=0
        )
        try:
            devbox = await client.devboxes.create_and_await_running(name="async-snapshots")
            sdk_tracker.devboxes.append(devbox.id)
            first = await client.devboxes.snapshot_disk_async(devbox.id, name="a1")
            sdk_tracker.snapshots.append(first.id)
            done = await client.devboxes.disk_snapshots.await_completed(first.id)
            assert done.status == "complete"
            second = await client.devboxes.snapshot_disk(devbox.id, name="a2")
            sdk_tracker.snapshots.append(second.id)
            seen = [s.id async for s in client.devboxes.disk_snapshots.list(devbox_id=devbox.id, limit=1)]
            assert seen == [second.id, first.id]
            child = await client.devboxes.create_and_await_running(snapshot_id=first.id)
            sdk_tracker.devboxes.append(child.id)
            assert child.snapshot_id == first.id
        finally:
            await client.close()

    asyncio.run(scenario())


# ----- server restarts (last: they restart this module's server) ---------------------------------------------


def test_snapshots_survive_a_graceful_restart(restartable_server, own_api, docker_client):
    source = create_running(own_api)
    run_ok(own_api, source["id"], "echo durable > ~/d.txt")
    snapshot = take_snapshot(own_api, source["id"], name="durable", metadata={"r": "1"})
    assert ok(own_api.post(f"/v1/devboxes/{source['id']}/shutdown"))["status"] == "shutdown"

    restartable_server.restart()
    assert status_of(own_api, snapshot["id"]) == {"status": "complete", "snapshot": snapshot, "error_message": None}
    assert listing(own_api, devbox_id=source["id"])["snapshots"] == [snapshot]
    assert image_exists(docker_client, snapshot["id"])
    child = create_running(own_api, snapshot_id=snapshot["id"])
    assert run_ok(own_api, child["id"], "cat ~/d.txt") == "durable\n"

    restartable_server.restart(kill=True)
    assert status_of(own_api, snapshot["id"])["status"] == "complete"
    assert run_ok(own_api, child["id"], "cat ~/d.txt") == "durable\n"


def test_snapshot_in_progress_when_the_server_is_killed_ends_as_error(restartable_server, own_api, docker_client):
    devbox = create_running(own_api)
    snapshot_id = start_big_snapshot(own_api, devbox["id"])
    if status_of(own_api, snapshot_id)["status"] != "in_progress":
        skip_because_complete(own_api, snapshot_id, "the server was killed")
    restartable_server.restart(kill=True)

    ended = status_of(own_api, snapshot_id)
    assert ended["status"] == "error", ended
    assert ended["snapshot"] is None
    assert "restart" in ended["error_message"]
    assert snapshot_id in ids_of(own_api, devbox_id=devbox["id"])  # an error is not a deletion
    error(own_api.post("/v1/devboxes", json={"snapshot_id": snapshot_id}), 400)

    # The engine finishes (and un-pauses) the commit on its own; the devbox then carries on.
    container = docker_client.containers.get(f"devbox-{devbox['id']}")
    deadline = time.monotonic() + 120
    while container.attrs["State"].get("Paused") and time.monotonic() < deadline:
        time.sleep(0.2)
        container.reload()
    assert not container.attrs["State"].get("Paused")
    assert ok(own_api.get(f"/v1/devboxes/{devbox['id']}"))["status"] == "running"
    assert run_ok(own_api, devbox["id"], "stat -c %s ~/big.bin") == "300000000\n"

    # Deleting the failed snapshot takes whatever image the interrupted commit left behind.
    assert ok(own_api.post(f"/v1/devboxes/disk_snapshots/{snapshot_id}/delete")) == {}
    assert status_of(own_api, snapshot_id)["status"] == "deleted"
    assert wait_image_gone(docker_client, snapshot_id), "the interrupted commit's image is still there"
    # A fresh snapshot of the same devbox works after all that.
    assert take_snapshot(own_api, devbox["id"])["size_bytes"] >= 300_000_000


def test_a_foreign_container_from_a_snapshot_image_survives_a_restart(restartable_server, own_api, docker_client):
    source = create_running(own_api)
    snapshot = take_snapshot(own_api, source["id"])
    assert ok(own_api.post(f"/v1/devboxes/{source['id']}/shutdown"))["status"] == "shutdown"
    foreign = docker_client.containers.run(image_of(snapshot["id"]), ["sleep", "infinity"], detach=True)
    try:
        restartable_server.restart()
        try:
            docker_client.containers.get(foreign.id)
        except docker.errors.NotFound:
            pytest.fail("the server removed a container it did not create")
    finally:
        with contextlib.suppress(docker.errors.APIError):
            foreign.remove(force=True)
