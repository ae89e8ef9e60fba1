"""Every response body the server returns in a scenario that touches every spec operation validates against
openapi.yaml's schema for that operation and status (required fields, enums, types, additionalProperties).

The client is plain httpx with a response hook (tests/contract/spec.py): each test checks the findings of
its own requests, and the last test checks that the scenario met every operation and lists the error
statuses the server answers that the spec does not document."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import API_KEY, ServerProcess
from tests.contract.spec import SpecValidator, spec_operations, summarize, validating_client, validator_for

pytestmark = pytest.mark.docker

UNKNOWN_DEVBOX = "dbx_contract_unknown"
UNKNOWN_SNAPSHOT = "snp_contract_unknown"

# Error statuses the server answers where the spec documents none (the spec lists few error responses; the
# server's errors all carry {"error", "detail"}). Kept explicit so a new one shows up as a test failure.
UNDOCUMENTED_ERRORS_EXPECTED = {
    ("getDevbox", 404),
    ("updateDevbox", 404),
    ("shutdownDevbox", 404),
    ("keepAliveDevbox", 404),
    ("execSyncCommand", 404),
    ("listDevboxes", 401),
    ("createDevbox", 400),
    ("createDevbox", 422),
    ("devboxReadFileContents", 400),
}


@pytest.fixture(scope="module")
def validator() -> SpecValidator:
    return SpecValidator()


@pytest.fixture(scope="module")
def api(server: ServerProcess, validator: SpecValidator) -> Iterator[httpx.Client]:
    with validating_client(server.base_url, API_KEY, validator, timeout=90) as client:
        yield client


class Checkpoint:
    """The findings of one test's own requests, asserted in the test (so an xfail mark covers them)."""

    def __init__(self, validator: SpecValidator) -> None:
        self.validator = validator
        self.start = len(validator.findings)

    def assert_clean(self) -> None:
        mine = self.validator.findings[self.start :]
        schema_breaks = [f for f in mine if "not documented" not in f.problem]
        assert not schema_breaks, "responses that break the spec:\n" + summarize(schema_breaks)


@pytest.fixture
def checkpoint(validator: SpecValidator) -> Checkpoint:
    return Checkpoint(validator)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json() if response.headers.get("content-type", "").startswith("application/json") else None


def wait_status(api: httpx.Client, devbox_id: str, statuses: list[str], seconds: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = api.post(
            f"/v1/devboxes/{devbox_id}/wait_for_status", json={"statuses": statuses, "timeout_seconds": 10}
        )
        if response.status_code == 200:
            return response.json()  # type: ignore[no-any-return]
        assert response.status_code == 408, response.text
    raise AssertionError(f"{devbox_id} never reached {statuses}")


def wait_execution(api: httpx.Client, devbox_id: str, execution_id: str, statuses: list[str]) -> dict[str, Any]:
    for _ in range(10):
        response = api.post(
            f"/v1/devboxes/{devbox_id}/executions/{execution_id}/wait_for_status",
            json={"statuses": statuses, "timeout_seconds": 10},
        )
        if response.status_code == 200:
            return response.json()  # type: ignore[no-any-return]
        assert response.status_code == 408, response.text
    raise AssertionError(f"{execution_id} never reached {statuses}")


@pytest.fixture(scope="module")
def devbox(api: httpx.Client) -> Iterator[str]:
    """One running devbox for the read-mostly tests of this module."""
    created = ok(api.post("/v1/devboxes", json={"name": "contract", "metadata": {"suite": "contract"}}))
    try:
        assert wait_status(api, created["id"], ["running", "failure"])["status"] == "running"
        yield created["id"]
    finally:
        api.post(f"/v1/devboxes/{created['id']}/shutdown")


def test_lifecycle_responses(api: httpx.Client, checkpoint: Checkpoint) -> None:
    tag = uuid.uuid4().hex[:8]
    created = ok(
        api.post(
            "/v1/devboxes",
            json={
                "name": f"contract-life-{tag}",
                "metadata": {"contract": tag},
                "environment_variables": {"A": "1"},
                "launch_parameters": {"launch_commands": ["echo launched"], "keep_alive_time_seconds": 600},
            },
        )
    )
    devbox_id = created["id"]
    try:
        wait_status(api, devbox_id, ["running"])
        ok(api.get(f"/v1/devboxes/{devbox_id}"))
        listed = ok(api.get("/v1/devboxes", params={"limit": 2}))
        assert listed["devboxes"]
        ok(api.get("/v1/devboxes", params={"status": "running", "include_total_count": "true"}))
        ok(api.post(f"/v1/devboxes/{devbox_id}", json={"name": "renamed", "metadata": {"contract": tag}}))
        ok(api.post(f"/v1/devboxes/{devbox_id}/keep_alive"))
        ok(api.get(f"/v1/devboxes/{devbox_id}/usage"))
        assert tag in ok(api.get("/v1/devboxes/metadata/keys/contract/values"))["values"]
        assert "contract" in ok(api.get("/v1/devboxes/metadata/keys"))["keys"]
        wait = f"/v1/devboxes/{devbox_id}/wait_for_status"
        assert api.post(wait, json={"statuses": ["suspended"], "timeout_seconds": 1}).status_code == 408
        assert api.post(wait, json={"statuses": ["nonsense"]}).status_code in (400, 422)
        ok(api.get(f"/v1/devboxes/{devbox_id}/logs"))
        with api.stream("GET", f"/v1/devboxes/{devbox_id}/logs/tail") as tail:
            assert tail.status_code == 200
            first = next(line for line in tail.iter_lines() if line.startswith("data:"))
        # The spec gives the SSE stream no schema; each event's data is a DevboxLog.
        event = json.loads(first.removeprefix("data:"))
        log_schema = validator_for(json.dumps({"$ref": "#/components/schemas/DevboxLog"}))
        assert not [e.message for e in log_schema.iter_errors(event)], event

        ok(api.post(f"/v1/devboxes/{devbox_id}/suspend"))
        wait_status(api, devbox_id, ["suspended"])
        assert api.post(f"/v1/devboxes/{devbox_id}/suspend").status_code == 400
        assert api.post(f"/v1/devboxes/{devbox_id}/create_pty_tunnel").status_code == 400
        ok(api.get(f"/v1/devboxes/{devbox_id}/usage"))
        ok(api.post(f"/v1/devboxes/{devbox_id}/resume"))
        wait_status(api, devbox_id, ["running"])
        assert api.post(f"/v1/devboxes/{devbox_id}/resume").status_code == 400
    finally:
        ended = ok(api.post(f"/v1/devboxes/{devbox_id}/shutdown"))
    assert ended["status"] == "shutdown"
    ok(api.get(f"/v1/devboxes/{devbox_id}"))
    ok(api.get(f"/v1/devboxes/{devbox_id}/usage"))
    checkpoint.assert_clean()


def test_execution_responses(api: httpx.Client, devbox: str, checkpoint: Checkpoint) -> None:
    base = f"/v1/devboxes/{devbox}"
    ok(api.post(f"{base}/execute_sync", json={"command": "echo sync; echo err >&2; exit 3"}))
    ok(api.post(f"{base}/execute_sync", json={"command": "echo named", "shell_name": "contract-shell"}))
    started = ok(api.post(f"{base}/execute_async", json={"command": "sleep 30"}))
    execution = f"{base}/executions/{started['execution_id']}"
    ok(api.get(execution))
    hold = {"statuses": ["completed"], "timeout_seconds": 1}
    assert api.post(f"{execution}/wait_for_status", json=hold).status_code == 408
    ok(api.post(f"{execution}/kill", json={"kill_process_group": True}))
    ok(api.get(execution))
    assert api.post(f"{execution}/wait_for_status", json={"statuses": ["bogus"]}).status_code in (400, 422)

    reader = ok(api.post(f"{base}/execute_async", json={"command": "tr a-z A-Z", "attach_stdin": True}))
    reader_path = f"{base}/executions/{reader['execution_id']}"
    ok(api.post(f"{reader_path}/send_std_in", json={"text": "shout\n"}))
    ok(api.post(f"{reader_path}/send_std_in", json={"signal": "EOF"}))
    done = wait_execution(api, devbox, reader["execution_id"], ["completed"])
    assert done["stdout"] == "SHOUT\n"

    fast = ok(
        api.post(
            f"{base}/execute",
            params={"last_n": "5"},
            json={"command": "seq 1 10", "command_id": str(uuid.uuid4()), "optimistic_timeout": 10},
        )
    )
    assert fast["status"] == "completed"
    slow_body = {"command": "sleep 3", "command_id": str(uuid.uuid4()), "optimistic_timeout": 1}
    slow = ok(api.post(f"{base}/execute", json=slow_body))
    assert slow["status"] in ("queued", "running")
    wait_execution(api, devbox, slow["execution_id"], ["completed"])
    ok(api.get(f"{base}/logs", params={"execution_id": slow["execution_id"]}))
    unknown = f"{base}/executions/exe_contract_unknown"
    assert api.get(unknown).status_code == 404
    assert api.post(f"{unknown}/kill").status_code == 404
    assert api.post(f"{unknown}/send_std_in", json={"text": "x"}).status_code == 404
    assert api.post(f"{unknown}/wait_for_status", json={"statuses": ["completed"]}).status_code == 404
    checkpoint.assert_clean()


def test_file_responses(api: httpx.Client, devbox: str, checkpoint: Checkpoint) -> None:
    base = f"/v1/devboxes/{devbox}"
    ok(api.post(f"{base}/write_file_contents", json={"file_path": "contract/a.txt", "contents": "héllo\n"}))
    read = api.post(f"{base}/read_file_contents", json={"file_path": "contract/a.txt"})
    assert read.status_code == 200 and read.text == "héllo\n"
    data = bytes(range(256)) * 16
    ok(api.post(f"{base}/upload_file", data={"path": "contract/b.bin"}, files={"file": ("b.bin", io.BytesIO(data))}))
    download = api.post(f"{base}/download_file", json={"path": "contract/b.bin"})
    assert download.status_code == 200 and download.content == data
    assert api.post(f"{base}/read_file_contents", json={"file_path": "contract/missing.txt"}).status_code == 404
    assert api.post(f"{base}/download_file", json={"path": "contract/missing.bin"}).status_code == 404
    assert api.post(f"{base}/read_file_contents", json={"file_path": "contract/b.bin"}).status_code in (400, 404)
    checkpoint.assert_clean()


def test_snapshot_responses(api: httpx.Client, devbox: str, checkpoint: Checkpoint) -> None:
    tag = uuid.uuid4().hex[:8]
    base = f"/v1/devboxes/{devbox}"
    snapshot = ok(api.post(f"{base}/snapshot_disk", json={"name": "c-sync", "metadata": {"csnap": tag}}))
    started = ok(api.post(f"{base}/snapshot_disk_async", json={"name": "c-async", "commit_message": "m"}))
    try:
        for _ in range(120):
            status = ok(api.get(f"/v1/devboxes/disk_snapshots/{started['id']}/status"))
            if status["status"] != "in_progress":
                break
            time.sleep(0.5)
        assert status["status"] == "complete", status
        ok(api.get(f"/v1/devboxes/disk_snapshots/{snapshot['id']}/status"))
        listed = ok(api.get("/v1/devboxes/disk_snapshots", params={"devbox_id": devbox, "include_total_count": "true"}))
        assert {s["id"] for s in listed["snapshots"]} >= {snapshot["id"], started["id"]}
        ok(api.get("/v1/devboxes/disk_snapshots", params={"limit": 1}))
        ok(api.get("/v1/devboxes/disk_snapshots/list_public"))
        update = {"name": "renamed", "metadata": {"csnap": tag}}
        ok(api.post(f"/v1/devboxes/disk_snapshots/{snapshot['id']}", json=update))
        assert "csnap" in ok(api.get("/v1/devboxes/disk_snapshots/metadata/keys"))["keys"]
        assert ok(api.get("/v1/devboxes/disk_snapshots/metadata/keys/csnap/values"))["values"]
        ok(api.get("/v1/devboxes/disk_snapshots/public/metadata/keys"))
        ok(api.get("/v1/devboxes/disk_snapshots/public/metadata/keys/csnap/values"))
        assert api.get(f"/v1/devboxes/disk_snapshots/{UNKNOWN_SNAPSHOT}/status").status_code == 404
        assert api.post(f"/v1/devboxes/disk_snapshots/{UNKNOWN_SNAPSHOT}", json={"name": "x"}).status_code == 404
        assert api.post(f"/v1/devboxes/disk_snapshots/{UNKNOWN_SNAPSHOT}/delete").status_code == 404
        assert api.get("/v1/devboxes/disk_snapshots", params={"devbox_id": UNKNOWN_DEVBOX}).status_code in (200, 404)
    finally:
        ok(api.post(f"/v1/devboxes/disk_snapshots/{started['id']}/delete"))
        ok(api.post(f"/v1/devboxes/disk_snapshots/{snapshot['id']}/delete"))
    ok(api.get(f"/v1/devboxes/disk_snapshots/{started['id']}/status"))
    checkpoint.assert_clean()


def test_network_responses(api: httpx.Client, devbox: str, checkpoint: Checkpoint) -> None:
    base = f"/v1/devboxes/{devbox}"
    ok(api.post(f"{base}/enable_tunnel", json={"auth_mode": "authenticated", "http_keep_alive": False}))
    assert api.post(f"{base}/enable_tunnel", json={"auth_mode": "open"}).status_code == 400
    ok(api.post(f"{base}/remove_tunnel"))
    ok(api.post(f"{base}/enable_tunnel"))
    ok(api.post(f"{base}/remove_tunnel"))
    ok(api.post(f"{base}/create_ssh_key"))

    token = ok(api.post(f"{base}/create_pty_tunnel"))["auth_token"]
    pty_headers = {"Authorization": f"Bearer {token}"}
    name = f"c{uuid.uuid4().hex[:8]}"
    ok(api.get(f"/pty/{name}", params={"cols": 100, "rows": 30}, headers=pty_headers))
    ok(api.get(f"/pty/{name}", headers=pty_headers))
    ok(api.post(f"/pty/{name}/control", json={"action": "resize", "cols": 90, "rows": 20}, headers=pty_headers))
    ok(api.post(f"/pty/{name}/control", json={"action": "signal", "signal": "SIGINT"}, headers=pty_headers))
    bad_size = api.post(f"/pty/{name}/control", json={"action": "resize", "cols": 0, "rows": 0}, headers=pty_headers)
    assert bad_size.status_code == 400
    ok(api.post(f"/pty/{name}/control", json={"action": "close"}, headers=pty_headers))
    assert api.post(f"/pty/{name}x/control", json={"action": "close"}, headers=pty_headers).status_code == 404
    assert api.get("/pty/bad!name", headers=pty_headers).status_code == 400
    checkpoint.assert_clean()


def test_unknown_devbox_responses(api: httpx.Client, checkpoint: Checkpoint) -> None:
    """Each devbox operation on an id nobody has: 404 (documented or not, checked at the end)."""
    base = f"/v1/devboxes/{UNKNOWN_DEVBOX}"
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", base, None),
        ("POST", base, {"name": "x"}),
        ("POST", f"{base}/wait_for_status", {"statuses": ["running"]}),
        ("POST", f"{base}/suspend", None),
        ("POST", f"{base}/resume", None),
        ("POST", f"{base}/shutdown", None),
        ("POST", f"{base}/keep_alive", None),
        ("GET", f"{base}/usage", None),
        ("GET", f"{base}/logs", None),
        ("GET", f"{base}/logs/tail", None),
        ("POST", f"{base}/execute_sync", {"command": "true"}),
        ("POST", f"{base}/execute_async", {"command": "true"}),
        ("POST", f"{base}/execute", {"command": "true", "command_id": str(uuid.uuid4())}),
        ("GET", f"{base}/executions/exe_x", None),
        ("POST", f"{base}/write_file_contents", {"file_path": "a", "contents": "b"}),
        ("POST", f"{base}/read_file_contents", {"file_path": "a"}),
        ("POST", f"{base}/download_file", {"path": "a"}),
        ("POST", f"{base}/snapshot_disk", None),
        ("POST", f"{base}/snapshot_disk_async", None),
        ("POST", f"{base}/enable_tunnel", None),
        ("POST", f"{base}/remove_tunnel", None),
        ("POST", f"{base}/create_pty_tunnel", None),
        ("POST", f"{base}/create_ssh_key", None),
    ]
    for method, path, body in calls:
        response = api.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.status_code, response.text)
        assert set(response.json()) == {"error", "detail"}
    upload = api.post(f"{base}/upload_file", data={"path": "a"}, files={"file": ("a", b"x")})
    assert upload.status_code == 404
    checkpoint.assert_clean()


def test_error_shapes_for_bad_requests(
    api: httpx.Client, server: ServerProcess, validator: SpecValidator, checkpoint: Checkpoint
) -> None:
    with validating_client(server.base_url, "wrong-key", validator, timeout=30) as stranger:
        assert stranger.get("/v1/devboxes").status_code == 401
    malformed = api.post("/v1/devboxes", json={"name": 5, "launch_parameters": "nope"})
    assert malformed.status_code == 422
    assert malformed.json()["error"] == "validation_error"
    checkpoint.assert_clean()


def test_create_with_a_mount_type_that_is_not_a_string_is_a_400(api: httpx.Client, checkpoint: Checkpoint) -> None:
    """Found by schemathesis (tests/contract/test_schemathesis.py with DEVBOXD_FUZZ_COVERAGE=1)."""
    response = api.post("/v1/devboxes", json={"mounts": [{"type": {}}]})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    checkpoint.assert_clean()


def test_every_operation_was_met_and_undocumented_statuses_are_known(validator: SpecValidator) -> None:
    """Runs last: the scenario above reached every spec operation, and the only undocumented statuses are
    the known error ones (all of them carry the house error body)."""
    if not validator.seen:
        pytest.skip("needs the scenario tests of this module to run first")
    met = {operation for operation, status in validator.seen if status < 300}
    missing = sorted(op.operation_id for op in spec_operations() if op.operation_id not in met)
    assert not missing, f"operations the scenario never got a 2xx from: {missing}"
    undocumented = {
        (f.operation, f.status) for f in validator.findings if "not documented" in f.problem and f.status < 500
    }
    assert undocumented <= UNDOCUMENTED_ERRORS_EXPECTED, sorted(undocumented - UNDOCUMENTED_ERRORS_EXPECTED)
    five_hundreds = [str(f) for f in validator.findings if f.status >= 500]
    assert not five_hundreds, five_hundreds
