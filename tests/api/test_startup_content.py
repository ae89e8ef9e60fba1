"""What a devbox starts with: file mounts, code mounts (cloned from a real git daemon) and secrets."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.conftest import API_KEY, ServerProcess, wait_for

SECRET_VALUE = "s3cr3t-value-never-shown"
TOKEN = "tok-never-logged-123"


def run(http: httpx.Client, devbox_id: str, command: str) -> dict[str, Any]:
    response = http.post(f"/v1/devboxes/{devbox_id}/execute_sync", json={"command": command})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_file_mounts_are_written_before_launch_commands(http: httpx.Client, devbox_factory) -> None:
    devbox = devbox_factory(
        file_mounts={"conf/app.ini": "[main]\nname = héllo\n", "/tmp/abs.txt": "absolute"},
        mounts=[{"type": "file_mount", "target": "notes/readme.md", "content": "# notes"}],
        launch_parameters={"launch_commands": ["cat conf/app.ini /tmp/abs.txt notes/readme.md > seen.txt"]},
    )
    assert devbox["status"] == "running", devbox
    assert run(http, devbox["id"], "cat seen.txt")["stdout"] == "[main]\nname = héllo\nabsolute# notes"
    owners = run(http, devbox["id"], "stat -c %U conf/app.ini /tmp/abs.txt notes/readme.md")["stdout"].split()
    assert owners == ["user", "user", "user"]


def test_bad_file_mount_path_is_400(http: httpx.Client) -> None:
    response = http.post("/v1/devboxes", json={"file_mounts": {"dir/": "x"}})
    assert response.status_code == 400 and "must name a file" in response.json()["detail"]
    response = http.post("/v1/devboxes", json={"mounts": [{"type": "file_mount", "target": "a"}]})
    assert response.status_code == 400 and "mounts[0]" in response.json()["detail"]


@pytest.fixture(scope="module")
def secrets_server(
    server_factory: Callable[..., ServerProcess], tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    secrets_file = tmp_path_factory.mktemp("secrets") / "secrets.json"
    secrets_file.write_text(json.dumps({"FROM_FILE": "file-value"}))
    return server_factory(
        DEVBOX_SECRETS=json.dumps({"DB_PASSWORD": SECRET_VALUE}), DEVBOX_SECRETS_FILE=str(secrets_file)
    )


def test_secrets_reach_commands_but_no_view_or_log(secrets_server: ServerProcess) -> None:
    with httpx.Client(
        base_url=secrets_server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60
    ) as http:
        created = http.post(
            "/v1/devboxes",
            json={
                "secrets": {"DB_PASS": "DB_PASSWORD", "OTHER": "FROM_FILE"},
                "launch_parameters": {"launch_commands": ["echo setup sees ${#DB_PASS} chars"]},
            },
        )
        assert created.status_code == 200, created.text
        devbox_id = created.json()["id"]
        try:
            assert wait_for(http, devbox_id, ["running", "failure"])["status"] == "running"
            assert run(http, devbox_id, 'echo "$DB_PASS|$OTHER"')["stdout"] == f"{SECRET_VALUE}|file-value\n"
            shown = http.get(f"/v1/devboxes/{devbox_id}").text + http.get("/v1/devboxes").text
            shown += http.get(f"/v1/devboxes/{devbox_id}/logs").text
            assert SECRET_VALUE not in shown and "file-value" not in shown
            assert "DB_PASSWORD" not in shown
            unknown = http.post("/v1/devboxes", json={"secrets": {"X": "NOPE"}})
            assert unknown.status_code == 400 and "NOPE" in unknown.json()["detail"]
            clash = http.post(
                "/v1/devboxes", json={"secrets": {"X": "DB_PASSWORD"}, "environment_variables": {"X": "1"}}
            )
            assert clash.status_code == 400
        finally:
            http.post(f"/v1/devboxes/{devbox_id}/shutdown")
        assert SECRET_VALUE not in (secrets_server.data_dir / "devboxd.sqlite3").read_bytes().decode(errors="replace")


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        env={
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
            "HOME": str(cwd),
            "PATH": "/usr/bin:/bin",
        },
    )


@pytest.fixture(scope="module")
def git_daemon(default_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A bare repo acme/widget.git (branch main, branch feature) served by `git daemon` in a container of
    ours; yields the git base URL."""
    root = tmp_path_factory.mktemp("git")
    bare = root / "srv" / "acme" / "widget.git"
    bare.parent.mkdir(parents=True)
    _git("init", "--bare", "-b", "main", str(bare), cwd=root)
    work = root / "work"
    _git("clone", str(bare), str(work), cwd=root)
    (work / "README.md").write_text("main branch\n")
    _git("add", ".", cwd=work)
    _git("commit", "-m", "main", cwd=work)
    _git("push", "origin", "HEAD:main", cwd=work)
    _git("checkout", "-b", "feature", cwd=work)
    (work / "FEATURE.txt").write_text("feature branch\n")
    _git("add", ".", cwd=work)
    _git("commit", "-m", "feature", cwd=work)
    _git("push", "origin", "feature", cwd=work)

    client = docker.from_env()
    # On the host's network: devboxes sit on their own network with no route to other containers, but
    # they reach the host (as they would reach a git server out in the world).
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        port = probe.getsockname()[1]
    container = client.containers.run(
        default_image,
        ["git", "daemon", "--reuseaddr", "--export-all", f"--port={port}", "--base-path=/srv", "/srv"],
        detach=True,
        network_mode="host",
        volumes={str(root / "srv"): {"bind": "/srv", "mode": "ro"}},
        name=f"devboxd-test-git-{uuid.uuid4().hex[:8]}",
        labels={"dev.devboxd.test": "git-daemon"},
    )
    try:
        host = client.api.inspect_network("bridge")["IPAM"]["Config"][0]["Gateway"]  # the host, from containers
        deadline = time.monotonic() + 30
        while (
            b"refs/heads/main"
            not in subprocess.run(
                ["git", "ls-remote", f"git://127.0.0.1:{port}/acme/widget.git"], capture_output=True, check=False
            ).stdout
        ):
            assert time.monotonic() < deadline, "git daemon did not come up"
            time.sleep(0.2)
        yield f"git://{host}:{port}"
    finally:
        container.remove(force=True)
        client.close()


@pytest.fixture(scope="module")
def git_server(server_factory: Callable[..., ServerProcess], git_daemon: str) -> ServerProcess:
    return server_factory(DEVBOX_GIT_BASE_URL=git_daemon)


@pytest.fixture
def git_http(git_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=git_server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as http:
        yield http


def test_code_mount_clones_checks_out_and_installs(git_http: httpx.Client) -> None:
    created = git_http.post(
        "/v1/devboxes",
        json={
            "code_mounts": [
                {
                    "repo_owner": "acme",
                    "repo_name": "widget",
                    "git_ref": "feature",
                    "token": TOKEN,
                    "install_command": "echo installed > .installed",
                }
            ],
            "launch_parameters": {"launch_commands": ["test -f widget/FEATURE.txt"]},
        },
    )
    assert created.status_code == 200, created.text
    devbox_id = created.json()["id"]
    try:
        devbox = wait_for(git_http, devbox_id, ["running", "failure"])
        logs = git_http.get(f"/v1/devboxes/{devbox_id}/logs").text
        assert devbox["status"] == "running", logs
        out = run(git_http, devbox_id, "cd widget && git rev-parse --abbrev-ref HEAD && cat .installed && stat -c %U .")
        assert out["stdout"] == "feature\ninstalled\nuser\n"
        assert "git clone git://" in logs and "acme/widget.git" in logs
        assert TOKEN not in logs and TOKEN not in git_http.get(f"/v1/devboxes/{devbox_id}").text
    finally:
        git_http.post(f"/v1/devboxes/{devbox_id}/shutdown")


def test_code_mount_via_mounts_defaults_to_the_default_branch(git_http: httpx.Client) -> None:
    created = git_http.post(
        "/v1/devboxes", json={"mounts": [{"type": "code_mount", "repo_owner": "acme", "repo_name": "widget"}]}
    )
    devbox_id = created.json()["id"]
    try:
        assert wait_for(git_http, devbox_id, ["running", "failure"])["status"] == "running"
        assert run(git_http, devbox_id, "cat widget/README.md; ls widget")["stdout"] == "main branch\nREADME.md\n"
    finally:
        git_http.post(f"/v1/devboxes/{devbox_id}/shutdown")


def test_missing_repo_fails_the_devbox_with_a_log(git_http: httpx.Client) -> None:
    created = git_http.post("/v1/devboxes", json={"code_mounts": [{"repo_owner": "acme", "repo_name": "nope"}]})
    devbox_id = created.json()["id"]
    try:
        devbox = wait_for(git_http, devbox_id, ["running", "failure"])
        assert (devbox["status"], devbox["failure_reason"]) == ("failure", "execution_failed")
        messages = [e["message"] for e in git_http.get(f"/v1/devboxes/{devbox_id}/logs").json()["logs"]]
        assert any("acme/nope: git clone failed" in (m or "") for m in messages)
    finally:
        git_http.post(f"/v1/devboxes/{devbox_id}/shutdown")


@pytest.mark.parametrize(
    "mount",
    [{"repo_owner": "../etc", "repo_name": "x"}, {"repo_owner": "a", "repo_name": "b", "git_ref": "--upload-pack=x"}],
)
def test_unsafe_code_mount_fields_are_400(http: httpx.Client, mount: dict[str, str]) -> None:
    response = http.post("/v1/devboxes", json={"code_mounts": [mount]})
    assert response.status_code == 400, response.text
