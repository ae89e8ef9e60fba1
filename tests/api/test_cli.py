"""`devboxd` operator commands against a running server's database and Docker engine: API keys made,
used and revoked; devboxes of every tenant listed, shut down (the server notices) and their logs shown;
the default image's tag and build; tables for people, --json for scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import docker
import httpx
import pytest

from tests.conftest import API_KEY, OTHER_API_KEY, REPO, ServerProcess, wait_for


@pytest.fixture(scope="module")
def served(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory()


def devboxd(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEVBOX_DATA_DIR": str(server.data_dir), "DEVBOX_INSTANCE_ID": server.instance}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def client(server: ServerProcess, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def running(http: httpx.Client, **body: Any) -> str:
    response = http.post("/v1/devboxes", json=body)
    assert response.status_code == 200, response.text
    devbox_id: str = response.json()["id"]
    assert wait_for(http, devbox_id, ["running"])["status"] == "running"
    return devbox_id


def test_keys_create_use_list_and_revoke(served: ServerProcess) -> None:
    made = devboxd(served, "keys", "create", "--name", "ci-robot", "--json")
    assert made.returncode == 0, made.stderr
    [row] = json.loads(made.stdout)
    key, tenant = row["api_key"], row["tenant"]
    with client(served, key) as http:
        assert http.get("/v1/devboxes").status_code == 200  # a new tenant, no restart needed
        assert http.get("/v1/devboxes").json()["devboxes"] == []
    listed = devboxd(served, "keys", "list")
    assert listed.returncode == 0
    assert listed.stdout.splitlines()[0].split() == ["NAME", "TENANT", "CREATED", "REVOKED"]
    assert "ci-robot" in listed.stdout and tenant in listed.stdout
    assert key not in listed.stdout + made.stderr  # the key is shown once, at create
    revoked = devboxd(served, "keys", "revoke", "ci-robot")
    assert revoked.returncode == 0, revoked.stderr
    deadline = time.monotonic() + 30
    with client(served, key) as http:
        while http.get("/v1/devboxes").status_code != 401:
            assert time.monotonic() < deadline, "a revoked key kept working"
            time.sleep(0.5)
    again = devboxd(served, "keys", "revoke", "ci-robot")
    assert again.returncode == 1 and "no active key" in again.stderr


def test_devboxes_list_across_tenants_logs_and_shutdown(served: ServerProcess) -> None:
    docker_client = docker.from_env()
    with client(served, API_KEY) as mine, client(served, OTHER_API_KEY) as theirs:
        first = running(mine, name="cli-first")
        second = running(theirs, name="cli-second")
        executed = mine.post(f"/v1/devboxes/{first}/execute_sync", json={"command": "echo from-cli-test"})
        assert executed.status_code == 200

        listed = devboxd(served, "devboxes", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        rows = {row["id"]: row for row in json.loads(listed.stdout)}
        assert rows[first]["status"] == rows[second]["status"] == "running"
        assert rows[first]["tenant"] != rows[second]["tenant"]
        table = devboxd(served, "devboxes", "list", "--status", "running")
        assert table.stdout.splitlines()[0].split()[:3] == ["ID", "TENANT", "STATUS"]
        assert first in table.stdout and "cli-second" in table.stdout

        logs = devboxd(served, "devboxes", "logs", first)
        assert logs.returncode == 0
        assert "$ echo from-cli-test (exit 0)" in logs.stdout
        logs_json = json.loads(devboxd(served, "devboxes", "logs", first, "--json").stdout)
        assert any(entry.get("cmd") == "echo from-cli-test" for entry in logs_json)

        shut = devboxd(served, "devboxes", "shutdown", second)
        assert shut.returncode == 0, shut.stderr
        assert "shutdown" in shut.stdout
        # The server learns of it from the engine: its view, and what it allows, follow.
        view = wait_for(theirs, second, ["shutdown"])
        assert view["shutdown_reason"] == "api_shutdown"
        refused = theirs.post(f"/v1/devboxes/{second}/execute_sync", json={"command": "true"})
        assert 400 <= refused.status_code < 500, refused.text
        assert not docker_client.containers.list(all=True, filters={"name": f"devbox-{second}"})
        assert "shut down by an operator" in devboxd(served, "devboxes", "logs", second).stdout
        # The other tenant's devbox is untouched.
        assert mine.get(f"/v1/devboxes/{first}").json()["status"] == "running"
        mine.post(f"/v1/devboxes/{first}/shutdown")

    twice = devboxd(served, "devboxes", "shutdown", second)
    assert twice.returncode == 1 and "already shutdown" in twice.stderr
    unknown = devboxd(served, "devboxes", "logs", "dbx_nope")
    assert unknown.returncode == 1 and "not found" in unknown.stderr
    docker_client.close()


def test_image_tag_and_build(served: ServerProcess, default_image: str) -> None:
    tag = devboxd(served, "image", "tag", "--json")
    assert json.loads(tag.stdout) == {"image": default_image}
    built = devboxd(served, "image", "build")  # already on this engine: nothing to build
    assert built.returncode == 0, built.stderr
    assert built.stdout.strip() == default_image
