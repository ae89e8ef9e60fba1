"""The response validator itself (tests/contract/spec.py), on hand-made responses: it must catch what the
contract tests rely on it to catch, or their green means nothing."""

from __future__ import annotations

from typing import Any

import httpx

from tests.contract.spec import SpecValidator


def _response(method: str, path: str, status: int, body: Any, content_type: str = "application/json") -> httpx.Response:
    request = httpx.Request(method, f"http://test{path}")
    if content_type == "application/json":
        return httpx.Response(status, json=body, request=request)
    return httpx.Response(status, content=body, headers={"content-type": content_type}, request=request)


def _execution(**overrides: Any) -> dict[str, Any]:
    return {"devbox_id": "dbx_1", "execution_id": "exe_1", "status": "completed", "stdout": None, **overrides}


def _problems(response: httpx.Response) -> list[str]:
    return [f.problem for f in SpecValidator().check(response)]


def test_a_conforming_body_with_nulls_passes() -> None:
    assert _problems(_response("GET", "/v1/devboxes/dbx_1/executions/exe_1", 200, _execution(exit_status=None))) == []


def test_missing_required_wrong_enum_extra_field_and_wrong_type_are_caught() -> None:
    path = "/v1/devboxes/dbx_1/executions/exe_1"
    body = _execution(status="finished", surprise=1, exit_status="0")
    del body["devbox_id"]
    problems = " | ".join(_problems(_response("GET", path, 200, body)))
    assert "'devbox_id' is a required property" in problems
    assert "'finished' is not one of" in problems
    assert "Additional properties are not allowed ('surprise'" in problems
    assert "'0' is not of type 'integer', 'null'" in problems


def test_nullable_ref_and_number_erratum() -> None:
    status = {"status": "in_progress", "snapshot": None, "error_message": None}
    assert _problems(_response("GET", "/v1/devboxes/disk_snapshots/snp_1/status", 200, status)) == []
    view: dict[str, Any] = {"state_transitions": [{"status": "running", "transition_time_ms": 17}]}
    problems = _problems(_response("GET", "/v1/devboxes/dbx_1", 200, view))
    assert not any("transition_time_ms" in p for p in problems)  # a number, whatever the spec's `Number` says
    assert any("'id' is a required property" in p for p in problems)


def test_fixed_paths_win_over_templates_and_statuses_are_checked() -> None:
    validator = SpecValidator()
    assert validator.operation_for("GET", "/v1/devboxes/disk_snapshots") is not None
    assert validator.operation_for("GET", "/v1/devboxes/disk_snapshots").operation_id == "getDevboxDiskSnapshotList"  # type: ignore[union-attr]
    assert validator.operation_for("GET", "/v1/devboxes/metadata/keys").operation_id == "getDevboxMetadataKeys"  # type: ignore[union-attr]
    assert _problems(_response("GET", "/v1/devboxes/dbx_1", 418, {"error": "x"})) == ["status 418 is not documented"]
    assert _problems(_response("GET", "/v1/devboxes/dbx_1", 500, {"error": "x"}))[0] == "server error"
    assert _problems(_response("POST", "/v1/devboxes/dbx_1/read_file_contents", 200, b"\xff", "text/plain")) == [
        "body is not text"
    ]
    wrong_type = _response("POST", "/v1/devboxes/dbx_1/keep_alive", 200, b"{}", "text/plain")
    assert "content-type" in _problems(wrong_type)[0]
