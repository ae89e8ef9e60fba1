"""Tenant isolation: every API key is a tenant, and another tenant's devboxes, executions, files, logs,
tunnels, PTY sessions and private snapshots answer 404 (never 403, so ids do not leak), on every
devbox-scoped route of the spec plus the server's own extras; lists never show them; nothing another
tenant sends changes them. Public snapshots are the one exception. No key or a wrong key: 401 with a JSON
body, on every one of those routes.

The route list is driven by openapi.yaml: a new devbox-scoped route that takes a body must be given one
in REQUEST_BODIES, or test_every_spec_route_with_a_body_has_one fails. Unknown ids are covered here too,
for every route (tests/api/test_wait_and_errors.py checks a hand-picked subset)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import API_KEY, OTHER_API_KEY, REPO, ServerProcess, wait_for

pytestmark = pytest.mark.docker

SPEC = yaml.safe_load((REPO / "openapi.yaml").read_text())
# Devbox-scoped routes this server has beyond the spec: the clients' output streams, the API-key form of
# the PTY, and the token endpoints that answer "not supported" once the devbox is found.
EXTRA_ROUTES = [
    ("GET", "/v1/devboxes/{devbox_id}/executions/{execution_id}/stream_stdout_updates"),
    ("GET", "/v1/devboxes/{devbox_id}/executions/{execution_id}/stream_stderr_updates"),
    ("GET", "/v1/devboxes/{id}/pty/{session_name}"),
    ("POST", "/v1/devboxes/{id}/pty/{session_name}/control"),
    ("POST", "/v1/devboxes/{id}/create_gateway_token"),
    ("POST", "/v1/devboxes/{id}/create_mcp_token"),
]
UPLOAD = "multipart"
# What the other tenant sends: valid requests (so the answer is the lookup's, not a 422) that would harm
# the owner if they went through.
REQUEST_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/devboxes/disk_snapshots/{id}"): {"name": "stolen", "metadata": {"owner": "b"}},
    ("POST", "/v1/devboxes/{devbox_id}/executions/{execution_id}/kill"): {"kill_process_group": True},
    ("POST", "/v1/devboxes/{devbox_id}/executions/{execution_id}/send_std_in"): {"text": "pwned\n"},
    ("POST", "/v1/devboxes/{devbox_id}/executions/{execution_id}/wait_for_status"): {
        "statuses": ["completed"],
        "timeout_seconds": 1,
    },
    ("POST", "/v1/devboxes/{id}"): {"name": "stolen", "metadata": {"owner": "b"}},
    ("POST", "/v1/devboxes/{id}/download_file"): {"path": "secret.txt"},
    ("POST", "/v1/devboxes/{id}/enable_tunnel"): {"auth_mode": "open"},
    ("POST", "/v1/devboxes/{id}/execute"): {"command_id": "0191f3c2-8a8e-7b4e-9a5e-2d7f4c1b0a11", "command": "rm -f *"},
    ("POST", "/v1/devboxes/{id}/execute_async"): {"command": "echo pwned > secret.txt"},
    ("POST", "/v1/devboxes/{id}/execute_sync"): {"command": "echo pwned > secret.txt"},
    ("POST", "/v1/devboxes/{id}/read_file_contents"): {"file_path": "secret.txt"},
    ("POST", "/v1/devboxes/{id}/snapshot_disk"): {"name": "stolen"},
    ("POST", "/v1/devboxes/{id}/snapshot_disk_async"): {"name": "stolen"},
    ("POST", "/v1/devboxes/{id}/upload_file"): UPLOAD,
    ("POST", "/v1/devboxes/{id}/wait_for_status"): {"statuses": ["running"], "timeout_seconds": 1},
    ("POST", "/v1/devboxes/{id}/write_file_contents"): {"file_path": "secret.txt", "contents": "pwned"},
    ("POST", "/v1/devboxes/{id}/pty/{session_name}/control"): {"action": "close"},
}
SECRET = "tenant-a only\n"


def spec_routes() -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, operations in SPEC["paths"].items()
        if "{id}" in path or "{devbox_id}" in path
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    ]


ROUTES = spec_routes() + EXTRA_ROUTES
ROUTE_IDS = [f"{method} {path}" for method, path in ROUTES]
EXECUTION_ROUTES = [(m, p) for m, p in ROUTES if "{execution_id}" in p]


@dataclass
class World:
    """What tenant A owns (the victim) and what tenant B (the intruder) owns, on one private server."""

    server: ServerProcess
    owner: httpx.Client
    intruder: httpx.Client
    devbox_id: str
    execution_id: str
    finished_execution_id: str
    session_name: str
    tunnel_key: str
    private_snapshot_id: str
    public_snapshot_id: str
    metadata_key: str
    intruder_devbox_id: str

    def url(self, path: str, unknown: bool = False) -> str:
        """The route with A's ids filled in (or ids that exist for nobody)."""
        snapshot = "snp_0000000000doesnotexist00" if unknown else self.private_snapshot_id
        devbox = "dbx_0000000000doesnotexist00" if unknown else self.devbox_id
        if "/disk_snapshots/" in path:
            return path.format(id=snapshot)
        return path.format(id=devbox, devbox_id=devbox, execution_id=self.execution_id, session_name=self.session_name)


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json()


def assert_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.text}"
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert body["error"] and body["detail"]


def send(client: httpx.Client, method: str, url: str, body: Any) -> httpx.Response:
    """One request, read in full unless it turned into a stream (a leak on an SSE route must not hang)."""
    if body == UPLOAD:
        return client.post(url, data={"path": "secret.txt"}, files={"file": ("secret.txt", b"pwned")})
    with client.stream(method, url, json=body, timeout=30) as response:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return response  # the status is the evidence; the body would never end
        response.read()
        return response


def devboxd_cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """The operator's CLI with the server's environment, so it opens the same database."""
    env = {**os.environ, "DEVBOX_DATA_DIR": str(server.data_dir), **server.env_extra}
    installed = Path(sys.executable).with_name("devboxd")
    command = [str(installed)] if installed.exists() else [sys.executable, "-m", "app.cli"]
    return subprocess.run([*command, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def client(server: ServerProcess, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def create_running(http: httpx.Client, **body: Any) -> str:
    devbox = ok(http.post("/v1/devboxes", json=body))
    assert wait_for(http, devbox["id"], ["running", "failure", "shutdown"], seconds=120)["status"] == "running"
    return str(devbox["id"])


@pytest.fixture(scope="module")
def world(server_factory: Any) -> Iterator[World]:
    """A private server (lists and published snapshots stay this module's own)."""
    server = server_factory()
    with client(server, API_KEY) as owner, client(server, OTHER_API_KEY) as intruder:
        metadata_key = f"tenant-{uuid.uuid4().hex[:8]}"
        devbox_id = create_running(owner, name="tenant-a", metadata={metadata_key: "a"})
        ok(
            owner.post(
                f"/v1/devboxes/{devbox_id}/write_file_contents", json={"file_path": "secret.txt", "contents": SECRET}
            )
        )
        finished = ok(owner.post(f"/v1/devboxes/{devbox_id}/execute_async", json={"command": "echo done"}))
        ok(
            owner.post(
                f"/v1/devboxes/{devbox_id}/executions/{finished['execution_id']}/wait_for_status",
                json={"statuses": ["completed"], "timeout_seconds": 30},
            )
        )
        running = ok(
            owner.post(f"/v1/devboxes/{devbox_id}/execute_async", json={"command": "cat", "attach_stdin": True})
        )
        tunnel = ok(owner.post(f"/v1/devboxes/{devbox_id}/enable_tunnel", json={"auth_mode": "open"}))
        session_name = f"a-{uuid.uuid4().hex[:8]}"
        assert ok(owner.get(f"/v1/devboxes/{devbox_id}/pty/{session_name}"))["created"] is True
        private = ok(owner.post(f"/v1/devboxes/{devbox_id}/snapshot_disk", json={"name": "private-a"}))
        public = ok(owner.post(f"/v1/devboxes/{devbox_id}/snapshot_disk", json={"name": "public-a"}))
        published = devboxd_cli(server, "snapshot", "publish", public["id"])
        assert published.returncode == 0, published.stderr
        intruder_devbox_id = create_running(intruder, name="tenant-b")
        world = World(
            server=server,
            owner=owner,
            intruder=intruder,
            devbox_id=devbox_id,
            execution_id=running["execution_id"],
            finished_execution_id=finished["execution_id"],
            session_name=session_name,
            tunnel_key=tunnel["tunnel_key"],
            private_snapshot_id=private["id"],
            public_snapshot_id=public["id"],
            metadata_key=metadata_key,
            intruder_devbox_id=intruder_devbox_id,
        )
        try:
            yield world
        finally:
            for http, devbox in ((owner, devbox_id), (intruder, intruder_devbox_id)):
                http.post(f"/v1/devboxes/{devbox}/shutdown")
            for http in (owner, intruder):
                for listed in http.get("/v1/devboxes", params={"status": "running"}).json()["devboxes"]:
                    http.post(f"/v1/devboxes/{listed['id']}/shutdown")
            for snapshot in (private["id"], public["id"]):
                owner.post(f"/v1/devboxes/disk_snapshots/{snapshot}/delete")


# ----- the route table ---------------------------------------------------------------------------------------


def test_every_spec_route_with_a_body_has_one() -> None:
    for method, path in spec_routes():
        if SPEC["paths"][path][method.lower()].get("requestBody"):
            assert (method, path) in REQUEST_BODIES, f"give {method} {path} a request body in REQUEST_BODIES"
    assert len(spec_routes()) >= 30, "the spec lost its devbox routes?"


# ----- 404 for another tenant's things, and for things that do not exist --------------------------------------


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=ROUTE_IDS)
def test_other_tenant_gets_404(world: World, method: str, path: str) -> None:
    response = send(world.intruder, method, world.url(path), REQUEST_BODIES.get((method, path)))
    assert_error(response, 404)
    assert response.headers.get("x-should-retry") == "false"
    mine = ok(world.owner.get(f"/v1/devboxes/{world.devbox_id}"))
    assert (mine["status"], mine["name"], mine["metadata"]) == ("running", "tenant-a", {world.metadata_key: "a"})


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=ROUTE_IDS)
def test_unknown_ids_get_404(world: World, method: str, path: str) -> None:
    response = send(world.owner, method, world.url(path, unknown=True), REQUEST_BODIES.get((method, path)))
    assert_error(response, 404)


@pytest.mark.parametrize(("method", "path"), EXECUTION_ROUTES, ids=[f"{m} {p}" for m, p in EXECUTION_ROUTES])
def test_other_tenants_execution_on_own_devbox_is_404(world: World, method: str, path: str) -> None:
    """B's own devbox id with A's execution id: executions are found per devbox and per tenant."""
    for execution_id in (world.execution_id, world.finished_execution_id):
        url = path.format(devbox_id=world.intruder_devbox_id, execution_id=execution_id)
        response = send(world.intruder, method, url, REQUEST_BODIES.get((method, path)))
        assert_error(response, 404)


def test_command_id_is_per_devbox(world: World) -> None:
    """The same command_id on B's devbox starts B's own execution, never returns A's."""
    command_id = str(uuid.uuid4())
    body = {"command_id": command_id, "command": "echo from-a"}
    mine = ok(world.owner.post(f"/v1/devboxes/{world.devbox_id}/execute", json=body))
    theirs = ok(
        world.intruder.post(
            f"/v1/devboxes/{world.intruder_devbox_id}/execute", json={"command_id": command_id, "command": "echo b"}
        )
    )
    assert theirs["execution_id"] != mine["execution_id"]
    assert theirs["devbox_id"] == world.intruder_devbox_id


# ----- 401 -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key", f"Basic {API_KEY}", API_KEY])
@pytest.mark.parametrize(("method", "path"), ROUTES, ids=ROUTE_IDS)
def test_no_or_wrong_key_is_401_json(world: World, method: str, path: str, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with httpx.Client(base_url=world.server.base_url, headers=headers, timeout=30) as anonymous:
        response = send(anonymous, method, world.url(path), REQUEST_BODIES.get((method, path)))
    assert_error(response, 401)
    assert response.headers.get("www-authenticate") == "Bearer"


def test_pty_websocket_of_other_tenant_is_refused(world: World) -> None:
    url = world.server.base_url.replace("http", "ws", 1) + f"/v1/devboxes/{world.devbox_id}/pty/{world.session_name}/ws"
    for key, code in ((OTHER_API_KEY, 4404), ("wrong-key", 4401)):
        with connect(url, additional_headers={"Authorization": f"Bearer {key}"}, open_timeout=30) as ws:
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=15)
            assert ws.close_code == code, (key, ws.close_code, ws.close_reason)


def test_pty_tunnel_token_reaches_only_its_own_devbox(world: World) -> None:
    """B's PTY token with A's session name opens a new session on B's devbox, not A's."""
    token = ok(world.intruder.post(f"/v1/devboxes/{world.intruder_devbox_id}/create_pty_tunnel"))["auth_token"]
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=world.server.base_url, headers=headers, timeout=30) as tunnel:
        view = ok(tunnel.get(f"/pty/{world.session_name}"))
        assert view["created"] is True
        ok(tunnel.post(f"/pty/{world.session_name}/control", json={"action": "close"}))


# ----- lists ---------------------------------------------------------------------------------------------------


def test_lists_show_only_own_things(world: World) -> None:
    b = world.intruder
    devbox_queries: list[dict[str, str | int]] = [{"limit": 5000}, {"limit": 5000, "status": "running"}]
    for query in devbox_queries:
        listed = ok(b.get("/v1/devboxes", params=query))
        ids = [d["id"] for d in listed["devboxes"]]
        assert world.devbox_id not in ids and world.intruder_devbox_id in ids
        assert listed["total_count"] == len(ids)
    assert world.metadata_key not in ok(b.get("/v1/devboxes/metadata/keys"))["keys"]
    assert ok(b.get(f"/v1/devboxes/metadata/keys/{world.metadata_key}/values"))["values"] == []

    snapshot_queries: list[dict[str, str | int]] = [{"limit": 5000}, {"devbox_id": world.devbox_id}]
    for query in snapshot_queries:
        snapshots = [s["id"] for s in ok(b.get("/v1/devboxes/disk_snapshots", params=query))["snapshots"]]
        assert world.private_snapshot_id not in snapshots and world.public_snapshot_id not in snapshots
    owners = [s["id"] for s in ok(world.owner.get("/v1/devboxes/disk_snapshots"))["snapshots"]]
    assert {world.private_snapshot_id, world.public_snapshot_id} <= set(owners)

    # Executions have no list route; logs are how they are listed, and A's never show on B's devbox.
    for execution_id in (world.execution_id, world.finished_execution_id):
        logs = ok(b.get(f"/v1/devboxes/{world.intruder_devbox_id}/logs", params={"execution_id": execution_id}))
        assert logs["logs"] == []
    own_logs = ok(world.owner.get(f"/v1/devboxes/{world.devbox_id}/logs"))["logs"]
    assert any(entry.get("cmd_id") == world.finished_execution_id for entry in own_logs)


# ----- snapshots -----------------------------------------------------------------------------------------------


def test_private_snapshot_is_invisible_and_unusable(world: World) -> None:
    b, sid = world.intruder, world.private_snapshot_id
    assert_error(b.get(f"/v1/devboxes/disk_snapshots/{sid}/status"), 404)
    assert_error(b.post(f"/v1/devboxes/disk_snapshots/{sid}", json={"name": "stolen"}), 404)
    assert_error(b.post(f"/v1/devboxes/disk_snapshots/{sid}/delete"), 404)
    assert_error(b.post("/v1/devboxes", json={"snapshot_id": sid}), 404)
    assert_error(b.post("/v1/devboxes/create_and_await_running", json={"snapshot_id": sid}), 404)
    assert sid not in [s["id"] for s in ok(b.get("/v1/devboxes/disk_snapshots/list_public"))["snapshots"]]
    assert ok(world.owner.get(f"/v1/devboxes/disk_snapshots/{sid}/status"))["snapshot"]["name"] == "private-a"


def test_public_snapshot_is_listed_and_usable_but_not_changeable(world: World) -> None:
    b, sid = world.intruder, world.public_snapshot_id
    assert sid in [s["id"] for s in ok(b.get("/v1/devboxes/disk_snapshots/list_public"))["snapshots"]]
    assert ok(b.get(f"/v1/devboxes/disk_snapshots/{sid}/status"))["status"] == "complete"
    assert_error(b.post(f"/v1/devboxes/disk_snapshots/{sid}", json={"name": "stolen"}), 404)
    assert_error(b.post(f"/v1/devboxes/disk_snapshots/{sid}/delete"), 404)
    borrowed = create_running(b, snapshot_id=sid)
    try:
        read = b.post(f"/v1/devboxes/{borrowed}/read_file_contents", json={"file_path": "secret.txt"})
        assert read.status_code == 200 and read.text == SECRET, read.text
        assert_error(world.owner.get(f"/v1/devboxes/{borrowed}"), 404)  # the devbox is B's
    finally:
        b.post(f"/v1/devboxes/{borrowed}/shutdown")
    assert ok(world.owner.get(f"/v1/devboxes/disk_snapshots/{sid}/status"))["snapshot"]["name"] == "public-a"


# ----- and afterwards, A's things are as A left them ---------------------------------------------------------


def test_owner_state_is_untouched_by_the_other_tenant(world: World) -> None:
    """Runs after the sweeps above (file order): none of B's requests changed anything of A's."""
    a = world.owner
    devbox = ok(a.get(f"/v1/devboxes/{world.devbox_id}"))
    assert (devbox["status"], devbox["name"], devbox["metadata"]) == ("running", "tenant-a", {world.metadata_key: "a"})
    assert devbox["tunnel"]["tunnel_key"] == world.tunnel_key
    read = a.post(f"/v1/devboxes/{world.devbox_id}/read_file_contents", json={"file_path": "secret.txt"})
    assert read.text == SECRET
    assert ok(a.get(f"/v1/devboxes/{world.devbox_id}/pty/{world.session_name}"))["created"] is False
    for sid, name in ((world.private_snapshot_id, "private-a"), (world.public_snapshot_id, "public-a")):
        status = ok(a.get(f"/v1/devboxes/disk_snapshots/{sid}/status"))
        assert (status["status"], status["snapshot"]["name"]) == ("complete", name)
    snapshots = ok(a.get("/v1/devboxes/disk_snapshots", params={"devbox_id": world.devbox_id}))["snapshots"]
    assert len(snapshots) == 2, "another tenant's snapshot_disk must not have snapshotted A's devbox"

    # The `cat` B tried to write to and kill is still running, and reads only what A sends it.
    execution = f"/v1/devboxes/{world.devbox_id}/executions/{world.execution_id}"
    assert ok(a.get(execution))["status"] == "running"
    ok(a.post(f"{execution}/send_std_in", json={"text": "mine\n", "signal": "EOF"}))
    done = ok(a.post(f"{execution}/wait_for_status", json={"statuses": ["completed"], "timeout_seconds": 30}))
    assert (done["status"], done["exit_status"], done["stdout"]) == ("completed", 0, "mine\n")

    commands = [entry.get("cmd") or "" for entry in ok(a.get(f"/v1/devboxes/{world.devbox_id}/logs"))["logs"]]
    assert not any("pwned" in cmd or "rm -f" in cmd for cmd in commands), commands
