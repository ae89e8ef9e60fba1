"""GET /v1/devboxes/{id}/logs: setup commands, entrypoint output, executions and server notes."""

from __future__ import annotations

import httpx

from tests.conftest import OTHER_API_KEY, ServerProcess, wait_for


def test_setup_commands_and_executions_are_logged(http: httpx.Client, devbox_factory) -> None:
    devbox = devbox_factory(launch_parameters={"launch_commands": ["echo first-step", "echo second-step"]})
    execution = http.post(f"/v1/devboxes/{devbox['id']}/execute_async", json={"command": "exit 4"}).json()
    http.post(
        f"/v1/devboxes/{devbox['id']}/executions/{execution['execution_id']}/wait_for_status",
        json={"statuses": ["completed"]},
    )

    logs = http.get(f"/v1/devboxes/{devbox['id']}/logs").json()["logs"]
    setup = [entry for entry in logs if entry["source"] == "setup_commands"]
    assert [(e["cmd"], e["exit_code"], e["message"]) for e in setup] == [
        ("echo first-step", 0, "first-step\n"),
        ("echo second-step", 0, "second-step\n"),
    ]
    only_exec = http.get(f"/v1/devboxes/{devbox['id']}/logs", params={"execution_id": execution["execution_id"]})
    entries = only_exec.json()["logs"]
    assert [(e["source"], e["cmd"], e["exit_code"], e["level"]) for e in entries] == [("exec", "exit 4", 4, "error")]
    assert all(isinstance(e["timestamp_ms"], int) for e in logs)


def test_failed_launch_command_output_is_kept(http: httpx.Client, devbox_factory) -> None:
    devbox = devbox_factory(launch_parameters={"launch_commands": ["echo about-to-fail >&2; exit 7"]})
    assert devbox["status"] == "failure"
    logs = http.get(f"/v1/devboxes/{devbox['id']}/logs").json()["logs"]
    assert any(e["exit_code"] == 7 and "about-to-fail" in e["message"] for e in logs)
    assert any("exited with status 7" in (e["message"] or "") for e in logs)


def test_entrypoint_output_is_logged_when_it_exits(http: httpx.Client, devbox_factory) -> None:
    devbox = devbox_factory(entrypoint="echo from-entrypoint; sleep 1")
    ended = wait_for(http, devbox["id"], ["shutdown", "failure"])
    assert (ended["status"], ended["shutdown_reason"]) == ("shutdown", "entrypoint_exit")
    logs = http.get(f"/v1/devboxes/{devbox['id']}/logs").json()["logs"]
    entrypoint = [e for e in logs if e["source"] == "entrypoint"]
    assert entrypoint[0]["message"] == "from-entrypoint"
    assert entrypoint[-1]["exit_code"] == 0


def test_capped_size_is_explained_in_the_log(http: httpx.Client, devbox_factory) -> None:
    devbox = devbox_factory(launch_parameters={"resource_size_request": "XX_LARGE"})
    assert devbox["status"] == "running"
    logs = http.get(f"/v1/devboxes/{devbox['id']}/logs").json()["logs"]
    assert any("8 vCPU requested" in (e["message"] or "") for e in logs)


def test_logs_of_unknown_or_foreign_devboxes_are_404(server: ServerProcess, http: httpx.Client, devbox_factory) -> None:
    assert http.get("/v1/devboxes/dbx_nope/logs").status_code == 404
    devbox = devbox_factory(wait=False)
    other = httpx.get(
        f"{server.base_url}/v1/devboxes/{devbox['id']}/logs", headers={"Authorization": f"Bearer {OTHER_API_KEY}"}
    )
    assert other.status_code == 404
