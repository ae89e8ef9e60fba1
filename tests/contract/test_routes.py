"""Every operation in openapi.yaml is routed by the app with the spec's method and path: in the app's own
route table (built with create_app, not started) and on a running server, where a request to it reaches a
handler (no 405, no router-level 404). Path parameters are compared by position, not by name.

No spec operation is refused wholesale: the endpoints answered with 400 not_supported
(app/api/routers/unsupported.py: create_gateway_token, create_mcp_token) are ones the Runloop client calls
beyond this spec; they are checked here as routed too, with the client's other extras."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.contract.spec import normalize_template, spec_operations

# Paths runloop-api-client 3.0.0 calls for devboxes that the spec does not list, and that this server routes.
CLIENT_EXTRAS = [
    ("POST", "/v1/devboxes/create_and_await_running"),
    ("GET", "/v1/devboxes/evictions/watch"),
    ("GET", "/v1/devboxes/{devbox_id}/executions/{execution_id}/stream_stdout_updates"),
    ("GET", "/v1/devboxes/{devbox_id}/executions/{execution_id}/stream_stderr_updates"),
    ("POST", "/v1/devboxes/{id}/create_gateway_token"),  # 400 not_supported
    ("POST", "/v1/devboxes/{id}/create_mcp_token"),  # 400 not_supported
]


def _app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app(Settings(api_keys="route-test-key", data_dir=tmp_path, build_image_on_start=False))
    routes = set()
    for template, item in app.openapi()["paths"].items():
        for method in item:
            routes.add((method.upper(), normalize_template(template)))
    return routes


def test_every_spec_operation_is_in_the_route_table(tmp_path: Path) -> None:
    routes = _app_routes(tmp_path)
    missing = [
        f"{op.method} {op.template} ({op.operation_id})"
        for op in spec_operations()
        if (op.method, normalize_template(op.template)) not in routes
    ]
    assert not missing, f"spec operations the app does not route: {missing}"


def test_client_extras_are_in_the_route_table(tmp_path: Path) -> None:
    routes = _app_routes(tmp_path)
    missing = [f"{m} {p}" for m, p in CLIENT_EXTRAS if (m, normalize_template(p)) not in routes]
    assert not missing, missing


def _concrete(template: str) -> str:
    """Placeholder values no store has: the request reaches the handler, which answers 404 for the id."""
    return re.sub(r"\{([^}]+)\}", lambda m: f"contract_{m.group(1)}", template)


def _reaches_a_handler(response: httpx.Response) -> bool:
    if response.status_code == 405:
        return False
    if response.status_code == 404:
        body = response.json()
        return bool(body.get("detail") != "Not Found")  # Starlette's own 404 for a path no route matches
    return True


@pytest.mark.docker
def test_every_spec_operation_reaches_its_handler_on_a_running_server(http: httpx.Client) -> None:
    """Checks route order too: a fixed path like /v1/devboxes/disk_snapshots must not fall into /{id}."""
    misses = []
    targets = [(op.method, op.template) for op in spec_operations()] + CLIENT_EXTRAS
    for method, template in targets:
        path = _concrete(template)
        if path.endswith(("stream_stdout_updates", "stream_stderr_updates", "/logs/tail", "evictions/watch")):
            with http.stream(method, path) as response:  # an open event stream is never read to its end
                if response.status_code != 200:
                    response.read()
                reached = _reaches_a_handler(response)
        else:
            response = http.request(method, path, json={} if method == "POST" else None)
            reached = _reaches_a_handler(response)
        if not reached:
            misses.append(f"{method} {path} -> {response.status_code}")
    assert not misses, misses


@pytest.mark.docker
def test_fixed_paths_are_not_taken_for_ids(http: httpx.Client) -> None:
    """The listing endpoints under /v1/devboxes answer their own shape, not a devbox lookup's 404."""
    assert set(http.get("/v1/devboxes/disk_snapshots").json()) >= {"snapshots", "has_more"}
    assert set(http.get("/v1/devboxes/disk_snapshots/list_public").json()) >= {"snapshots", "has_more"}
    assert "keys" in http.get("/v1/devboxes/metadata/keys").json()
    assert "keys" in http.get("/v1/devboxes/disk_snapshots/metadata/keys").json()
    assert "keys" in http.get("/v1/devboxes/disk_snapshots/public/metadata/keys").json()
