"""File tools over HTTP against real Docker: write_file_contents, read_file_contents, upload_file (streaming
multipart) and download_file; paths, ownership, permissions, encodings, interrupted uploads, devbox states,
tenancy, the devbox log, and the Runloop client (REST and object API) with strict response validation."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import runloop_api_client
from runloop_api_client import Runloop, RunloopSDK

from tests.conftest import API_KEY, OTHER_API_KEY, ServerProcess, wait_for

HOME = "/home/user"
BOUNDARY = "devboxd-test-boundary-7d1f0c"


# ----- helpers ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def devbox_id(module_devbox: str) -> str:
    return module_devbox


def unique(prefix: str = "files") -> str:
    """A fresh relative directory name, so tests sharing the module devbox never see each other's files."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def sh(http: httpx.Client, devbox_id: str, command: str) -> dict[str, Any]:
    response = http.post(f"/v1/devboxes/{devbox_id}/execute_sync", json={"command": command})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def write(http: httpx.Client, devbox_id: str, path: str, contents: str) -> httpx.Response:
    return http.post(f"/v1/devboxes/{devbox_id}/write_file_contents", json={"file_path": path, "contents": contents})


def read(http: httpx.Client, devbox_id: str, path: str) -> httpx.Response:
    return http.post(f"/v1/devboxes/{devbox_id}/read_file_contents", json={"file_path": path})


def upload(http: httpx.Client, devbox_id: str, path: str, data: bytes, filename: str = "blob.bin") -> httpx.Response:
    return http.post(
        f"/v1/devboxes/{devbox_id}/upload_file",
        data={"path": path},
        files={"file": (filename, data, "application/octet-stream")},
    )


def download(http: httpx.Client, devbox_id: str, path: str) -> httpx.Response:
    return http.post(f"/v1/devboxes/{devbox_id}/download_file", json={"path": path})


def write_ok(http: httpx.Client, devbox_id: str, path: str, contents: str) -> None:
    response = write(http, devbox_id, path, contents)
    assert response.status_code == 200, response.text


def read_ok(http: httpx.Client, devbox_id: str, path: str) -> str:
    response = read(http, devbox_id, path)
    assert response.status_code == 200, response.text
    return response.text


def upload_ok(http: httpx.Client, devbox_id: str, path: str, data: bytes, filename: str = "blob.bin") -> None:
    response = upload(http, devbox_id, path, data, filename)
    assert response.status_code == 200, response.text
    assert response.json() == {}


def download_ok(http: httpx.Client, devbox_id: str, path: str) -> bytes:
    response = download(http, devbox_id, path)
    assert response.status_code == 200, response.text
    return response.content


def detail(response: httpx.Response) -> str:
    body = response.json()
    assert isinstance(body.get("detail"), str), body
    return body["detail"]  # type: ignore[no-any-return]


def field_part(name: str, value: str) -> bytes:
    return f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()


def file_part_head(filename: str = "blob.bin") -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


def file_part(data: bytes, filename: str = "blob.bin") -> bytes:
    return file_part_head(filename) + data + b"\r\n"


CLOSING = f"--{BOUNDARY}--\r\n".encode()
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def temp_files(http: httpx.Client, devbox_id: str, folder: str) -> list[str]:
    listing = sh(http, devbox_id, f"ls -a {folder}")["stdout"].split()
    return [name for name in listing if ".devboxd-" in name]


def poll(check: Any, seconds: float = 5.0) -> Any:
    """Re-run `check` until it returns something truthy (returned) or time runs out (the last result)."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


# ----- write_file_contents ---------------------------------------------------------------------------------------


def test_write_relative_path_lands_under_home_with_parents_owned_by_user(shared_http, devbox_id):
    folder = unique()
    response = write(shared_http, devbox_id, f"{folder}/deep/er/note.txt", "hello\n")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["devbox_id"] == devbox_id
    assert body["exit_status"] == 0
    assert body.get("stdout", "") == "" and body.get("stderr", "") == ""

    result = sh(
        shared_http,
        devbox_id,
        f"cat {HOME}/{folder}/deep/er/note.txt; stat -c %U:%G {HOME}/{folder}/deep/er/note.txt "
        f"{HOME}/{folder}/deep/er {HOME}/{folder}",
    )
    assert result["stdout"] == "hello\nuser:user\nuser:user\nuser:user\n", result


def test_write_absolute_path(shared_http, devbox_id):
    path = f"/tmp/{unique()}/x"
    write_ok(shared_http, devbox_id, path, "in tmp")
    assert sh(shared_http, devbox_id, f"cat {path}; echo; stat -c %U:%G {path}")["stdout"] == "in tmp\nuser:user\n"
    assert read_ok(shared_http, devbox_id, path) == "in tmp"


def test_write_utf8_round_trips_exactly(shared_http, devbox_id):
    path = f"{unique()}/utf8.txt"
    text = "héllo wörld — ☃ 中文 😀👩‍💻 𝄞\r\nline two\ttab  \n\n  trailing "
    write_ok(shared_http, devbox_id, path, text)
    response = read(shared_http, devbox_id, path)
    assert response.status_code == 200, response.text
    assert response.content == text.encode("utf-8")
    assert response.text == text
    assert download_ok(shared_http, devbox_id, path) == text.encode("utf-8")


def test_write_overwrites_an_existing_file(shared_http, devbox_id):
    path = f"{unique()}/over.txt"
    write_ok(shared_http, devbox_id, path, "a much longer original content\n" * 10)
    write_ok(shared_http, devbox_id, path, "short")
    assert read_ok(shared_http, devbox_id, path) == "short"
    write_ok(shared_http, devbox_id, path, "")
    assert read_ok(shared_http, devbox_id, path) == ""
    folder = f"{HOME}/{path.split('/')[0]}"
    assert temp_files(shared_http, devbox_id, folder) == []


def test_write_to_an_existing_directory_is_400(shared_http, devbox_id):
    folder = unique()
    write_ok(shared_http, devbox_id, f"{folder}/inner.txt", "x")
    response = write(shared_http, devbox_id, folder, "would clobber a directory")
    assert response.status_code == 400, response.text
    assert "directory" in detail(response)
    assert sh(shared_http, devbox_id, f"test -d {HOME}/{folder} && cat {HOME}/{folder}/inner.txt")["stdout"] == "x"
    assert temp_files(shared_http, devbox_id, HOME) == []


@pytest.mark.parametrize("path", ["/etc/forbidden.txt", "/root/x"])
def test_write_without_permission_is_refused_and_creates_nothing(shared_http, devbox_id, path):
    response = write(shared_http, devbox_id, path, "nope")
    assert 400 <= response.status_code < 500, response.text
    message = detail(response)
    assert path in message
    assert "permission denied" in message.lower(), message
    folder = path.rsplit("/", 1)[0]
    check = sh(shared_http, devbox_id, f"sudo test -e {path} && echo exists; sudo ls -a {folder}")
    assert "exists" not in check["stdout"]
    assert ".devboxd-" not in check["stdout"]


# ----- read_file_contents ----------------------------------------------------------------------------------------


def test_read_answers_text_plain_with_the_exact_text(shared_http, devbox_id):
    path = f"{unique()}/plain.txt"
    text = 'say "hi"\n{"not": "json"}\n\\n stays\n'
    write_ok(shared_http, devbox_id, path, text)
    response = read(shared_http, devbox_id, path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.content == text.encode()
    # an absolute path to the same file reads the same
    assert read_ok(shared_http, devbox_id, f"{HOME}/{path}") == text


def test_read_missing_file_is_404_naming_the_path(shared_http, devbox_id):
    path = f"{unique()}/missing.txt"
    response = read(shared_http, devbox_id, path)
    assert response.status_code == 404, response.text
    assert f"{HOME}/{path}" in detail(response)


def test_read_directory_is_400(shared_http, devbox_id):
    response = read(shared_http, devbox_id, "/tmp")
    assert response.status_code == 400, response.text
    assert "directory" in detail(response)


def test_read_non_utf8_file_is_400_pointing_at_download_file(shared_http, devbox_id):
    path = f"{unique()}/binary.bin"
    upload_ok(shared_http, devbox_id, path, b"ok \xff\xfe\x00\x80 not utf-8")
    response = read(shared_http, devbox_id, path)
    assert response.status_code == 400, response.text
    assert "download_file" in detail(response)


@pytest.mark.parametrize("path", ["", "   ", "a\0b", "a/"], ids=["empty", "blank", "nul", "trailing-slash"])
def test_bad_paths_are_400_on_every_file_endpoint(shared_http, devbox_id, path):
    for response in (
        read(shared_http, devbox_id, path),
        write(shared_http, devbox_id, path, "x"),
        download(shared_http, devbox_id, path),
        upload(shared_http, devbox_id, path, b"x"),
    ):
        assert response.status_code == 400, (response.request.url, response.text)
        assert response.json()["error"] in ("invalid_request", "validation_error"), response.text


# ----- upload_file -----------------------------------------------------------------------------------------------


def test_upload_50_mib_round_trips_by_sha256(shared_http, devbox_id):
    data = os.urandom(50 * 1024**2)
    path = f"{unique()}/big.bin"
    upload_ok(shared_http, devbox_id, path, data)
    assert sh(shared_http, devbox_id, f"stat -c '%s %U:%G' {path}")["stdout"] == f"{len(data)} user:user\n"
    hasher = hashlib.sha256()
    size = 0
    with shared_http.stream("POST", f"/v1/devboxes/{devbox_id}/download_file", json={"path": path}) as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(len(data))
        for chunk in response.iter_bytes():
            hasher.update(chunk)
            size += len(chunk)
    assert size == len(data)
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()


def test_upload_zero_byte_file(shared_http, devbox_id):
    path = f"{unique()}/empty.bin"
    upload_ok(shared_http, devbox_id, path, b"", filename="empty.bin")
    assert sh(shared_http, devbox_id, f"stat -c %s {path}")["stdout"] == "0\n"
    response = download(shared_http, devbox_id, path)
    assert response.status_code == 200, response.text
    assert response.content == b""
    assert response.headers["content-length"] == "0"
    assert read_ok(shared_http, devbox_id, path) == ""


def test_upload_path_and_name_with_spaces_and_unicode(shared_http, devbox_id):
    folder = f"{unique()} dïr 📁"
    name = "my fïlé — 😀.bin"
    path = f"{folder}/{name}"
    data = b"\x00\x01 spaced unicode \xf0\x9f"
    upload_ok(shared_http, devbox_id, path, data, filename=name)
    assert sh(shared_http, devbox_id, f"stat -c %s '{HOME}/{path}'")["stdout"] == f"{len(data)}\n"
    response = download(shared_http, devbox_id, path)
    assert response.status_code == 200, response.text
    assert response.content == data
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment")
    assert f"filename*=UTF-8''{quote(name)}" in disposition


def test_upload_replaces_an_existing_file(shared_http, devbox_id):
    path = f"{unique()}/replace.bin"
    upload_ok(shared_http, devbox_id, path, b"first version, rather long " * 100)
    upload_ok(shared_http, devbox_id, path, b"second")
    assert download_ok(shared_http, devbox_id, path) == b"second"
    write_ok(shared_http, devbox_id, path, "third via write")
    upload_ok(shared_http, devbox_id, path, b"fourth")
    assert read_ok(shared_http, devbox_id, path) == "fourth"


def test_upload_without_path_field_is_400(shared_http, devbox_id):
    response = shared_http.post(
        f"/v1/devboxes/{devbox_id}/upload_file", files={"file": ("a.bin", b"data", "application/octet-stream")}
    )
    assert response.status_code == 400, response.text
    assert "path" in detail(response)


def test_upload_without_file_part_is_400_and_creates_nothing(shared_http, devbox_id):
    folder = unique()
    response = shared_http.post(
        f"/v1/devboxes/{devbox_id}/upload_file",
        content=field_part("path", f"{folder}/nofile.bin") + CLOSING,
        headers={"Content-Type": MULTIPART},
    )
    assert response.status_code == 400, response.text
    assert "file" in detail(response)
    assert sh(shared_http, devbox_id, f"ls -a {HOME}/{folder} 2>/dev/null")["stdout"] in ("", ".\n..\n")


def test_upload_as_json_is_400(shared_http, devbox_id):
    response = shared_http.post(
        f"/v1/devboxes/{devbox_id}/upload_file", json={"path": f"{unique()}/json.bin", "file": "aGVsbG8="}
    )
    assert response.status_code == 400, response.text
    assert "multipart/form-data" in detail(response)


def test_upload_with_file_part_before_path_field(shared_http, devbox_id):
    path = f"{unique()}/file-first.bin"
    # larger than the server's in-memory spool, so the early bytes go through its temp file
    data = os.urandom(9 * 1024**2) + b"\r\n--not-the-boundary\r\n"
    body = file_part(data) + field_part("path", path) + CLOSING
    response = shared_http.post(
        f"/v1/devboxes/{devbox_id}/upload_file", content=body, headers={"Content-Type": MULTIPART}
    )
    assert response.status_code == 200, response.text
    assert download_ok(shared_http, devbox_id, path) == data


def test_upload_with_file_part_and_no_path_field_at_all_is_400(shared_http, devbox_id):
    response = shared_http.post(
        f"/v1/devboxes/{devbox_id}/upload_file",
        content=file_part(b"orphan bytes") + CLOSING,
        headers={"Content-Type": MULTIPART},
    )
    assert response.status_code == 400, response.text
    assert "path" in detail(response)


def test_concurrent_uploads_to_one_path_leave_one_whole_file(server, shared_http, devbox_id):
    folder = unique()
    versions = [bytes([n]) * (2 * 1024**2) for n in range(4)]
    results: list[int] = []

    def send(data: bytes) -> None:
        with httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60
        ) as client:
            results.append(upload(client, devbox_id, f"{folder}/same.bin", data).status_code)

    threads = [threading.Thread(target=send, args=(data,)) for data in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [200] * 4
    assert download_ok(shared_http, devbox_id, f"{folder}/same.bin") in versions
    assert sh(shared_http, devbox_id, f"ls -a {HOME}/{folder}")["stdout"] == ".\n..\nsame.bin\n"


def _interrupt_by_closing_the_socket(server: ServerProcess, http: httpx.Client, devbox_id: str, folder: str) -> None:
    """Headers plus half the body over a raw HTTP/1.1 socket (Content-Length promises more), then hang up."""
    data = os.urandom(4 * 1024**2)
    head = field_part("path", f"{folder}/x.txt") + file_part_head("x.txt")
    body_length = len(head) + len(data) + 2 + len(CLOSING)
    request = (
        f"POST /v1/devboxes/{devbox_id}/upload_file HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {API_KEY}\r\n"
        f"Content-Type: {MULTIPART}\r\n"
        f"Content-Length: {body_length}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request + head + data[: len(data) // 2])
        # make sure the server is really writing the temp file before we hang up
        assert poll(lambda: temp_files(http, devbox_id, f"{HOME}/{folder}"), 10), "no temp file appeared"


def _interrupt_by_raising_in_the_body(server: ServerProcess, http: httpx.Client, devbox_id: str, folder: str) -> None:
    """httpx streams a chunked body from a generator that raises midway: the connection is dropped."""

    def body() -> Iterator[bytes]:
        yield field_part("path", f"{folder}/x.txt") + file_part_head("x.txt")
        yield os.urandom(1024**2)
        assert poll(lambda: temp_files(http, devbox_id, f"{HOME}/{folder}"), 10), "no temp file appeared"
        raise RuntimeError("client gave up")

    with (
        httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30) as client,
        pytest.raises(RuntimeError, match="client gave up"),
    ):
        client.post(f"/v1/devboxes/{devbox_id}/upload_file", content=body(), headers={"Content-Type": MULTIPART})


def _interrupt_by_truncating_the_multipart(
    server: ServerProcess, http: httpx.Client, devbox_id: str, folder: str
) -> httpx.Response:
    """A complete HTTP body (chunked) whose multipart message stops midway: no closing boundary ever arrives."""

    def body() -> Iterator[bytes]:
        yield field_part("path", f"{folder}/x.txt") + file_part_head("x.txt")
        yield b"partial bytes of a file that never finished " * 1000

    response = http.post(f"/v1/devboxes/{devbox_id}/upload_file", content=body(), headers={"Content-Type": MULTIPART})
    return response


@pytest.mark.parametrize(
    "interrupt",
    [_interrupt_by_closing_the_socket, _interrupt_by_raising_in_the_body, _interrupt_by_truncating_the_multipart],
    ids=["socket-closed", "generator-raises", "multipart-truncated"],
)
def test_interrupted_upload_never_replaces_the_existing_file(server, shared_http, devbox_id, interrupt):
    folder = unique()
    write_ok(shared_http, devbox_id, f"{folder}/x.txt", "original")

    response = interrupt(server, shared_http, devbox_id, folder)

    assert read_ok(shared_http, devbox_id, f"{folder}/x.txt") == "original"
    if response is not None:  # the request completed at the HTTP level: the server must refuse it
        assert response.status_code == 400, response.text
    poll(lambda: not temp_files(shared_http, devbox_id, f"{HOME}/{folder}"), 5)
    assert temp_files(shared_http, devbox_id, f"{HOME}/{folder}") == []
    assert read_ok(shared_http, devbox_id, f"{folder}/x.txt") == "original"
    assert sh(shared_http, devbox_id, f"ls -a {HOME}/{folder}")["stdout"] == ".\n..\nx.txt\n"
    # the devbox still takes uploads afterwards
    upload_ok(shared_http, devbox_id, f"{folder}/x.txt", b"replaced properly")
    assert read_ok(shared_http, devbox_id, f"{folder}/x.txt") == "replaced properly"


# ----- download_file ---------------------------------------------------------------------------------------------


def test_download_headers_and_binary_exact_bytes(shared_http, devbox_id):
    path = f"{unique()}/all-bytes.bin"
    data = bytes(range(256)) * 64 + b"\r\n\x00tail"
    upload_ok(shared_http, devbox_id, path, data)
    response = download(shared_http, devbox_id, path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-length"] == str(len(data))
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment")
    assert 'filename="all-bytes.bin"' in disposition
    assert response.content == data


def test_abandoned_download_stops_its_reader_promptly(shared_http, devbox_id):
    folder = f"{HOME}/{unique()}"
    path = f"{folder}/large.bin"
    sh(shared_http, devbox_id, f"mkdir -p {folder} && head -c 50M /dev/urandom > {path}")
    with shared_http.stream("POST", f"/v1/devboxes/{devbox_id}/download_file", json={"path": path}) as response:
        assert response.status_code == 200
        next(response.iter_raw(64 * 1024))
    # the client hung up after the first chunk: the `cat` feeding the download must end promptly
    # (a reader left blocked on a full pipe pins a process in the devbox and a socket in the server)

    def readers() -> list[str]:
        lines = sh(shared_http, devbox_id, "ps -eo args=")["stdout"].splitlines()
        return [line for line in lines if line.startswith("cat ") and folder in line]

    time.sleep(1.5)  # ample for a server that ends the reader when the client goes; one check, no request churn
    assert readers() == []
    assert len(download_ok(shared_http, devbox_id, path)) == 50 * 1024**2


def test_download_missing_is_404_json(shared_http, devbox_id):
    path = f"{unique()}/gone.bin"
    response = download(shared_http, devbox_id, path)
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == "not_found"
    assert f"{HOME}/{path}" in detail(response)


def test_download_directory_is_400(shared_http, devbox_id):
    response = download(shared_http, devbox_id, ".")
    assert response.status_code == 400, response.text
    assert "directory" in detail(response)


# ----- devbox state and tenancy ----------------------------------------------------------------------------------


def all_four(http: httpx.Client, devbox_id: str, path: str) -> dict[str, httpx.Response]:
    return {
        "write_file_contents": write(http, devbox_id, path, "x"),
        "read_file_contents": read(http, devbox_id, path),
        "upload_file": upload(http, devbox_id, path, b"x"),
        "download_file": download(http, devbox_id, path),
    }


def test_file_tools_refuse_suspended_and_shut_down_devboxes(http, devbox_factory):
    to_suspend = devbox_factory(wait=False, name="files-suspend")["id"]
    to_shut = devbox_factory(wait=False, name="files-shutdown")["id"]
    for devbox_id in (to_suspend, to_shut):
        assert wait_for(http, devbox_id, ["running", "failure", "shutdown"])["status"] == "running"
        write_ok(http, devbox_id, "kept.txt", "kept")

    assert http.post(f"/v1/devboxes/{to_suspend}/suspend").status_code == 200
    assert http.post(f"/v1/devboxes/{to_shut}/shutdown").status_code == 200
    assert wait_for(http, to_suspend, ["suspended", "failure", "shutdown"])["status"] == "suspended"
    assert wait_for(http, to_shut, ["shutdown", "failure"])["status"] == "shutdown"

    for devbox_id, status in ((to_suspend, "suspended"), (to_shut, "shutdown")):
        for name, response in all_four(http, devbox_id, "kept.txt").items():
            assert response.status_code == 400, (name, status, response.text)
            assert status in detail(response), (name, response.text)

    # resuming brings the files back, and the tools work again
    assert http.post(f"/v1/devboxes/{to_suspend}/resume").status_code == 200
    assert wait_for(http, to_suspend, ["running", "failure", "shutdown"])["status"] == "running"
    assert read_ok(http, to_suspend, "kept.txt") == "kept"


def test_unknown_devbox_is_404(shared_http):
    for name, response in all_four(shared_http, "dbx_does_not_exist", "a.txt").items():
        assert response.status_code == 404, (name, response.text)
        assert response.json()["error"] == "not_found", (name, response.text)


def test_other_tenant_gets_404_and_changes_nothing(server, shared_http, devbox_id):
    path = f"{unique()}/mine.txt"
    write_ok(shared_http, devbox_id, path, "mine")
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {OTHER_API_KEY}"}, timeout=30
    ) as other:
        for name, response in all_four(other, devbox_id, path).items():
            assert response.status_code == 404, (name, response.text)
    assert read_ok(shared_http, devbox_id, path) == "mine"


# ----- the devbox log --------------------------------------------------------------------------------------------


def test_every_file_operation_is_logged(shared_http, devbox_id):
    folder = unique()
    written, uploaded = f"{HOME}/{folder}/written.txt", f"{HOME}/{folder}/uploaded.bin"
    write_ok(shared_http, devbox_id, written, "12345")
    read_ok(shared_http, devbox_id, written)
    upload_ok(shared_http, devbox_id, uploaded, b"123")
    download_ok(shared_http, devbox_id, uploaded)

    response = shared_http.get(f"/v1/devboxes/{devbox_id}/logs")
    assert response.status_code == 200, response.text
    files = [e["message"] for e in response.json()["logs"] if e["source"] == "files" and folder in (e["message"] or "")]
    assert len(files) == 4, files
    assert "wrote" in files[0] and written in files[0] and "5 bytes" in files[0]
    assert "read" in files[1] and written in files[1]
    assert "wrote" in files[2] and uploaded in files[2] and "3 bytes" in files[2]
    assert "read" in files[3] and uploaded in files[3]


def test_small_files_go_through_the_agent_channel_not_docker_exec(shared_http, devbox_id, docker_client):
    """Checks, small writes and small reads are forks of the devbox's agent: the engine sees no exec."""
    folder = unique()
    sh(shared_http, devbox_id, "true")  # the channel is open
    since = time.time() - 1
    write_ok(shared_http, devbox_id, f"{folder}/a.txt", "agent")
    assert read_ok(shared_http, devbox_id, f"{folder}/a.txt") == "agent"
    data = os.urandom(300_000)
    upload_ok(shared_http, devbox_id, f"{folder}/b.bin", data)
    assert download_ok(shared_http, devbox_id, f"{folder}/b.bin") == data
    assert "Linux" in read_ok(shared_http, devbox_id, "/proc/version")  # size 0 on stat: read whole
    until = time.time() + 1
    events = docker_client.api.events(
        since=since, until=until, filters={"type": "container", "container": f"devbox-{devbox_id}"}, decode=True
    )
    execs = [e["Action"] for e in events if e["Action"].startswith("exec_")]
    assert execs == []
    owner = sh(shared_http, devbox_id, f"stat -c %U {folder}/a.txt {folder}/b.bin")["stdout"].split()
    assert owner == ["user", "user"]


# ----- the Runloop client ----------------------------------------------------------------------------------------


def test_runloop_client_file_methods(sdk: Runloop, devbox_id: str) -> None:
    folder = unique("sdk")
    text = "from the SDK — ✓ 😀\n"
    view = sdk.devboxes.write_file_contents(devbox_id, file_path=f"{folder}/t.txt", contents=text)
    assert view.devbox_id == devbox_id
    assert view.exit_status == 0

    contents = sdk.devboxes.read_file_contents(devbox_id, file_path=f"{folder}/t.txt")
    assert isinstance(contents, str)
    assert contents == text

    data = os.urandom(300 * 1024)
    assert sdk.devboxes.upload_file(devbox_id, path=f"{folder}/b.bin", file=("b.bin", data)) == {}
    downloaded = sdk.devboxes.download_file(devbox_id, path=f"{folder}/b.bin")
    assert downloaded.read() == data
    assert downloaded.http_response.headers["content-type"] == "application/octet-stream"

    with pytest.raises(runloop_api_client.NotFoundError):
        sdk.devboxes.read_file_contents(devbox_id, file_path=f"{folder}/missing.txt")
    with pytest.raises(runloop_api_client.NotFoundError):
        sdk.devboxes.download_file(devbox_id, path=f"{folder}/missing.bin")
    with pytest.raises(runloop_api_client.BadRequestError):
        sdk.devboxes.read_file_contents(devbox_id, file_path=folder)
    with pytest.raises(runloop_api_client.BadRequestError):
        sdk.devboxes.read_file_contents(devbox_id, file_path=f"{folder}/b.bin")  # not UTF-8
    with pytest.raises(runloop_api_client.NotFoundError):
        sdk.devboxes.write_file_contents("dbx_does_not_exist", file_path="a.txt", contents="x")


def test_runloop_object_api_file_interface(server: ServerProcess, devbox_id: str) -> None:
    runloop = RunloopSDK(bearer_token=API_KEY, base_url=server.base_url, max_retries=0)
    runloop.api._strict_response_validation = True
    try:
        devbox = runloop.devbox.from_id(devbox_id)
        folder = unique("object-api")
        view = devbox.file.write(file_path=f"{folder}/config.json", contents='{"key": "välue"}')
        assert view.exit_status == 0
        assert view.devbox_id == devbox_id
        assert devbox.file.read(file_path=f"{folder}/config.json") == '{"key": "välue"}'

        data = bytes(range(256)) * 1000
        assert devbox.file.upload(path=f"{folder}/data.bin", file=("data.bin", data)) == {}
        assert devbox.file.download(path=f"{folder}/data.bin") == data
        assert devbox.cmd.exec(f"sha256sum {folder}/data.bin").stdout().split()[0] == hashlib.sha256(data).hexdigest()

        with pytest.raises(runloop_api_client.NotFoundError):
            devbox.file.read(file_path=f"{folder}/nothing.txt")
    finally:
        runloop.close()
