"""The official TypeScript client (@runloop/api-client, pinned in tests/ts/package.json) drives a real server on
its default Node transport, HTTP/2 cleartext with prior knowledge: create, exec, files, suspend/resume and a
snapshot restored into a new devbox (tests/ts/smoke.mjs). TypeScript users must be able to switch without
changing code, and their transport is not the one the Python client uses."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Callable

import pytest

from tests.conftest import API_KEY, REPO, ServerProcess

TS_DIR = REPO / "tests" / "ts"
CLIENT_PACKAGE = "@runloop/api-client"


def installed_client_version() -> str | None:
    manifest = TS_DIR / "node_modules" / CLIENT_PACKAGE / "package.json"
    if not manifest.exists():
        return None
    version: str = json.loads(manifest.read_text())["version"]
    return version


def ensure_node_modules() -> None:
    """`npm ci` from the committed lock file when the pinned client is not installed yet (or another version
    is). A file lock keeps two test runs on this checkout from installing over each other."""
    pinned: str = json.loads((TS_DIR / "package.json").read_text())["dependencies"][CLIENT_PACKAGE]
    with (TS_DIR / ".npm-install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed_client_version() == pinned:
            return
        result = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=TS_DIR, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, f"npm ci failed:\n{result.stdout}\n{result.stderr}"
    assert installed_client_version() == pinned


@pytest.fixture(scope="module")
def ts_server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory()


@pytest.mark.docker
def test_typescript_client_drives_devbox_lifecycle(ts_server: ServerProcess) -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed: the TypeScript client cannot run")
    ensure_node_modules()
    env = {**os.environ, "DEVBOX_URL": ts_server.base_url, "DEVBOX_KEY": API_KEY}
    result = subprocess.run(
        ["node", str(TS_DIR / "smoke.mjs")], cwd=TS_DIR, env=env, capture_output=True, text=True, timeout=280
    )
    last_line = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "{}"
    failure = f"node smoke.mjs exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
    failure += f"devboxd log:\n{ts_server.log_tail()}"
    assert result.returncode == 0, failure
    report = json.loads(last_line)
    assert report["ok"] is True, failure
    assert report["steps"] == [
        "create and await running",
        "exec (object API)",
        "executeSync",
        "executeAndAwaitCompletion",
        "write and read a file",
        "upload and download a binary file",
        "suspend and await suspended",
        "resume and await running",
        "snapshot the disk (sync)",
        "create a devbox from the snapshot",
        "shut down",
    ]
    # The default transport really was HTTP/2. Goaways are not failures: the server closes sessions idle for
    # longer than its keep-alive timeout, and the client's pool reconnects.
    assert report["transport"]["h2Streams"] > 0, report
