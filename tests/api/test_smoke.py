"""The fixture server answers: health, auth, and one devbox through its whole life."""

from __future__ import annotations

from tests.conftest import wait_for


def test_health_is_ok(http):
    response = http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "docker": "ok", "image": "ready"}


def test_create_then_shutdown(http, devbox_factory):
    devbox = devbox_factory(launch_parameters={"launch_commands": ["echo hi"]})
    assert devbox["status"] == "running"
    done = http.post(f"/v1/devboxes/{devbox['id']}/shutdown").json()
    assert done["status"] == "shutdown"
    assert wait_for(http, devbox["id"], ["shutdown"])["shutdown_reason"] == "api_shutdown"
