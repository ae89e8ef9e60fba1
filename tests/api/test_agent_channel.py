"""The channel to a devbox's command agent across server versions: a container's listening agent of
another version is replaced in place when the server connects, and a container made without a listening
agent (before it existed) is still served over a `docker exec`."""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import time
from collections.abc import Callable

import httpx

from app.services.agent_channel import AGENT_SOURCE
from tests.conftest import API_KEY, ServerProcess, wait_for


def _run(http: httpx.Client, devbox_id: str, command: str) -> str:
    response = http.post(f"/v1/devboxes/{devbox_id}/execute_sync", json={"command": command})
    assert response.status_code == 200, response.text
    assert response.json()["exit_status"] == 0, response.json()
    return str(response.json()["stdout"])


def _hello_digest(sock_path: str) -> str:
    """Ask the listening agent which source it runs, as the server does."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(sock_path)
        head = json.dumps({"op": "hello"}).encode()
        sock.sendall(struct.pack(">II", len(head), 0) + head)
        data = b""
        while len(data) < 8 or len(data) < 8 + struct.unpack(">II", data[:8])[0]:
            chunk = sock.recv(65536)
            assert chunk, "the agent hung up"
            data += chunk
        head_len = struct.unpack(">II", data[:8])[0]
        return str(json.loads(data[8 : 8 + head_len])["digest"])


def test_an_older_listening_agent_is_replaced_and_a_container_without_one_uses_exec(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory()
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as http:
        listening = http.post("/v1/devboxes", json={}).json()["id"]
        legacy = http.post("/v1/devboxes", json={}).json()["id"]
        for devbox_id in (listening, legacy):
            assert wait_for(http, devbox_id, ["running"])["status"] == "running"
            assert _run(http, devbox_id, "echo before") == "before\n"
        private = server.data_dir / "devbox-env"
        sock_path = str(private / listening / "agent.sock")
        current = hashlib.sha256(AGENT_SOURCE.read_bytes()).hexdigest()

        server.stop()  # the agent serves one connection at a time: the server's is gone now
        assert _hello_digest(sock_path) == current
        # An "older" agent: same code, other bytes, made to re-exec into it as an older server would.
        older = AGENT_SOURCE.read_bytes() + b"\n# an older build\n"
        (private / listening / "agent.py").write_bytes(older)
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(sock_path)
            head = json.dumps({"op": "reexec"}).encode()
            sock.sendall(struct.pack(">II", len(head), 0) + head)
        older_digest = hashlib.sha256(older).hexdigest()
        deadline = time.monotonic() + 30
        while True:  # the agent is re-executing: its socket comes back
            try:
                digest = _hello_digest(sock_path)
                break
            except (ConnectionError, FileNotFoundError):
                assert time.monotonic() < deadline, "the agent never came back after re-exec"
                time.sleep(0.05)
        assert digest == older_digest
        # A container from before listening agents: no marker, so the server must go through the engine.
        (private / legacy / "agent.listens").unlink()

        server.start()
        assert _run(http, listening, "echo after") == "after\n"
        assert (private / listening / "agent.py").read_bytes() == AGENT_SOURCE.read_bytes()
        assert _run(http, legacy, "echo over-exec") == "over-exec\n"
        server.stop()
        assert _hello_digest(sock_path) == current  # replaced in place, in the same container
        server.start()
        for devbox_id in (listening, legacy):
            http.post(f"/v1/devboxes/{devbox_id}/shutdown")
