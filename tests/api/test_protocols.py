"""One port speaks HTTP/1.1 and cleartext HTTP/2 with prior knowledge (the TypeScript client's default);
the contract is served; errors are JSON."""

from __future__ import annotations

import httpx
import yaml

from tests.conftest import API_KEY, ServerProcess


def test_http1_and_h2c_prior_knowledge_on_one_port(server: ServerProcess) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=server.base_url, headers=headers) as h1:
        response = h1.get("/v1/devboxes")
        assert (response.http_version, response.status_code) == ("HTTP/1.1", 200)
    with httpx.Client(base_url=server.base_url, headers=headers, http1=False, http2=True) as h2:
        response = h2.get("/v1/devboxes")
        assert (response.http_version, response.status_code) == ("HTTP/2", 200)
        missing = h2.post("/v1/devboxes/dbx_missing/wait_for_status", json={"statuses": ["running"]})
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_openapi_yaml_is_served_without_auth(server: ServerProcess) -> None:
    response = httpx.get(f"{server.base_url}/openapi.yaml")
    assert response.status_code == 200
    spec = yaml.safe_load(response.text)
    assert spec["openapi"] == "3.0.3"
    assert "/v1/devboxes/{id}/wait_for_status" in spec["paths"]


def test_unknown_route_is_a_json_404(server: ServerProcess) -> None:
    response = httpx.get(f"{server.base_url}/v1/nothing-here", headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
