"""wait_for_status long-polls, wrong-state errors, 404s on every devbox route, auth and tenant isolation,
malformed bodies and the create fields this server refuses."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.conftest import API_KEY, OTHER_API_KEY, wait_for

UNKNOWN_DEVBOX = "dbx_0000000000doesnotexist00"
UNKNOWN_EXECUTION = "exe_0000000000doesnotexist00"


@pytest.fixture(scope="module")
def running(module_devbox: str) -> str:
    return module_devbox


def assert_error_body(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert body["detail"]
    return body  # type: ignore[no-any-return]


def shutdown_if_created(http: httpx.Client, response: httpx.Response) -> None:
    """Never leak a devbox when the server wrongly accepts a create."""
    if response.status_code == 200 and isinstance(response.json(), dict) and "id" in response.json():
        http.post(f"/v1/devboxes/{response.json()['id']}/shutdown")


# ----- wait_for_status -------------------------------------------------------------------------


def test_wait_holds_until_suspended_then_wrong_state_errors(http, devbox_factory):
    devbox = devbox_factory()
    devbox_id = devbox["id"]
    assert http.post(f"/v1/devboxes/{devbox_id}/suspend").status_code == 200
    waited = http.post(
        f"/v1/devboxes/{devbox_id}/wait_for_status", json={"statuses": ["suspended"], "timeout_seconds": 20}
    )
    assert waited.status_code == 200, waited.text
    assert waited.json()["status"] == "suspended"

    again = http.post(f"/v1/devboxes/{devbox_id}/suspend")
    assert again.status_code == 400, again.text
    assert again.headers.get("x-should-retry") == "false"
    assert_error_body(again)

    sync = http.post(f"/v1/devboxes/{devbox_id}/execute_sync", json={"command": "true"})
    assert sync.status_code == 400, sync.text
    assert_error_body(sync)
    asynchronous = http.post(f"/v1/devboxes/{devbox_id}/execute_async", json={"command": "true"})
    assert asynchronous.status_code == 400, asynchronous.text

    assert http.post(f"/v1/devboxes/{devbox_id}/resume").status_code == 200
    waited = http.post(
        f"/v1/devboxes/{devbox_id}/wait_for_status", json={"statuses": ["running"], "timeout_seconds": 20}
    )
    assert waited.status_code == 200, waited.text
    assert waited.json()["status"] == "running"

    resumed_again = http.post(f"/v1/devboxes/{devbox_id}/resume")
    assert resumed_again.status_code == 400, resumed_again.text
    assert resumed_again.headers.get("x-should-retry") == "false"
    assert_error_body(resumed_again)


def test_wait_returns_at_once_when_already_there(shared_http, running):
    started = time.monotonic()
    response = shared_http.post(
        f"/v1/devboxes/{running}/wait_for_status", json={"statuses": ["suspended", "running"], "timeout_seconds": 10}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "running"
    assert time.monotonic() - started < 2


def test_wait_times_out_with_408_after_float_timeout(shared_http, running):
    started = time.monotonic()
    response = shared_http.post(
        f"/v1/devboxes/{running}/wait_for_status", json={"statuses": ["suspended"], "timeout_seconds": 1.5}
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 408, response.text
    assert 1.4 <= elapsed < 5, elapsed
    assert_error_body(response)


def test_wait_short_timeout(shared_http, running):
    started = time.monotonic()
    response = shared_http.post(
        f"/v1/devboxes/{running}/wait_for_status", json={"statuses": ["shutdown"], "timeout_seconds": 0.5}
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 408, response.text
    assert 0.4 <= elapsed < 3, elapsed


def test_wait_timeout_above_max_is_accepted(shared_http, running):
    # Clamped to 30 s, not refused; the status is already reached so the answer is immediate.
    response = shared_http.post(
        f"/v1/devboxes/{running}/wait_for_status", json={"statuses": ["running"], "timeout_seconds": 1000}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "running"


@pytest.mark.parametrize("statuses", [["bogus"], ["running", "stopped"], ["RUNNING"]])
def test_wait_invalid_status_is_400(shared_http, running, statuses):
    response = shared_http.post(f"/v1/devboxes/{running}/wait_for_status", json={"statuses": statuses})
    assert response.status_code == 400, response.text
    assert_error_body(response)


def test_wait_empty_statuses_is_400(shared_http, running):
    response = shared_http.post(f"/v1/devboxes/{running}/wait_for_status", json={"statuses": []})
    assert response.status_code == 400, response.text
    assert_error_body(response)


def test_wait_missing_body_is_422(shared_http, running):
    response = shared_http.post(f"/v1/devboxes/{running}/wait_for_status")
    assert response.status_code == 422, response.text
    assert "detail" in response.json()
    no_statuses = shared_http.post(f"/v1/devboxes/{running}/wait_for_status", json={"timeout_seconds": 1})
    assert no_statuses.status_code == 422, no_statuses.text


# ----- unknown ids -----------------------------------------------------------------------------

DEVBOX_ROUTES = [
    ("GET", "/v1/devboxes/{id}", None),
    ("POST", "/v1/devboxes/{id}", {"name": "x"}),
    ("POST", "/v1/devboxes/{id}/wait_for_status", {"statuses": ["running"], "timeout_seconds": 1}),
    ("POST", "/v1/devboxes/{id}/suspend", None),
    ("POST", "/v1/devboxes/{id}/resume", None),
    ("POST", "/v1/devboxes/{id}/shutdown", None),
    ("POST", "/v1/devboxes/{id}/keep_alive", None),
    ("GET", "/v1/devboxes/{id}/usage", None),
    ("POST", "/v1/devboxes/{id}/execute_sync", {"command": "true"}),
    ("POST", "/v1/devboxes/{id}/execute_async", {"command": "true"}),
    ("POST", "/v1/devboxes/{id}/execute", {"command_id": "0191f3c2-8a8e-7b4e-9a5e-2d7f4c1b0a11", "command": "true"}),
    ("GET", "/v1/devboxes/{id}/executions/" + UNKNOWN_EXECUTION, None),
    (
        "POST",
        "/v1/devboxes/{id}/executions/" + UNKNOWN_EXECUTION + "/wait_for_status",
        {"statuses": ["completed"], "timeout_seconds": 1},
    ),
]


@pytest.mark.parametrize(("method", "path", "body"), DEVBOX_ROUTES, ids=[f"{m} {p}" for m, p, _ in DEVBOX_ROUTES])
def test_unknown_devbox_is_404(shared_http, method, path, body):
    response = shared_http.request(method, path.format(id=UNKNOWN_DEVBOX), json=body)
    assert response.status_code == 404, response.text
    assert response.headers.get("x-should-retry") == "false"
    assert_error_body(response)


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("POST", "/wait_for_status", {"statuses": ["completed"], "timeout_seconds": 1}),
    ],
)
def test_unknown_execution_on_known_devbox_is_404(shared_http, running, method, suffix, body):
    response = shared_http.request(method, f"/v1/devboxes/{running}/executions/{UNKNOWN_EXECUTION}{suffix}", json=body)
    assert response.status_code == 404, response.text
    assert_error_body(response)


# ----- auth and tenants ------------------------------------------------------------------------


def test_missing_authorization_is_401(server, running):
    for method, path in [("GET", "/v1/devboxes"), ("GET", f"/v1/devboxes/{running}"), ("POST", "/v1/devboxes")]:
        response = httpx.request(method, server.base_url + path, json={} if method == "POST" else None)
        assert response.status_code == 401, (path, response.text)
        assert_error_body(response)


@pytest.mark.parametrize("header", ["Bearer wrong-key", "Bearer", "Basic dGVzdDp0ZXN0", API_KEY])
def test_wrong_credentials_are_401(server, header):
    response = httpx.get(server.base_url + "/v1/devboxes", headers={"Authorization": header})
    assert response.status_code == 401, response.text
    assert_error_body(response)


def test_other_tenant_cannot_see_or_touch_devbox(server, shared_http, running):
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {OTHER_API_KEY}"}, timeout=30
    ) as other:
        assert other.get(f"/v1/devboxes/{running}").status_code == 404
        for action in ("suspend", "shutdown", "keep_alive"):
            assert other.post(f"/v1/devboxes/{running}/{action}").status_code == 404, action
        assert other.get(f"/v1/devboxes/{running}/usage").status_code == 404
        assert other.post(f"/v1/devboxes/{running}", json={"name": "stolen"}).status_code == 404
        sync = other.post(f"/v1/devboxes/{running}/execute_sync", json={"command": "true"})
        assert sync.status_code == 404
        listed = other.get("/v1/devboxes", params={"limit": 5000}).json()
        assert running not in [d["id"] for d in listed["devboxes"]]
    mine = shared_http.get(f"/v1/devboxes/{running}").json()
    assert mine["status"] == "running"
    assert mine["name"] == "test_wait_and_errors"


# ----- malformed bodies ------------------------------------------------------------------------

CREATE_MALFORMED = [
    pytest.param(b'{"name": ', id="invalid-json"),
    pytest.param(b"not json at all", id="not-json"),
    pytest.param({"bogus": 1}, id="unknown-field"),
    pytest.param({"name": 5}, id="name-int"),
    pytest.param({"metadata": "x"}, id="metadata-string"),
    pytest.param({"metadata": {"a": {"b": 1}}}, id="metadata-nested"),
    pytest.param({"environment_variables": ["A=b"]}, id="env-list"),
    pytest.param({"launch_parameters": {"launch_commands": "echo"}}, id="launch-commands-string"),
    pytest.param({"launch_parameters": {"bogus": 1}}, id="launch-unknown-field"),
    pytest.param({"launch_parameters": {"resource_size_request": "HUGE"}}, id="size-unknown"),
    pytest.param({"launch_parameters": {"user_parameters": {"username": "bob"}}}, id="user-without-uid"),
    pytest.param([1, 2], id="array-body"),
]


@pytest.mark.parametrize("body", CREATE_MALFORMED)
def test_malformed_create_is_422(shared_http, body):
    if isinstance(body, bytes):
        response = shared_http.post("/v1/devboxes", content=body, headers={"Content-Type": "application/json"})
    else:
        response = shared_http.post("/v1/devboxes", json=body)
    shutdown_if_created(shared_http, response)
    assert response.status_code in (400, 422), response.text
    assert "detail" in response.json()


@pytest.mark.parametrize(
    ("suffix", "body"),
    [
        pytest.param("", {"bogus": 1}, id="update-unknown-field"),
        pytest.param("", {"metadata": ["a"]}, id="update-metadata-list"),
        pytest.param("/wait_for_status", {"statuses": "running"}, id="wait-statuses-string"),
        pytest.param("/wait_for_status", {"statuses": ["running"], "timeout_seconds": "soon"}, id="wait-timeout-str"),
        pytest.param("/wait_for_status", {"statuses": ["running"], "bogus": 1}, id="wait-unknown-field"),
        pytest.param("/execute_sync", {"cmd": "ls"}, id="exec-sync-no-command"),
        pytest.param("/execute_sync", {"command": 5}, id="exec-sync-command-int"),
        pytest.param("/execute_async", {"command": "ls", "bogus": 1}, id="exec-async-unknown-field"),
        pytest.param("/execute", {"command": "ls"}, id="execute-no-command-id"),
        pytest.param("/execute", b"{nope", id="execute-invalid-json"),
    ],
)
def test_malformed_route_bodies_are_422(shared_http, running, suffix, body):
    url = f"/v1/devboxes/{running}{suffix}"
    if isinstance(body, bytes):
        response = shared_http.post(url, content=body, headers={"Content-Type": "application/json"})
    else:
        response = shared_http.post(url, json=body)
    assert response.status_code in (400, 422), response.text
    assert "detail" in response.json()
    assert (
        shared_http.get(f"/v1/devboxes/{running}").json()["name"] == "test_wait_and_errors"
    )  # unchanged by the bad request


# ----- refused create fields -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"secrets": {"TOKEN": "no-such-secret"}}, "secrets.TOKEN"),
        ({"mounts": [{"type": "object_mount", "object_id": "obj_1", "object_path": "/x"}]}, "object_mount"),
        ({"mounts": [{"type": "broker_mount", "axon_id": "a"}]}, "broker_mount"),
        ({"blueprint_id": "bpt_123"}, "blueprint_id"),
        ({"gateways": {"GWS_X": {"gateway": "anthropic", "secret": "s"}}}, "gateways"),
        ({"mcp": {"MCP_SECRET": {"mcp_config": "github", "secret": "s"}}}, "mcp"),
        ({"launch_parameters": {"lifecycle": {"resume_triggers": {"http": True}}}}, "resume_triggers"),
        ({"launch_parameters": {"network_policy_id": "np_1"}}, "network_policy_id"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_unsupported_create_fields_are_400_naming_the_field(shared_http, body, field):
    response = shared_http.post("/v1/devboxes", json=body)
    shutdown_if_created(shared_http, response)
    assert response.status_code == 400, response.text
    detail = assert_error_body(response)["detail"]
    assert field in str(detail), detail


@pytest.mark.parametrize("seconds", [172_801, 0, -5])
def test_keep_alive_time_out_of_range_is_400(shared_http, seconds):
    response = shared_http.post("/v1/devboxes", json={"launch_parameters": {"keep_alive_time_seconds": seconds}})
    shutdown_if_created(shared_http, response)
    assert response.status_code == 400, response.text
    assert "keep_alive_time_seconds" in str(assert_error_body(response)["detail"])


@pytest.mark.parametrize("name", ["1BAD", "A-B", "HAS SPACE", ""])
def test_invalid_environment_variable_name_is_400(shared_http, name):
    response = shared_http.post("/v1/devboxes", json={"environment_variables": {name: "x"}})
    shutdown_if_created(shared_http, response)
    assert response.status_code == 400, response.text
    assert_error_body(response)


# ----- shutdown force ----------------------------------------------------------------------------


def test_shutdown_force_must_be_true_or_false(shared_http, running):
    response = shared_http.post(f"/v1/devboxes/{running}/shutdown", params={"force": "maybe"})
    assert response.status_code == 400, response.text
    assert "force" in str(assert_error_body(response)["detail"])
    assert shared_http.get(f"/v1/devboxes/{running}").json()["status"] == "running"


@pytest.mark.parametrize("force", ["true", "false"])
def test_shutdown_with_force(http, devbox_factory, force):
    devbox = devbox_factory()
    response = http.post(f"/v1/devboxes/{devbox['id']}/shutdown", params={"force": force})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "shutdown"
    assert response.json()["shutdown_reason"] == "api_shutdown"


def test_wait_nan_timeout_is_rejected_not_held_forever(server_factory):
    """JSON parsers here accept the NaN literal; a NaN timeout must not make the long-poll unbounded.
    On a private server: a NaN that reaches the event loop's timers must not disturb the shared one."""
    srv = server_factory()
    with httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as client:
        devbox_id = client.post("/v1/devboxes", json={}).json()["id"]
        try:
            wait_for(client, devbox_id, ["running"])
            started = time.monotonic()
            try:
                response = client.post(
                    f"/v1/devboxes/{devbox_id}/wait_for_status",
                    content=b'{"statuses": ["shutdown"], "timeout_seconds": NaN}',
                    headers={"Content-Type": "application/json"},
                    timeout=6,
                )
            except httpx.ReadTimeout:
                pytest.fail(f"timeout_seconds NaN: wait_for_status still held after {time.monotonic() - started:.1f} s")
            assert response.status_code in (400, 422), response.text
        finally:
            client.post(f"/v1/devboxes/{devbox_id}/shutdown")


def test_wait_negative_and_infinite_timeouts_are_clamped(shared_http, running):
    negative = shared_http.post(
        f"/v1/devboxes/{running}/wait_for_status", json={"statuses": ["suspended"], "timeout_seconds": -5}
    )
    assert negative.status_code == 408, negative.text
    infinite = shared_http.post(
        f"/v1/devboxes/{running}/wait_for_status",
        content=b'{"statuses": ["running"], "timeout_seconds": 1e999}',
        headers={"Content-Type": "application/json"},
    )
    assert infinite.status_code in (200, 400, 422), infinite.text
