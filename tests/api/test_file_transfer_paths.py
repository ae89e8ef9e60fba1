"""upload_file / download_file for files of 1 MiB and more whose size is known up front: not through an exec's
stdin/stdout but through the engine (a tar entry in and out, as `docker cp` does) or, where the engine is
local, read and written by the server itself through the container's root (/proc/<pid>/root). Every test
runs both ways: the default server (host file access) and one with DEVBOX_HOST_FILE_ACCESS=false. Byte-exact
both ways, same owner and permission checks as the exec path, a size hint that is wrong in either direction
still gives the exact file, and an upload that fails midway never replaces the file that was there."""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import API_KEY, ServerProcess

HOME = "/home/user"
BOUNDARY = "transfer-paths-boundary-5e1"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
CLOSING = f"--{BOUNDARY}--\r\n".encode()
MiB = 1024**2


@pytest.fixture(scope="module", params=["host", "engine"])
def way(request: pytest.FixtureRequest) -> str:
    """How large uploads are written: from this host (the default here) or through the engine."""
    return str(request.param)


@pytest.fixture(scope="module")
def way_server(way: str, server: ServerProcess, server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server if way == "host" else server_factory(DEVBOX_HOST_FILE_ACCESS="false")


@pytest.fixture(scope="module")
def shared_http(way_server: ServerProcess) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=way_server.base_url, headers=headers, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def devbox_id(module_devbox: str) -> str:
    return module_devbox  # made through this module's shared_http: on the way's server


def unique() -> str:
    return f"paths-{uuid.uuid4().hex[:8]}"


def sh(http: httpx.Client, devbox_id: str, command: str) -> dict[str, Any]:
    response = http.post(f"/v1/devboxes/{devbox_id}/execute_sync", json={"command": command})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def field_part(name: str, value: str) -> bytes:
    return f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()


def file_part_head() -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


def upload_ok(http: httpx.Client, devbox_id: str, path: str, data: bytes) -> None:
    response = http.post(
        f"/v1/devboxes/{devbox_id}/upload_file",
        data={"path": path},
        files={"file": ("f.bin", data, "application/octet-stream")},
    )
    assert response.status_code == 200, response.text


def post_multipart(http: httpx.Client, devbox_id: str, body: bytes) -> httpx.Response:
    """A hand-made multipart body, sent with its Content-Length (what gives the server its size hint)."""
    return http.post(f"/v1/devboxes/{devbox_id}/upload_file", content=body, headers={"Content-Type": MULTIPART})


def download(http: httpx.Client, devbox_id: str, path: str) -> bytes:
    response = http.post(f"/v1/devboxes/{devbox_id}/download_file", json={"path": path})
    assert response.status_code == 200, response.text
    assert response.headers["content-length"] == str(len(response.content))
    return response.content


def sha256_in_box(http: httpx.Client, devbox_id: str, path: str) -> str:
    return str(sh(http, devbox_id, f"sha256sum '{path}'")["stdout"].split()[0])


def leftovers(http: httpx.Client, devbox_id: str, folder: str) -> list[str]:
    return [name for name in sh(http, devbox_id, f"ls -a '{folder}'")["stdout"].split() if ".devboxd-" in name]


def test_large_upload_round_trips_byte_for_byte_as_the_user(shared_http, devbox_id):
    folder = unique()
    data = os.urandom(24 * MiB + 123)
    upload_ok(shared_http, devbox_id, f"{folder}/big.bin", data)
    assert (
        sh(shared_http, devbox_id, f"stat -c '%s %U:%G %a' {folder}/big.bin")["stdout"]
        == f"{len(data)} user:user 644\n"
    )
    assert sha256_in_box(shared_http, devbox_id, f"{HOME}/{folder}/big.bin") == hashlib.sha256(data).hexdigest()
    assert download(shared_http, devbox_id, f"{folder}/big.bin") == data
    assert leftovers(shared_http, devbox_id, f"{HOME}/{folder}") == []


@pytest.mark.parametrize(
    ("tail", "why"),
    [
        (CLOSING.rstrip(b"\r\n"), "no CRLF after the closing delimiter: the file outgrows the hint"),
        (field_part("extra", "x" * 5000) + CLOSING + b"epilogue", "a part after the file: the hint overshoots"),
    ],
    ids=["longer-than-hint", "shorter-than-hint"],
)
def test_a_wrong_size_hint_still_writes_the_exact_file(shared_http, devbox_id, tail, why):
    folder = unique()
    data = os.urandom(3 * MiB + 7)
    body = field_part("path", f"{folder}/hinted.bin") + file_part_head() + data + b"\r\n" + tail
    response = post_multipart(shared_http, devbox_id, body)
    assert response.status_code == 200, f"{why}: {response.text}"
    assert download(shared_http, devbox_id, f"{folder}/hinted.bin") == data, why
    assert leftovers(shared_http, devbox_id, f"{HOME}/{folder}") == []


def test_upload_into_a_root_owned_folder_is_refused_like_the_exec_path(shared_http, devbox_id):
    response = shared_http.post(
        f"/v1/devboxes/{devbox_id}/upload_file",
        data={"path": "/etc/devboxd-not-allowed.bin"},
        files={"file": ("f.bin", os.urandom(2 * MiB), "application/octet-stream")},
    )
    assert response.status_code == 400, response.text
    assert sh(shared_http, devbox_id, "ls -a /etc | grep -c devboxd || true")["stdout"] == "0\n"


def test_upload_through_a_symlinked_folder_and_into_a_tmpfs(shared_http, devbox_id):
    folder = unique()
    sh(shared_http, devbox_id, f"mkdir -p {folder}/real && ln -s real {folder}/link")
    data = os.urandom(2 * MiB)
    upload_ok(shared_http, devbox_id, f"{folder}/link/via-link.bin", data)
    assert download(shared_http, devbox_id, f"{folder}/real/via-link.bin") == data
    # /dev/shm is a mount of the container's own: whichever way the bytes go, they land where the user looks
    upload_ok(shared_http, devbox_id, f"/dev/shm/{folder}.bin", data)
    assert sha256_in_box(shared_http, devbox_id, f"/dev/shm/{folder}.bin") == hashlib.sha256(data).hexdigest()
    assert download(shared_http, devbox_id, f"/dev/shm/{folder}.bin") == data


def test_large_download_through_a_symlink_gives_the_target_bytes(shared_http, devbox_id):
    folder = f"{HOME}/{unique()}"
    sh(
        shared_http,
        devbox_id,
        f"mkdir -p {folder} && head -c 5M /dev/urandom > {folder}/t.bin && ln -s t.bin {folder}/l",
    )
    data = download(shared_http, devbox_id, f"{folder}/l")
    assert len(data) == 5 * MiB
    assert hashlib.sha256(data).hexdigest() == sha256_in_box(shared_http, devbox_id, f"{folder}/t.bin")


def test_large_unreadable_file_is_refused(shared_http, devbox_id):
    folder = f"{HOME}/{unique()}"
    secret = f"{folder}/secret"
    sh(shared_http, devbox_id, f"mkdir -p {folder} && head -c 2M /dev/zero > {secret}")
    sh(shared_http, devbox_id, f"sudo chown root {secret} && sudo chmod 600 {secret}")
    response = shared_http.post(f"/v1/devboxes/{devbox_id}/download_file", json={"path": secret})
    assert response.status_code == 400, response.text
    assert "not readable" in response.json()["detail"]


def test_replacing_a_large_file_frees_the_old_version_after_answering(shared_http, devbox_id):
    folder = unique()
    first, second = os.urandom(65 * MiB), os.urandom(2 * MiB)
    upload_ok(shared_http, devbox_id, f"{folder}/v.bin", first)
    upload_ok(shared_http, devbox_id, f"{folder}/v.bin", second)
    assert download(shared_http, devbox_id, f"{folder}/v.bin") == second
    # the old version was linked aside and is removed in the background: gone within moments
    for _ in range(50):
        if not leftovers(shared_http, devbox_id, f"{HOME}/{folder}"):
            break
    assert leftovers(shared_http, devbox_id, f"{HOME}/{folder}") == []


def test_upload_cut_off_midway_leaves_the_old_file_and_no_temp(way_server: ServerProcess, shared_http, devbox_id):
    """Content-Length promises 16 MiB (a large upload's way), the client hangs up after 6 MiB."""
    server = way_server
    folder = unique()
    upload_ok(shared_http, devbox_id, f"{folder}/keep.bin", b"original contents")
    head = field_part("path", f"{folder}/keep.bin") + file_part_head()
    length = len(head) + 16 * MiB + 2 + len(CLOSING)
    request = (
        f"POST /v1/devboxes/{devbox_id}/upload_file HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {API_KEY}\r\nContent-Type: {MULTIPART}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request + head + os.urandom(6 * MiB))
        # the temp file is in place and no `cat` writes it: the bytes go past the container's processes
        for _ in range(100):
            if leftovers(shared_http, devbox_id, f"{HOME}/{folder}"):
                break
        assert leftovers(shared_http, devbox_id, f"{HOME}/{folder}"), "no temp file appeared"
        writers = [line for line in sh(shared_http, devbox_id, "ps -eo args=")["stdout"].splitlines() if folder in line]
        assert writers == [], writers
    for _ in range(100):
        if not leftovers(shared_http, devbox_id, f"{HOME}/{folder}"):
            break
    assert leftovers(shared_http, devbox_id, f"{HOME}/{folder}") == []
    assert download(shared_http, devbox_id, f"{folder}/keep.bin") == b"original contents"
    data = os.urandom(2 * MiB)
    upload_ok(shared_http, devbox_id, f"{folder}/keep.bin", data)  # and the devbox still takes uploads
    assert download(shared_http, devbox_id, f"{folder}/keep.bin") == data


def test_large_transfers_take_the_servers_way(shared_http, devbox_id, way, docker_client):
    """The engine says when it untars into a container (extract-to-dir) and tars out of one (archive-path):
    with host file access it does neither."""
    folder = unique()
    since = time.time()
    data = os.urandom(3 * MiB)
    upload_ok(shared_http, devbox_id, f"{folder}/way.bin", data)
    assert download(shared_http, devbox_id, f"{folder}/way.bin") == data
    events = docker_client.api.events(
        since=since,
        until=time.time() + 1,
        filters={"type": "container", "container": f"devbox-{devbox_id}"},
        decode=True,
    )
    actions = sorted(e["Action"] for e in events if e["Action"] in ("extract-to-dir", "archive-path"))
    assert actions == ([] if way == "host" else ["archive-path", "extract-to-dir"])
