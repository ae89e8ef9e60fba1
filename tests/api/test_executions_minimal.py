"""Running commands: execute_sync, execute_async + polling, execute with command_id (idempotent) and
optimistic_timeout, last_n truncation, and the options this server refuses."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import API_KEY, OTHER_API_KEY, wait_for


@pytest.fixture(scope="module")
def devbox_id(module_devbox: str) -> str:
    return module_devbox


def sync(http: httpx.Client, devbox_id: str, command: str) -> dict[str, Any]:
    response = http.post(f"/v1/devboxes/{devbox_id}/execute_sync", json={"command": command})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_execute_sync_separates_stdout_stderr_and_exit_status(shared_http, devbox_id):
    result = sync(shared_http, devbox_id, "echo out; echo err >&2; exit 3")
    assert result["devbox_id"] == devbox_id
    assert result["stdout"] == "out\n"
    assert result["stderr"] == "err\n"
    assert result["exit_status"] == 3


def test_execute_sync_runs_as_user_in_home_with_bash(shared_http, devbox_id):
    result = sync(shared_http, devbox_id, 'whoami; pwd; echo "$((6 * 7))"; [[ -n "$BASH_VERSION" ]] && echo bash')
    assert result["stdout"] == "user\n/home/user\n42\nbash\n"
    assert result["stderr"] == ""
    assert result["exit_status"] == 0


def test_execute_async_then_poll_until_completed(shared_http, devbox_id):
    started = shared_http.post(
        f"/v1/devboxes/{devbox_id}/execute_async", json={"command": "sleep 1; echo done; echo oops >&2; exit 4"}
    )
    assert started.status_code == 200, started.text
    execution = started.json()
    assert execution["devbox_id"] == devbox_id
    assert execution["execution_id"].startswith("exe_")
    assert execution["status"] in ("queued", "running")
    assert execution["exit_status"] is None

    url = f"/v1/devboxes/{devbox_id}/executions/{execution['execution_id']}"
    deadline = time.monotonic() + 20
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = shared_http.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] == "completed":
            break
        assert body["exit_status"] is None
        time.sleep(0.2)
    assert body["status"] == "completed"
    assert body["exit_status"] == 4
    assert body["stdout"] == "done\n"
    assert body["stderr"] == "oops\n"
    assert body["stdout_truncated"] is False
    assert body["execution_id"] == execution["execution_id"]


def test_execution_wait_for_status(shared_http, devbox_id):
    started = shared_http.post(f"/v1/devboxes/{devbox_id}/execute_async", json={"command": "sleep 1; echo waited"})
    assert started.status_code == 200, started.text
    eid = started.json()["execution_id"]
    url = f"/v1/devboxes/{devbox_id}/executions/{eid}/wait_for_status"

    running = shared_http.post(url, json={"statuses": ["running"], "timeout_seconds": 5})
    assert running.status_code == 200, running.text
    assert running.json()["status"] == "running"

    t0 = time.monotonic()
    done = shared_http.post(url, json={"statuses": ["completed"], "timeout_seconds": 20})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
    assert done.json()["stdout"] == "waited\n"
    assert done.json()["exit_status"] == 0
    assert time.monotonic() - t0 < 10


def test_execution_wait_for_status_times_out_and_validates(shared_http, devbox_id):
    started = shared_http.post(f"/v1/devboxes/{devbox_id}/execute_async", json={"command": "sleep 3"})
    eid = started.json()["execution_id"]
    url = f"/v1/devboxes/{devbox_id}/executions/{eid}/wait_for_status"
    t0 = time.monotonic()
    timed_out = shared_http.post(url, json={"statuses": ["completed"], "timeout_seconds": 0.5})
    assert timed_out.status_code == 408, timed_out.text
    assert 0.4 <= time.monotonic() - t0 < 3
    bad = shared_http.post(url, json={"statuses": ["finished"]})
    assert bad.status_code == 400, bad.text
    assert set(bad.json()) == {"error", "detail"}
    empty = shared_http.post(url, json={"statuses": []})
    assert empty.status_code == 400, empty.text
    assert shared_http.post(url, json={"statuses": ["completed"], "timeout_seconds": 10}).status_code == 200


def test_execute_with_same_command_id_runs_once(shared_http, devbox_id):
    command_id = str(uuid.uuid4())
    counter = f"/home/user/count-{command_id}"
    body = {"command_id": command_id, "command": f"echo x >> {counter}", "optimistic_timeout": 10}
    first = shared_http.post(f"/v1/devboxes/{devbox_id}/execute", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "completed"
    assert first.json()["exit_status"] == 0
    second = shared_http.post(f"/v1/devboxes/{devbox_id}/execute", json=body)
    assert second.status_code == 200, second.text
    assert second.json()["execution_id"] == first.json()["execution_id"]
    assert second.json()["status"] == "completed"
    assert sync(shared_http, devbox_id, f"wc -l < {counter}")["stdout"].strip() == "1"


def test_execute_same_command_id_different_command_is_rejected(shared_http, devbox_id):
    command_id = str(uuid.uuid4())
    url = f"/v1/devboxes/{devbox_id}/execute"
    first = shared_http.post(url, json={"command_id": command_id, "command": "echo a", "optimistic_timeout": 5})
    assert first.status_code == 200, first.text
    other = shared_http.post(url, json={"command_id": command_id, "command": "echo b", "optimistic_timeout": 5})
    assert other.status_code in (400, 409), other.text


@pytest.mark.parametrize("command_id", ["not-a-uuid", "12345", ""])
def test_execute_with_non_uuid_command_id_is_400(shared_http, devbox_id, command_id):
    response = shared_http.post(
        f"/v1/devboxes/{devbox_id}/execute", json={"command_id": command_id, "command": "echo nope"}
    )
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error", "detail"}


def test_execute_optimistic_timeout_returns_running(shared_http, devbox_id):
    t0 = time.monotonic()
    response = shared_http.post(
        f"/v1/devboxes/{devbox_id}/execute",
        json={"command_id": str(uuid.uuid4()), "command": "sleep 5", "optimistic_timeout": 1},
    )
    elapsed = time.monotonic() - t0
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "running"
    assert response.json()["exit_status"] is None
    assert 0.9 <= elapsed < 4, elapsed


def test_get_execution_last_n(shared_http, devbox_id):
    response = shared_http.post(
        f"/v1/devboxes/{devbox_id}/execute",
        json={
            "command_id": str(uuid.uuid4()),
            "command": "for i in $(seq 1 10); do echo line$i; done",
            "optimistic_timeout": 10,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"
    url = f"/v1/devboxes/{devbox_id}/executions/{response.json()['execution_id']}"

    cut = shared_http.get(url, params={"last_n": 3}).json()
    assert cut["stdout"] == "line8\nline9\nline10\n"
    assert cut["stdout_truncated"] is True
    assert cut["stderr_truncated"] is False

    whole = shared_http.get(url).json()
    assert whole["stdout"].splitlines() == [f"line{i}" for i in range(1, 11)]
    assert whole["stdout_truncated"] is False

    exact = shared_http.get(url, params={"last_n": 10}).json()
    assert exact["stdout_truncated"] is False
    assert len(exact["stdout"].splitlines()) == 10

    negative = shared_http.get(url, params={"last_n": -1})
    assert 400 <= negative.status_code < 500


def test_other_tenant_cannot_read_executions(server, shared_http, devbox_id):
    started = shared_http.post(f"/v1/devboxes/{devbox_id}/execute_async", json={"command": "echo secret"})
    eid = started.json()["execution_id"]
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {OTHER_API_KEY}"}) as other:
        assert other.get(f"/v1/devboxes/{devbox_id}/executions/{eid}").status_code == 404
        waited = other.post(
            f"/v1/devboxes/{devbox_id}/executions/{eid}/wait_for_status",
            json={"statuses": ["completed"], "timeout_seconds": 1},
        )
        assert waited.status_code == 404
        again = other.post(
            f"/v1/devboxes/{devbox_id}/execute", json={"command_id": str(uuid.uuid4()), "command": "echo hi"}
        )
        assert again.status_code == 404


def test_running_execution_is_ended_by_shutdown(http, devbox_factory):
    devbox = devbox_factory()
    started = http.post(f"/v1/devboxes/{devbox['id']}/execute_async", json={"command": "sleep 60"})
    assert started.status_code == 200, started.text
    eid = started.json()["execution_id"]
    url = f"/v1/devboxes/{devbox['id']}/executions/{eid}"
    assert http.post(url + "/wait_for_status", json={"statuses": ["running"], "timeout_seconds": 5}).status_code == 200
    assert http.post(f"/v1/devboxes/{devbox['id']}/shutdown").status_code == 200
    done = http.post(url + "/wait_for_status", json={"statuses": ["completed"], "timeout_seconds": 10})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
    assert done.json()["exit_status"] not in (None, 0)
    # And it stays completed once the exec stream has wound down.
    time.sleep(0.5)
    assert http.get(url).json()["exit_status"] not in (None, 0)


def test_running_execution_is_ended_by_suspend(http, devbox_factory):
    devbox = devbox_factory()
    started = http.post(f"/v1/devboxes/{devbox['id']}/execute_async", json={"command": "sleep 60"})
    eid = started.json()["execution_id"]
    url = f"/v1/devboxes/{devbox['id']}/executions/{eid}"
    assert http.post(url + "/wait_for_status", json={"statuses": ["running"], "timeout_seconds": 5}).status_code == 200
    assert http.post(f"/v1/devboxes/{devbox['id']}/suspend").status_code == 200
    wait_for(http, devbox["id"], ["suspended"])
    done = http.post(url + "/wait_for_status", json={"statuses": ["completed"], "timeout_seconds": 10})
    assert done.status_code == 200, done.text
    assert done.json()["exit_status"] not in (None, 0)


def test_execution_of_another_devbox_is_404(shared_http, devbox_id, http, devbox_factory):
    other = devbox_factory()
    started = http.post(f"/v1/devboxes/{other['id']}/execute_async", json={"command": "echo elsewhere"})
    eid = started.json()["execution_id"]
    assert http.get(f"/v1/devboxes/{other['id']}/executions/{eid}").status_code == 200
    response = shared_http.get(f"/v1/devboxes/{devbox_id}/executions/{eid}")
    assert response.status_code == 404, response.text


def test_concurrent_execute_with_same_command_id_runs_once(shared_http, devbox_id):
    command_id = str(uuid.uuid4())
    counter = f"/home/user/race-{command_id}"
    body = {"command_id": command_id, "command": f"echo x >> {counter}", "optimistic_timeout": 10}
    results: list[httpx.Response] = []

    def call() -> None:
        results.append(shared_http.post(f"/v1/devboxes/{devbox_id}/execute", json=body))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in results] == [200] * 6, [r.text for r in results]
    assert len({r.json()["execution_id"] for r in results}) == 1
    assert sync(shared_http, devbox_id, f"wc -l < {counter}")["stdout"].strip() == "1"


def test_execute_nan_optimistic_timeout_is_rejected_not_held_forever(server_factory):
    """On a private server: a NaN that reaches the event loop's timers must not disturb the shared one."""
    srv = server_factory()
    with httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as client:
        devbox = client.post("/v1/devboxes", json={}).json()["id"]
        try:
            wait_for(client, devbox, ["running"])
            command_id = str(uuid.uuid4()).encode()
            body = b'{"command_id": "%s", "command": "sleep 12", "optimistic_timeout": NaN}' % command_id
            started = time.monotonic()
            try:
                response = client.post(
                    f"/v1/devboxes/{devbox}/execute",
                    content=body,
                    headers={"Content-Type": "application/json"},
                    timeout=6,
                )
            except httpx.ReadTimeout:
                pytest.fail(f"optimistic_timeout NaN: execute still held after {time.monotonic() - started:.1f} s")
            assert response.status_code in (400, 422), response.text
        finally:
            client.post(f"/v1/devboxes/{devbox}/shutdown")
