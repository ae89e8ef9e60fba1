"""openapi.yaml as something tests can check against: the operations it lists (method + path template) and a
validator that checks a real HTTP response against the schema the spec gives for that operation and status.

OpenAPI 3.0 is not JSON Schema: `nullable: true` is turned into a `null` alternative (also beside a `$ref`,
which is what the spec's authors mean by it), and the components are validated as JSON Schema 2020-12 with
`$ref`s resolved inside the spec. Formats are not asserted (the spec's int64/int32 are not JSON Schema formats).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import yaml
from jsonschema import Draft202012Validator

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


# Where openapi.yaml (generated from Runloop's Java models) says something no Runloop server or client does.
# `Number` is java.lang.Number rendered as an empty object; the API sends a JSON number (the Python client
# types it `object`, so it accepts either). Applied to what the validator and schemathesis check against.
SPEC_ERRATA: dict[str, Any] = {"Number": {"type": "number"}}


@cache
def load_spec() -> dict[str, Any]:
    """openapi.yaml with SPEC_ERRATA applied."""
    spec: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    spec["components"]["schemas"].update(SPEC_ERRATA)
    return spec


def normalize_template(path: str) -> str:
    """`/v1/devboxes/{id}/x` and `/v1/devboxes/{devbox_id}/x` are the same route."""
    return re.sub(r"\{[^}]+\}", "{}", path)


@dataclass(frozen=True)
class Operation:
    method: str  # upper case
    template: str
    operation_id: str
    spec: dict[str, Any]

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(self.template)) + "$")

    @property
    def literal_segments(self) -> int:
        """More literal segments = more specific (`/disk_snapshots/metadata/keys` beats `/{id}/...`)."""
        return sum(1 for part in self.template.split("/") if part and not part.startswith("{"))


def spec_operations() -> list[Operation]:
    ops = []
    for template, item in load_spec()["paths"].items():
        for method, op in item.items():
            if method in HTTP_METHODS:
                ops.append(Operation(method.upper(), template, op["operationId"], op))
    return ops


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema objects -> JSON Schema 2020-12 (nullable -> a null alternative)."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: to_json_schema(value) for key, value in node.items() if key not in ("nullable", "example")}
    if node.get("nullable") is True:
        if "$ref" in converted or "type" not in converted:
            return {"anyOf": [converted, {"type": "null"}]}
        converted["type"] = [converted["type"], "null"]
        if "enum" in converted and None not in converted["enum"]:
            converted["enum"] = [*converted["enum"], None]
    return converted


@cache
def _components() -> dict[str, Any]:
    return {"schemas": to_json_schema(load_spec()["components"]["schemas"])}


@cache
def validator_for(schema_json: str) -> Draft202012Validator:
    schema = to_json_schema(json.loads(schema_json))
    return Draft202012Validator({**schema, "components": _components()})


@dataclass
class Finding:
    """One way a response broke the contract."""

    operation: str
    request: str
    status: int
    problem: str
    schema_path: str
    body: str

    @property
    def kind(self) -> tuple[str, int, str]:
        """Findings of one kind differ only in the array index they were met at."""
        return (self.operation, self.status, self.schema_path)

    def __str__(self) -> str:
        return (
            f"{self.operation} ({self.request}) -> {self.status}: {self.problem} [schema: {self.schema_path}]"
            f"\n    body: {self.body}"
        )


def summarize(findings: list[Finding]) -> str:
    """One line (and one body) per kind of finding, with how often it was met."""
    counts: dict[tuple[str, int, str], int] = {}
    first: dict[tuple[str, int, str], Finding] = {}
    for finding in findings:
        counts[finding.kind] = counts.get(finding.kind, 0) + 1
        first.setdefault(finding.kind, finding)
    return "\n".join(f"{first[kind]} (x{count})" for kind, count in counts.items())


class SpecValidator:
    """Finds the spec operation of a request and checks its response: documented status, content type, and
    the JSON body against the status's schema. Collects findings instead of raising, so a scenario runs on."""

    def __init__(self) -> None:
        self.operations = sorted(spec_operations(), key=lambda op: -op.literal_segments)
        self.findings: list[Finding] = []
        self.seen: set[tuple[str, int]] = set()  # (operationId, status) pairs met

    def operation_for(self, method: str, path: str) -> Operation | None:
        return next((op for op in self.operations if op.method == method and op.pattern.match(path)), None)

    def check(self, response: httpx.Response) -> list[Finding]:
        request = response.request
        op = self.operation_for(request.method, request.url.path)
        if op is None:
            return []  # not a spec operation (e.g. /health, the SSE output streams): nothing to hold it to
        status = response.status_code
        self.seen.add((op.operation_id, status))
        described = f"{request.method} {request.url.path}"
        content_type = response.headers.get("content-type", "").split(";")[0].strip()
        body = "" if content_type == "text/event-stream" else response.text[:600]
        found: list[Finding] = []

        def add(problem: str, schema_path: str) -> None:
            found.append(Finding(op.operation_id, described, status, problem, schema_path, body))

        if status >= 500:
            add("server error", f"paths.{op.template}.{op.method.lower()}.responses")
        documented = op.spec["responses"].get(str(status)) or op.spec["responses"].get("default")
        if documented is None:
            add(f"status {status} is not documented", f"paths.{op.template}.{op.method.lower()}.responses")
        else:
            found.extend(self._check_content(op, described, status, documented, content_type, response, body))
        self.findings.extend(found)
        return found

    def _check_content(
        self,
        op: Operation,
        described: str,
        status: int,
        documented: dict[str, Any],
        content_type: str,
        response: httpx.Response,
        body: str,
    ) -> list[Finding]:
        where = f"paths.{op.template}.{op.method.lower()}.responses.{status}"
        content: dict[str, Any] = documented.get("content") or {}
        if not content:
            return []  # the spec gives no body for this status
        if content_type not in content:
            problem = f"content-type {content_type!r}, spec says {sorted(content)}"
            return [Finding(op.operation_id, described, status, problem, f"{where}.content", body)]
        schema = content[content_type].get("schema")
        if content_type != "application/json" or schema is None:
            if schema and schema.get("type") == "string" and schema.get("format") != "binary":
                try:
                    response.content.decode("utf-8")
                except UnicodeDecodeError:
                    return [Finding(op.operation_id, described, status, "body is not text", where, body)]
            return []
        try:
            payload = response.json()
        except ValueError:
            return [Finding(op.operation_id, described, status, "body is not JSON", where, body)]
        findings = []
        for error in validator_for(json.dumps(schema, sort_keys=True)).iter_errors(payload):
            instance_path = "/".join(str(part) for part in error.absolute_path) or "(root)"
            schema_path = "/".join(str(part) for part in error.absolute_schema_path)
            target = schema.get("$ref", "inline schema")
            findings.append(
                Finding(
                    op.operation_id,
                    described,
                    status,
                    f"at {instance_path}: {error.message[:300]}",
                    f"{where}.content.{content_type} -> {target} :: {schema_path}",
                    body,
                )
            )
        return findings


def validating_client(base_url: str, api_key: str, validator: SpecValidator, **kwargs: Any) -> httpx.Client:
    """An httpx client whose every response is checked against the spec (bodies of event streams excepted)."""

    def on_response(response: httpx.Response) -> None:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            validator.check(response)  # status and content type only; the stream is the caller's to read
            return
        response.read()
        validator.check(response)

    return httpx.Client(
        base_url=base_url,
        headers={"Authorization": f"Bearer {api_key}"},
        event_hooks={"response": [on_response]},
        **kwargs,
    )
