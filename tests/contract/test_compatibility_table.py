"""docs/COMPATIBILITY.md cannot drift: its operation rows are exactly openapi.yaml's operations, its
parameter rows exactly the create/launch parameters the spec's schemas define (fields, nested fields,
mount variants and enum values), and what it claims is what a running server does: every "rejected with
400" row's example gets a 400 in the project's error shape, every other example a 200."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.contract.spec import load_spec, spec_operations
from tests.contract.test_routes import CLIENT_EXTRAS

TABLE_PATH = Path(__file__).resolve().parents[2] / "docs" / "COMPATIBILITY.md"
SUPPORTED = "supported"
DIFFERENT = "supported with differences"
REJECTED = "rejected with 400"
STATUSES = (SUPPORTED, DIFFERENT, REJECTED)
CREATE_SCHEMA = "DevboxCreateParameters"


@dataclass(frozen=True)
class Row:
    cells: dict[str, str]
    line: int

    def __getitem__(self, column: str) -> str:
        return self.cells[column]


def _cells(line: str) -> list[str]:
    """A Markdown table line's cells, code spans unwrapped (`\\|` is a literal pipe)."""
    parts = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [part.strip().replace("\\|", "|").strip("`") for part in parts]


def _table(heading: str) -> list[Row]:
    """The first table after `## heading`, as rows keyed by the header's column names."""
    lines = TABLE_PATH.read_text().splitlines()
    start = lines.index(f"## {heading}")
    rows: list[Row] = []
    header: list[str] | None = None
    for number, line in enumerate(lines[start + 1 :], start=start + 2):
        if line.startswith("## "):
            break
        if not line.startswith("|"):
            if header is not None:
                break
            continue
        cells = _cells(line)
        if header is None:
            header = cells
        elif not set(line) <= set("|-: "):
            assert len(cells) == len(header), f"line {number}: {len(cells)} cells, header has {len(header)}"
            rows.append(Row(dict(zip(header, cells, strict=True)), number))
    assert rows, f"no table under '## {heading}' in {TABLE_PATH}"
    return rows


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    schemas: dict[str, Any] = load_spec()["components"]["schemas"]
    while "$ref" in node:
        node = schemas[node["$ref"].rsplit("/", 1)[-1]]
    return node


def _parameters_of(node: dict[str, Any], prefix: str = "", skip: str | None = None) -> list[str]:
    """Every parameter name under an object schema: `a.b`, `a[].b` (array elements), `a.*.b` (map
    values), `a[kind]` / `a[kind].b` (discriminated variants, their `type` left out), `a=v` (enum values)."""
    names: list[str] = []
    for field, raw in _resolve(node).get("properties", {}).items():
        if field == skip:
            continue
        name = prefix + field
        names.append(name)
        names += _inside(_resolve(raw), name)
    return names


def _inside(schema: dict[str, Any], name: str) -> list[str]:
    if "enum" in schema:
        return [f"{name}={value}" for value in schema["enum"]]
    if "properties" in schema:
        return _parameters_of(schema, f"{name}.")
    if schema.get("type") == "array":
        items = _resolve(schema["items"])
        if "discriminator" in items:
            tag = items["discriminator"]["propertyName"]
            names = []
            for kind, ref in items["discriminator"]["mapping"].items():
                names.append(f"{name}[{kind}]")
                names += _parameters_of({"$ref": ref}, f"{name}[{kind}].", skip=tag)
            return names
        return _inside(items, f"{name}[]") if "properties" not in items else _parameters_of(items, f"{name}[].")
    values = schema.get("additionalProperties")
    if isinstance(values, dict) and "properties" in _resolve(values):
        return _parameters_of(values, f"{name}.*.")
    return []


def _spec_parameters() -> list[str]:
    return _parameters_of({"$ref": f"#/components/schemas/{CREATE_SCHEMA}"})


# ----- the table against the spec (no server) ----------------------------------------------------------


def test_every_row_has_a_known_status_and_says_why_when_it_is_not_plain_support() -> None:
    problems = []
    for heading, label in (
        ("Operations", "operationId"),
        ("Create and launch parameters", "Parameter"),
        ("Beyond the spec", "Path"),
    ):
        for row in _table(heading):
            if row["Status"] not in STATUSES:
                problems.append(f"line {row.line} ({row[label]}): status {row['Status']!r}, not one of {STATUSES}")
            elif row["Status"] != SUPPORTED and not row["Differences / why"]:
                problems.append(f"line {row.line} ({row[label]}): '{row['Status']}' without saying what or why")
    assert not problems, "\n".join(problems)


def test_operations_table_lists_exactly_the_spec_operations_once_each() -> None:
    spec = {(op.method, op.template, op.operation_id) for op in spec_operations()}
    rows = Counter((row["Method"], row["Path"], row["operationId"]) for row in _table("Operations"))
    missing = sorted(spec - set(rows))
    unknown = sorted(set(rows) - spec)
    repeated = sorted(key for key, count in rows.items() if count > 1)
    assert not (missing or unknown or repeated), f"missing: {missing}\nnot in the spec: {unknown}\ntwice: {repeated}"


def test_parameter_table_lists_exactly_the_create_and_launch_parameters_once_each() -> None:
    spec = _spec_parameters()
    assert "launch_parameters.lifecycle.resume_triggers.http" in spec and "mounts[file_mount].target" in spec
    rows = Counter(row["Parameter"] for row in _table("Create and launch parameters"))
    missing = [name for name in spec if name not in rows]
    unknown = sorted(set(rows) - set(spec))
    repeated = sorted(name for name, count in rows.items() if count > 1)
    assert not (missing or unknown or repeated), f"missing: {missing}\nnot in the spec: {unknown}\ntwice: {repeated}"


def test_beyond_the_spec_table_holds_the_client_extras_and_no_spec_operation() -> None:
    rows = {(row["Method"], row["Path"]) for row in _table("Beyond the spec")}
    spec = {(op.method, op.template) for op in spec_operations()}
    assert not rows & spec, f"spec operations belong in the Operations table: {sorted(rows & spec)}"
    missing = [extra for extra in CLIENT_EXTRAS if extra not in rows]
    assert not missing, f"client extras without a row: {missing}"


def test_every_rejected_parameter_row_has_an_example_and_every_example_is_a_json_object() -> None:
    problems = []
    for row in _table("Create and launch parameters"):
        example = row["Checked with"]
        if not example:
            if row["Status"] == REJECTED:
                problems.append(f"line {row.line} ({row['Parameter']}): rejected, but no example to check it")
            continue
        try:
            if not isinstance(json.loads(example), dict):
                problems.append(f"line {row.line}: the example is not a JSON object")
        except ValueError as exc:
            problems.append(f"line {row.line}: the example is not JSON ({exc})")
    assert not problems, "\n".join(problems)
    supported_examples = [
        row for row in _table("Create and launch parameters") if row["Status"] != REJECTED and row["Checked with"]
    ]
    assert len(supported_examples) >= 8, "keep a sample of supported parameters checked against the server"


# ----- the table against a running server ------------------------------------------------------------


def _assert_refused(response: httpx.Response, what: str, names: list[str]) -> None:
    """A 400 in the project's error shape whose message names one of `names`."""
    assert response.status_code == 400, f"{what}: expected 400, got {response.status_code} {response.text[:300]}"
    body = response.json()
    assert set(body) == {"error", "detail"}, f"{what}: not the error shape: {body}"
    assert isinstance(body["error"], str) and body["error"], f"{what}: {body}"
    assert isinstance(body["detail"], str) and body["detail"], f"{what}: {body}"
    detail = body["detail"].lower()
    assert any(name.lower() in detail for name in names), f"{what}: the 400 names none of {names}: {body['detail']}"


def _name_parts(parameter: str) -> list[str]:
    return [part for part in re.split(r"[.\[\]=*]+", parameter) if part]


@pytest.mark.docker
def test_rejected_parameters_are_refused_with_400(http: httpx.Client) -> None:
    for row in _table("Create and launch parameters"):
        if row["Status"] == REJECTED:
            response = http.post("/v1/devboxes", json=json.loads(row["Checked with"]))
            if response.status_code == 200:  # a wrong row must not leave a devbox behind
                http.post(f"/v1/devboxes/{response.json()['id']}/shutdown")
            _assert_refused(response, f"line {row.line} ({row['Parameter']})", _name_parts(row["Parameter"]))


@pytest.mark.docker
def test_sampled_supported_parameters_are_accepted(http: httpx.Client) -> None:
    """Accepted is all this checks (each devbox is shut down at once): what they do is tested elsewhere."""
    for row in _table("Create and launch parameters"):
        if row["Status"] == REJECTED or not row["Checked with"]:
            continue
        response = http.post("/v1/devboxes", json=json.loads(row["Checked with"]))
        if response.status_code == 200:
            assert http.post(f"/v1/devboxes/{response.json()['id']}/shutdown").status_code == 200
        assert response.status_code == 200, f"line {row.line} ({row['Parameter']}): {response.text[:300]}"


def _concrete(template: str, devbox_id: str) -> str:
    """A live devbox for `{id}` / `{devbox_id}`, so a refusal is the feature's and not the id's 404."""
    path = re.sub(r"\{(id|devbox_id)\}", devbox_id, template)
    return re.sub(r"\{[^}]+\}", "compat", path)


@pytest.mark.docker
def test_rejected_operations_are_refused_with_400(http: httpx.Client) -> None:
    rejected = [
        (row["Method"], row["Path"], row.line)
        for heading in ("Operations", "Beyond the spec")
        for row in _table(heading)
        if row["Status"] == REJECTED
    ]
    if not rejected:
        return
    created = http.post("/v1/devboxes", json={"name": "compatibility-table"})
    assert created.status_code == 200, created.text
    devbox_id = created.json()["id"]
    try:
        for method, template, line in rejected:
            response = http.request(method, _concrete(template, devbox_id), json={})
            words = [w for w in template.rsplit("/", 1)[-1].split("_") if w not in ("create", "token")]
            _assert_refused(response, f"line {line} ({method} {template})", words)
    finally:
        http.post(f"/v1/devboxes/{devbox_id}/shutdown")
