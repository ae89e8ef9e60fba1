"""/health is 200 only when the database is migrated, Docker answers and the default image is ready."""

from __future__ import annotations

import httpx

from tests.conftest import API_KEY


def test_missing_image_makes_health_503_and_creates_fail_clearly(server_factory) -> None:
    srv = server_factory(expect_healthy=False, DEVBOX_DEFAULT_IMAGE="devboxd-test-missing:none")
    health = httpx.get(f"{srv.base_url}/health")
    assert health.status_code == 503
    assert health.json()["image"].startswith("missing: devboxd-test-missing:none")
    assert health.json()["docker"] == "ok" and health.json()["database"] == "ok"


def test_unreachable_docker_makes_health_503_not_a_crash(server_factory) -> None:
    srv = server_factory(expect_healthy=False, DOCKER_HOST="unix:///nonexistent/docker.sock")
    health = httpx.get(f"{srv.base_url}/health")
    assert health.status_code == 503 and health.json()["docker"] == "unavailable"
    create = httpx.post(f"{srv.base_url}/v1/devboxes", headers={"Authorization": f"Bearer {API_KEY}"}, json={})
    assert create.status_code == 503
    assert create.json()["error"] == "backend_unavailable"


def test_generated_key_is_printed_stored_and_required(server_factory) -> None:
    srv = server_factory(DEVBOX_API_KEYS="")
    key = (srv.data_dir / "api_key").read_text().strip()
    assert key in srv.log_tail()
    assert httpx.get(f"{srv.base_url}/v1/devboxes").status_code == 401
    ok = httpx.get(f"{srv.base_url}/v1/devboxes", headers={"Authorization": f"Bearer {key}"})
    assert ok.status_code == 200 and ok.json()["devboxes"] == []
