"""Devboxes that end by themselves: keep_alive_time_seconds, after_idle / lifecycle.after_idle, and
deadlines that survive a server restart. Short timers; every wait polls the API, nothing sleeps on a guess."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.conftest import API_KEY, wait_for


def _create(http: httpx.Client, launch: dict[str, Any]) -> str:
    response = http.post("/v1/devboxes", json={"launch_parameters": launch})
    assert response.status_code == 200, response.text
    devbox_id: str = response.json()["id"]
    assert wait_for(http, devbox_id, ["running", "failure"])["status"] == "running"
    return devbox_id


def test_keep_alive_timeout_shuts_the_devbox_down(http):
    devbox_id = _create(http, {"keep_alive_time_seconds": 2})
    ended = wait_for(http, devbox_id, ["shutdown", "failure"], seconds=60)
    assert ended["status"] == "shutdown"
    assert ended["shutdown_reason"] == "keep_alive_timeout"


def test_keep_alive_calls_keep_the_devbox_running(http):
    devbox_id = _create(http, {"keep_alive_time_seconds": 5})
    try:
        until = time.monotonic() + 8  # longer than the keep-alive time: only the calls keep it alive
        while time.monotonic() < until:
            assert http.post(f"/v1/devboxes/{devbox_id}/keep_alive").status_code == 200
            assert http.get(f"/v1/devboxes/{devbox_id}").json()["status"] == "running"
            time.sleep(1)
        ended = wait_for(http, devbox_id, ["shutdown", "failure"], seconds=60)
        assert ended["shutdown_reason"] == "keep_alive_timeout"
    finally:
        http.post(f"/v1/devboxes/{devbox_id}/shutdown")


@pytest.mark.parametrize("where", ["after_idle", "lifecycle"])
def test_idle_devbox_is_suspended(http, where):
    policy = {"idle_time_seconds": 2, "on_idle": "suspend"}
    launch = {"after_idle": policy} if where == "after_idle" else {"lifecycle": {"after_idle": policy}}
    devbox_id = _create(http, launch)
    try:
        assert wait_for(http, devbox_id, ["suspended", "failure", "shutdown"])["status"] == "suspended"
        view = http.get(f"/v1/devboxes/{devbox_id}").json()
        assert view["launch_parameters"][where]  # echoed back as sent
    finally:
        http.post(f"/v1/devboxes/{devbox_id}/shutdown")


def test_idle_devbox_is_shut_down_with_reason_idle_and_keep_alive_is_ignored(http):
    devbox_id = _create(
        http, {"after_idle": {"idle_time_seconds": 2, "on_idle": "shutdown"}, "keep_alive_time_seconds": 1}
    )
    ended = wait_for(http, devbox_id, ["shutdown", "failure"])
    assert ended["shutdown_reason"] == "idle"


def test_a_running_command_is_activity(http):
    devbox_id = _create(http, {"after_idle": {"idle_time_seconds": 2, "on_idle": "shutdown"}})
    try:
        started = http.post(f"/v1/devboxes/{devbox_id}/execute_async", json={"command": "sleep 5; echo done"})
        assert started.status_code == 200, started.text
        execution_id = started.json()["execution_id"]
        while True:
            polled = http.post(
                f"/v1/devboxes/{devbox_id}/executions/{execution_id}/wait_for_status",
                json={"statuses": ["completed"], "timeout_seconds": 10},
            )
            if polled.status_code == 200:
                break
            assert polled.status_code == 408
        assert polled.json()["stdout"] == "done\n"
        assert polled.json()["exit_status"] == 0  # not ended by an idle shutdown under it
        assert wait_for(http, devbox_id, ["shutdown", "failure"])["shutdown_reason"] == "idle"
    finally:
        http.post(f"/v1/devboxes/{devbox_id}/shutdown")


@pytest.mark.parametrize(
    "launch",
    [
        {
            "after_idle": {"idle_time_seconds": 5, "on_idle": "shutdown"},
            "lifecycle": {"after_idle": {"idle_time_seconds": 6, "on_idle": "shutdown"}},
        },
        {"after_idle": {"idle_time_seconds": 0, "on_idle": "shutdown"}},
        {"after_idle": {"idle_time_seconds": 5, "on_idle": "hibernate"}},
        {"keep_alive_time_seconds": 172_801},
        {"keep_alive_time_seconds": 0},
        {"lifecycle": {"resume_triggers": {"http": True}}},
    ],
)
def test_bad_timer_settings_are_rejected(http, launch):
    response = http.post("/v1/devboxes", json={"launch_parameters": launch})
    assert 400 <= response.status_code < 500, response.text
    assert "error" in response.json()


def test_same_policy_in_both_places_is_accepted(http, devbox_factory):
    policy = {"idle_time_seconds": 600, "on_idle": "suspend"}
    devbox = devbox_factory(launch_parameters={"after_idle": policy, "lifecycle": {"after_idle": policy}})
    assert devbox["status"] == "running"


def test_deadline_survives_a_server_restart(server_factory):
    server = server_factory()
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as http:
        devbox_id = _create(http, {"keep_alive_time_seconds": 6})
    server.stop(kill=True)  # the deadline passes while no server runs
    time.sleep(6)
    server.start()
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as http:
        ended = wait_for(http, devbox_id, ["shutdown", "failure"])
        assert ended["shutdown_reason"] == "keep_alive_timeout"
