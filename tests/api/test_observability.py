"""Operators' view of the server: Prometheus metrics at /metrics (devboxes by status, API latency by
route template, executions, Docker call latency, the warm pool) and JSON log lines carrying request ids."""

from __future__ import annotations

import json
import re
import uuid

import httpx

from tests.conftest import ServerProcess


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample; 0 when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.compile(rf"^{re.escape(name)}(\{{{re.escape(wanted)}\}})? (\S+)$" if labels else rf"^{name} (\S+)$")
    for line in text.splitlines():
        if match := pattern.match(line):
            return float(match.groups()[-1])
    return 0.0


def scrape(server: ServerProcess) -> str:
    response = httpx.get(f"{server.base_url}/metrics")  # no API key: aggregates only
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def test_metrics_count_devboxes_requests_executions_and_docker_calls(
    server: ServerProcess, http: httpx.Client, module_devbox: str
) -> None:
    before = scrape(server)
    assert metric(before, "devboxd_devboxes", status="running") >= 1
    started = metric(before, "devboxd_executions_started_total")
    exited = metric(before, "devboxd_executions_finished_total", outcome="exited")
    for _ in range(3):
        assert http.post(f"/v1/devboxes/{module_devbox}/execute_sync", json={"command": "true"}).status_code == 200
    http.get(f"/v1/devboxes/{module_devbox}")
    after = scrape(server)
    assert metric(after, "devboxd_executions_started_total") >= started + 3
    assert metric(after, "devboxd_executions_finished_total", outcome="exited") >= exited + 3
    route = "/v1/devboxes/{id}/execute_sync"
    count = metric(after, "devboxd_api_request_seconds_count", method="POST", route=route, status="2xx")
    assert count >= 3
    assert metric(after, "devboxd_api_request_seconds_count", method="GET", route="/v1/devboxes/{id}", status="2xx")
    assert module_devbox not in after  # route templates, never raw paths with ids
    assert 'devboxd_docker_call_seconds_count{operation="run_container",outcome="ok"}' in after
    assert "devboxd_warm_pool_ready 0.0" in after  # test servers run without a pool


def test_unknown_routes_and_errors_have_bounded_labels(server: ServerProcess, http: httpx.Client) -> None:
    http.get(f"/no/such/{uuid.uuid4().hex}")
    http.get("/v1/devboxes/dbx_missing")
    text = scrape(server)
    assert metric(text, "devboxd_api_request_seconds_count", method="GET", route="unmatched", status="4xx") >= 1
    assert metric(text, "devboxd_api_request_seconds_count", method="GET", route="/v1/devboxes/{id}", status="4xx")
    assert "dbx_missing" not in text


def test_request_ids_are_echoed_or_made_and_logged_as_json(server: ServerProcess, http: httpx.Client) -> None:
    given = f"req-{uuid.uuid4().hex[:12]}"
    response = http.get("/v1/devboxes", headers={"X-Request-Id": given})
    assert response.headers["x-request-id"] == given
    made = http.get("/v1/devboxes").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    odd = http.get("/v1/devboxes", headers={"X-Request-Id": "bad id with spaces"}).headers["x-request-id"]
    assert odd != "bad id with spaces"
    assert server.log_path is not None
    entries = []
    for line in server.log_path.read_text().splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))  # every structured line is one JSON object
    access = [e for e in entries if e.get("logger") == "devboxd.access" and e.get("request_id") == given]
    assert len(access) == 1
    assert access[0]["route"] == "/v1/devboxes" and access[0]["status"] == 200
    assert access[0]["level"] == "info" and "duration_ms" in access[0]


def test_text_log_format(server_factory) -> None:  # type: ignore[no-untyped-def]
    plain = server_factory(DEVBOX_LOG_FORMAT="text")
    httpx.get(f"{plain.base_url}/health", headers={"X-Request-Id": "plain-1"})
    assert plain.log_path is not None
    lines = plain.log_path.read_text().splitlines()
    assert any("devboxd.access [plain-1]: GET /health 200" in line for line in lines)
