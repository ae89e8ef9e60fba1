"""schemathesis against openapi.yaml and a running server: for every operation, generated valid and invalid
requests (with the API key) never get a 5xx, and every response matches the spec's content type and schema.

Path parameters are replaced by ids that exist (a running devbox, a finished execution, a snapshot, ...),
so requests reach real code rather than stopping at a 404; devboxes that get suspended, resumed or shut down
and the snapshot that gets deleted are the test's own. Long polls are capped at one second, and the never-ending
logs/tail stream is checked by its status line. Bounded for CI: few examples per operation, fuzzing phase only,
a fixed seed. The server has its own data dir, and git clones from a path that does not exist, so fuzzed
code mounts fail at once instead of reaching for the network."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.conftest import API_KEY, ServerProcess
from tests.contract.spec import load_spec

pytestmark = pytest.mark.docker

# A deeper hunt, off CI: DEVBOXD_FUZZ_EXAMPLES=60 DEVBOXD_FUZZ_COVERAGE=1 [DEVBOXD_FUZZ_SEED=n] pytest <this file>
MAX_EXAMPLES = int(os.environ.get("DEVBOXD_FUZZ_EXAMPLES", "6"))
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": int(os.environ.get("DEVBOXD_FUZZ_SEED", "20251124")),
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "mode": "all",
            "deterministic": True,
            "database": "none",
        },
        "phases": {
            "examples": {"enabled": False},
            "coverage": {"enabled": os.environ.get("DEVBOXD_FUZZ_COVERAGE") == "1"},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
    }
)
SCHEMA = schemathesis.openapi.from_dict(copy.deepcopy(load_spec()), config=CONFIG)
CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance]
HOLDING_FIELDS = ("timeout_seconds", "optimistic_timeout")  # long polls: capped so a run stays short


@dataclass
class Target:
    server: ServerProcess
    devbox: str  # running, used by every operation that leaves it running
    lifecycle: str  # suspended and resumed by the fuzzer
    doomed: str  # shut down by the fuzzer
    execution: str  # a finished execution on `devbox`
    snapshot: str
    doomed_snapshot: str  # deleted by the fuzzer
    pty_token: str  # create_pty_tunnel's token for `devbox`, the credential of /pty/{session_name}


def _running_devbox(api: httpx.Client, name: str) -> str:
    response = api.post("/v1/devboxes", json={"name": name})
    assert response.status_code == 200, response.text
    devbox_id: str = response.json()["id"]
    for _ in range(10):
        waited = api.post(f"/v1/devboxes/{devbox_id}/wait_for_status", json={"statuses": ["running", "failure"]})
        if waited.status_code == 200:
            assert waited.json()["status"] == "running", waited.text
            return devbox_id
    raise AssertionError(f"{devbox_id} never ran")


def _snapshot(api: httpx.Client, devbox_id: str, name: str) -> str:
    response = api.post(f"/v1/devboxes/{devbox_id}/snapshot_disk", json={"name": name})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


@pytest.fixture(scope="module")
def target(server_factory: Callable[..., ServerProcess]) -> Iterator[Target]:
    server = server_factory(DEVBOX_GIT_BASE_URL="/nonexistent-git-base")
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as api:
        devbox = _running_devbox(api, "fuzz-main")
        execution = api.post(f"/v1/devboxes/{devbox}/execute_sync", json={"command": "echo fuzz"})
        assert execution.status_code == 200, execution.text
        started = api.post(f"/v1/devboxes/{devbox}/execute_async", json={"command": "true"}).json()
        pty_token = api.post(f"/v1/devboxes/{devbox}/create_pty_tunnel").json()["auth_token"]
        yield Target(
            server=server,
            devbox=devbox,
            lifecycle=_running_devbox(api, "fuzz-lifecycle"),
            doomed=_running_devbox(api, "fuzz-doomed"),
            execution=started["execution_id"],
            snapshot=_snapshot(api, devbox, "fuzz-kept"),
            doomed_snapshot=_snapshot(api, devbox, "fuzz-doomed"),
            pty_token=pty_token,
        )
        # Whatever the fuzzer created: shut down and deleted, so its containers and images do not linger.
        for snapshot in api.get("/v1/devboxes/disk_snapshots", params={"limit": 500}).json()["snapshots"]:
            api.post(f"/v1/devboxes/disk_snapshots/{snapshot['id']}/delete")
        for devbox_view in api.get("/v1/devboxes", params={"limit": 500}).json()["devboxes"]:
            api.post(f"/v1/devboxes/{devbox_view['id']}/shutdown", params={"force": "true"})


def _real_path_parameters(case: schemathesis.Case, target: Target) -> None:
    path = case.operation.path
    params = case.path_parameters if case.path_parameters is not None else {}
    if path.startswith("/v1/devboxes/disk_snapshots/{id}"):
        params["id"] = target.doomed_snapshot if path.endswith("/delete") else target.snapshot
    elif path.startswith("/v1/devboxes/{devbox_id}/executions/"):
        params["devbox_id"] = target.devbox
        params["execution_id"] = target.execution
    elif path.startswith("/v1/devboxes/{id}"):
        if path.endswith(("/suspend", "/resume")):
            params["id"] = target.lifecycle
        elif path.endswith("/shutdown"):
            params["id"] = target.doomed
        else:
            params["id"] = target.devbox
    case.path_parameters = params


def _cap_long_polls(case: schemathesis.Case) -> None:
    if isinstance(case.body, dict):
        for field in HOLDING_FIELDS:
            value = case.body.get(field)
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 1:
                case.body[field] = 1


def _headers(case: schemathesis.Case, target: Target) -> dict[str, str]:
    token = target.pty_token if case.operation.path.startswith("/pty/") else API_KEY
    return {"Authorization": f"Bearer {token}"}


@SCHEMA.parametrize()
def test_no_server_errors_and_responses_match_the_spec(case: schemathesis.Case, target: Target) -> None:
    _real_path_parameters(case, target)
    _cap_long_polls(case)
    if case.operation.path.endswith("/logs/tail"):
        # An SSE stream that ends only when the client leaves: the status line and content type are the contract.
        url = target.server.base_url + case.formatted_path
        with httpx.stream("GET", url, params=case.query, headers=_headers(case, target), timeout=30) as response:
            assert response.status_code < 500, response.read()
            if response.status_code == 200:
                assert response.headers["content-type"].startswith("text/event-stream")
        return
    case.call_and_validate(base_url=target.server.base_url, headers=_headers(case, target), checks=CHECKS, timeout=60)
