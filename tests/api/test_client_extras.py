"""Endpoints the Runloop clients call beyond the seed spec that this server answers without a full
feature behind them: evictions/watch (an SSE stream that stays quiet: nothing is ever evicted) and the
SSH, gateway and MCP token endpoints (a clear 400, never a bare 404 or a 500)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import API_KEY


def test_evictions_watch_is_an_open_event_stream(server):
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with (
        httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as client,
        client.stream("GET", "/v1/devboxes/evictions/watch") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")


def test_evictions_watch_needs_a_key(server):
    response = httpx.get(f"{server.base_url}/v1/devboxes/evictions/watch", timeout=30)
    assert response.status_code == 401


@pytest.mark.parametrize("endpoint", ["create_gateway_token", "create_mcp_token"])
def test_unbuilt_token_endpoints_answer_a_clear_400(http, module_devbox, endpoint):
    response = http.post(f"/v1/devboxes/{module_devbox}/{endpoint}")
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "not_supported"
    assert "not supported" in response.json()["detail"]
    unknown = http.post(f"/v1/devboxes/dbx_unknown/{endpoint}")
    assert unknown.status_code == 404
