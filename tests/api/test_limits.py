"""Limits on what a client may send: body size (413, uploads excepted) and metadata size (400)."""

from __future__ import annotations

import httpx

from tests.conftest import API_KEY


def test_oversized_body_is_413(server_factory):
    server = server_factory(DEVBOX_MAX_BODY_BYTES="4096")
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as http:
        response = http.post("/v1/devboxes", json={"name": "x", "metadata": {"k": "v" * 5000}})
        assert response.status_code == 413, response.text
        assert response.json()["error"] == "too_large"

        def chunks():
            for _ in range(10):
                yield b" " * 1000  # 10 kB without a Content-Length: counted as it arrives

        chunked = http.post("/v1/devboxes", content=chunks(), headers={"content-type": "application/json"})
        assert chunked.status_code == 413, chunked.text


def test_uploads_are_not_limited_by_the_body_limit(server_factory):
    server = server_factory(DEVBOX_MAX_BODY_BYTES="4096")
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as http:
        devbox = http.post("/v1/devboxes/create_and_await_running", json={}).json()
        try:
            payload = b"x" * 100_000
            response = http.post(
                f"/v1/devboxes/{devbox['id']}/upload_file",
                data={"path": "big.bin"},
                files={"file": ("big.bin", payload)},
            )
            assert response.status_code == 200, response.text
            size = http.post(f"/v1/devboxes/{devbox['id']}/execute_sync", json={"command": "stat -c %s big.bin"})
            assert size.json()["stdout"].strip() == "100000"
        finally:
            http.post(f"/v1/devboxes/{devbox['id']}/shutdown")


def test_metadata_limits(http, module_devbox):
    too_many = {f"k{i}": "v" for i in range(65)}
    for metadata in (too_many, {"k" * 257: "v"}, {"k": "v" * 4097}):
        created = http.post("/v1/devboxes", json={"metadata": metadata})
        assert created.status_code == 400, created.text
        updated = http.post(f"/v1/devboxes/{module_devbox}", json={"metadata": metadata})
        assert updated.status_code == 400, updated.text
        snapshot = http.post(f"/v1/devboxes/{module_devbox}/snapshot_disk", json={"metadata": metadata})
        assert snapshot.status_code == 400, snapshot.text
