"""Limits on what a client may send: body size (413, uploads excepted), metadata size (400), and the
length of every string field (400 naming the field; the value at the limit itself is accepted and works).
Also: a body the handler never reads does not cost the client its keep-alive connection."""

from __future__ import annotations

import socket
import time
import uuid

import httpx
import pytest

from app.domain.limits import (
    COMMAND_MAX_BYTES,
    ENV_NAME_MAX,
    ENV_TOTAL_BYTES,
    ENV_VALUE_MAX,
    GIT_REF_MAX,
    ID_MAX,
    NAME_MAX,
    PATH_MAX,
    TOKEN_MAX,
    WORD_MAX,
)
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


def _read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length body off the socket: (status, body)."""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        assert data, f"the server closed the connection; got {bytes(buffer)!r}"
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:"))
    while len(rest) < length:
        data = sock.recv(65536)
        assert data, "the server closed the connection mid-body"
        rest += data
    buffer[:] = rest[length:]
    return int(lines[0].split()[1]), rest[:length]


@pytest.mark.parametrize("path", ["/v1/devboxes/dbx_unknown/shutdown", "/v1/devboxes/dbx_unknown/upload_file"])
def test_an_unread_body_that_arrives_after_the_headers_keeps_the_connection(server, path):
    """The handler answers 404 without reading the body, which the client sends only a little after the
    headers (as clients that write headers and body separately do): the connection must still carry the
    next request."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: devboxd\r\nAuthorization: Bearer {API_KEY}\r\n"
            "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n"
        )
        sock.sendall(head.encode())
        time.sleep(0.3)  # the handler has long decided by now
        sock.sendall(b"{}")
        buffer = bytearray()
        status, body = _read_response(sock, buffer)
        assert status == 404, body
        sock.sendall(f"GET /v1/devboxes HTTP/1.1\r\nHost: devboxd\r\nAuthorization: Bearer {API_KEY}\r\n\r\n".encode())
        status, body = _read_response(sock, buffer)
        assert status == 200, body


def test_metadata_limits(http, module_devbox):
    too_many = {f"k{i}": "v" for i in range(65)}
    for metadata in (too_many, {"k" * 257: "v"}, {"k": "v" * 4097}):
        created = http.post("/v1/devboxes", json={"metadata": metadata})
        assert created.status_code == 400, created.text
        updated = http.post(f"/v1/devboxes/{module_devbox}", json={"metadata": metadata})
        assert updated.status_code == 400, updated.text
        snapshot = http.post(f"/v1/devboxes/{module_devbox}/snapshot_disk", json={"metadata": metadata})
        assert snapshot.status_code == 400, snapshot.text


# ----- string field limits (app/domain/limits.py) ------------------------------------------------------------

OVER_COMMAND = ": " + "x" * (COMMAND_MAX_BYTES - 1)  # one byte too many
WIDE_COMMAND = "é" * (COMMAND_MAX_BYTES // 2 + 1)  # fewer characters than the limit, more UTF-8 bytes
EXECUTION_ID = "exe_0000000000doesnotexist00"

OVER_LIMIT_CREATES = [
    pytest.param({"name": "n" * (NAME_MAX + 1)}, "name", id="name"),
    pytest.param({"entrypoint": OVER_COMMAND}, "entrypoint", id="entrypoint"),
    pytest.param({"launch_parameters": {"launch_commands": ["true", OVER_COMMAND]}}, "launch_commands", id="launch"),
    pytest.param({"environment_variables": {"V" * (ENV_NAME_MAX + 1): "x"}}, "name", id="env-name"),
    pytest.param({"environment_variables": {"V": "v" * (ENV_VALUE_MAX + 1)}}, "V", id="env-value"),
    pytest.param({"environment_variables": {"V": "é" * (ENV_VALUE_MAX // 2 + 1)}}, "V", id="env-value-utf8"),
    pytest.param(
        {"environment_variables": {f"V{i}": "v" * ENV_VALUE_MAX for i in range(ENV_TOTAL_BYTES // ENV_VALUE_MAX)}},
        "environment_variables",
        id="env-total",
    ),
    pytest.param({"secrets": {"TOKEN": "s" * (NAME_MAX + 1)}}, "secret name", id="secret-name"),
    pytest.param({"file_mounts": {"/tmp/" + "p" * PATH_MAX: "x"}}, "file_mounts", id="file-mount-path"),
    pytest.param(
        {"mounts": [{"type": "file_mount", "target": "/tmp/" + "p" * PATH_MAX, "content": "x"}]},
        "mounts[0].target",
        id="mount-target",
    ),
    pytest.param(
        {"code_mounts": [{"repo_owner": "o", "repo_name": "r", "install_command": OVER_COMMAND}]},
        "code_mounts[0].install_command",
        id="code-mount-install",
    ),
    pytest.param(
        {"code_mounts": [{"repo_owner": "o", "repo_name": "r", "git_ref": "r" * (GIT_REF_MAX + 1)}]},
        "code_mounts[0].git_ref",
        id="code-mount-ref",
    ),
    pytest.param(
        {"code_mounts": [{"repo_owner": "o", "repo_name": "r", "token": "t" * (TOKEN_MAX + 1)}]},
        "code_mounts[0].token",
        id="code-mount-token",
    ),
    pytest.param({"snapshot_id": "snp_" + "0" * ID_MAX}, "snapshot_id", id="snapshot-id"),
    pytest.param({"blueprint_id": "bpt_" + "0" * ID_MAX}, "blueprint_id", id="blueprint-id"),
    pytest.param({"blueprint_name": "b" * (NAME_MAX + 1)}, "blueprint_name", id="blueprint-name"),
    pytest.param({"launch_parameters": {"network_policy_id": "n" * (ID_MAX + 1)}}, "network_policy_id", id="policy"),
]


@pytest.mark.parametrize(("body", "field"), OVER_LIMIT_CREATES)
def test_over_limit_create_fields_are_400_naming_the_field(http, body, field):
    response = http.post("/v1/devboxes", json=body)
    if response.status_code == 200:
        http.post(f"/v1/devboxes/{response.json()['id']}/shutdown")
    assert response.status_code == 400, response.text[:500]
    error = response.json()
    assert set(error) == {"error", "detail"}, error
    assert field in error["detail"], error
    assert len(response.content) < 1000, "the error must not echo the oversized value"


OVER_LIMIT_DEVBOX_ROUTES = [
    pytest.param("", {"name": "n" * (NAME_MAX + 1)}, "name", id="update-name"),
    pytest.param("/execute_sync", {"command": OVER_COMMAND}, "command", id="execute-sync"),
    pytest.param("/execute_async", {"command": WIDE_COMMAND}, "command", id="execute-async-utf8"),
    pytest.param("/execute", {"command_id": str(uuid.uuid4()), "command": OVER_COMMAND}, "command", id="execute"),
    pytest.param("/execute", {"command_id": "c" * (ID_MAX + 1), "command": "true"}, "command_id", id="command-id"),
    pytest.param("/wait_for_status", {"statuses": ["s" * (WORD_MAX + 1)]}, "status", id="wait-status"),
    pytest.param(
        f"/executions/{EXECUTION_ID}/wait_for_status", {"statuses": ["s" * (WORD_MAX + 1)]}, "status", id="exec-wait"
    ),
    pytest.param(
        "/write_file_contents", {"file_path": "p" * (PATH_MAX + 1), "contents": "x"}, "file_path", id="write-path"
    ),
    pytest.param("/read_file_contents", {"file_path": "p" * (PATH_MAX + 1)}, "file_path", id="read-path"),
    pytest.param("/download_file", {"path": "p" * (PATH_MAX + 1)}, "path", id="download-path"),
    pytest.param(
        "/pty/limits/control", {"action": "signal", "signal": "S" * (WORD_MAX + 1)}, "signal", id="pty-signal"
    ),
]


@pytest.mark.parametrize(("suffix", "body", "field"), OVER_LIMIT_DEVBOX_ROUTES)
def test_over_limit_route_fields_are_400_naming_the_field(http, module_devbox, suffix, body, field):
    response = http.post(f"/v1/devboxes/{module_devbox}{suffix}", json=body)
    assert response.status_code == 400, response.text[:500]
    error = response.json()
    assert set(error) == {"error", "detail"}, error
    assert field in error["detail"], error
    assert len(response.content) < 1000, "the error must not echo the oversized value"
    assert http.get(f"/v1/devboxes/{module_devbox}").json()["name"] == "test_limits"


def test_command_of_the_limit_runs(http, module_devbox):
    """The limit is what Linux can execute: a command of exactly COMMAND_MAX_BYTES starts and exits 0."""
    command = ": " + "x" * (COMMAND_MAX_BYTES - 2 - len(";echo ran")) + ";echo ran"
    assert len(command.encode()) == COMMAND_MAX_BYTES
    result = http.post(f"/v1/devboxes/{module_devbox}/execute_sync", json={"command": command})
    assert result.status_code == 200, result.text[:500]
    assert (result.json()["exit_status"], result.json()["stdout"]) == (0, "ran\n")


def test_path_of_the_limit_passes_the_length_check(http, module_devbox):
    # A 4096-character path reaches the file system (which then finds no such file).
    response = http.post(f"/v1/devboxes/{module_devbox}/read_file_contents", json={"file_path": "p" * PATH_MAX})
    assert f"at most {PATH_MAX}" not in response.text, response.text[:500]
    assert response.status_code in (400, 404), response.text[:500]


def test_devbox_with_every_create_field_at_its_limit_runs_commands(http, devbox_factory):
    """Names, paths and environment at their maximum are accepted, and a maximal command still runs with a
    maximal environment (argv and envp share ARG_MAX)."""
    values = {f"V{i:02d}": chr(ord("a") + i) * ENV_VALUE_MAX for i in range(ENV_TOTAL_BYTES // (ENV_VALUE_MAX + 5))}
    used = sum(len(k) + len(v) + 2 for k, v in values.items())
    values["REST"] = "r" * (ENV_TOTAL_BYTES - used - len("REST") - 2)
    assert sum(len(k) + len(v) + 2 for k, v in values.items()) == ENV_TOTAL_BYTES
    long_var = "L" * ENV_NAME_MAX
    values[long_var] = "x"
    values["REST"] = values["REST"][: -(len(long_var) + 3)]
    mount_path = "/tmp/" + "/".join(["d" * 200] * 19) + "/f"  # under PATH_MAX, components under NAME_MAX
    devbox = devbox_factory(
        name="n" * NAME_MAX,
        environment_variables=values,
        file_mounts={mount_path: "mounted"},
        launch_parameters={"launch_commands": [": " + "y" * (COMMAND_MAX_BYTES - 2)]},
    )
    assert devbox["status"] == "running", devbox
    assert devbox["name"] == "n" * NAME_MAX
    command = 'echo "${#V00} ${#REST}"; cat ' + mount_path + "; : "
    command += "z" * (COMMAND_MAX_BYTES - len(command))
    result = http.post(f"/v1/devboxes/{devbox['id']}/execute_sync", json={"command": command})
    assert result.status_code == 200, result.text[:500]
    assert result.json()["exit_status"] == 0, result.json()["stderr"][:500]
    assert result.json()["stdout"] == f"{ENV_VALUE_MAX} {len(values['REST'])}\nmounted"
