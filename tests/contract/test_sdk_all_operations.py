"""The devbox operations of runloop-api-client 3.0.0 (devboxes, executions, disk snapshots, files, logs,
tunnels, PTY, SSH) that the other SDK modules do not drive, each through the real client with strict
response validation: the sync and async REST clients and the object APIs (`RunloopSDK`, `AsyncRunloopSDK`).

Already driven elsewhere, so not repeated here: the lifecycle, execute*/executions (tests/api/test_sdk_client.py,
tests/api/test_executions_sdk.py), files (tests/api/test_files.py), disk snapshots (tests/api/test_snapshots.py),
create_ssh_key (tests/api/test_ssh.py). Not driven: `watch_evictions` (an event stream that stays quiet on
this server; its route is checked by tests/api/test_client_extras.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
import warnings
from collections.abc import Iterator

import httpx
import pytest
from runloop_api_client import (
    AsyncRunloop,
    AsyncRunloopSDK,
    BadRequestError,
    NotFoundError,
    Runloop,
    RunloopSDK,
)

from tests.conftest import API_KEY, ServerProcess

pytestmark = pytest.mark.docker


def _client(base_url: str, token: str = API_KEY) -> Runloop:
    return Runloop(base_url=base_url, bearer_token=token, _strict_response_validation=True, max_retries=0)


@pytest.fixture
def cleanup(server: ServerProcess) -> Iterator[list[str]]:
    """Devbox ids a test created: shut down afterwards whatever happened."""
    ids: list[str] = []
    yield ids
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30) as http:
        for devbox_id in ids:
            with contextlib.suppress(httpx.HTTPError):
                http.post(f"/v1/devboxes/{devbox_id}/shutdown", params={"force": "true"})


def test_rest_client_logs_tunnels_pty_and_the_executions_resource(server: ServerProcess, cleanup: list[str]) -> None:
    client = _client(server.base_url)
    try:
        devbox = client.devboxes.create_and_await_running(name="sdk-gaps")
        cleanup.append(devbox.id)

        # The executions resource's own execute_sync / execute_async (same endpoints as devboxes.*).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            synced = client.devboxes.executions.execute_sync(devbox.id, command="echo via-executions")
        assert synced.exit_status == 0 and synced.stdout == "via-executions\n"
        started = client.devboxes.executions.execute_async(devbox.id, command="echo async-executions")
        done = client.devboxes.executions.await_completed(started.execution_id, devbox_id=devbox.id)
        assert done.stdout == "async-executions\n"

        # logs.list, whole and per execution.
        logs = client.devboxes.logs.list(devbox.id)
        assert logs.logs, "a devbox that ran commands has log entries"
        assert all(entry.source for entry in logs.logs)
        mine = client.devboxes.logs.list(devbox.id, execution_id=started.execution_id)
        assert mine.logs and all(entry.cmd_id in (None, started.execution_id) for entry in mine.logs)
        assert any(entry.cmd_id == started.execution_id for entry in mine.logs)

        # Tunnels: enable (authenticated), seen on the devbox, a second enable refused, removed.
        tunnel = client.devboxes.enable_tunnel(devbox.id, auth_mode="authenticated", http_keep_alive=False)
        assert tunnel.auth_mode == "authenticated" and tunnel.auth_token
        assert tunnel.http_keep_alive is False
        info = client.devboxes.retrieve(devbox.id)
        assert info.tunnel is not None and info.tunnel.tunnel_key == tunnel.tunnel_key
        with pytest.raises(BadRequestError):
            client.devboxes.enable_tunnel(devbox.id, auth_mode="open")
        assert client.devboxes.remove_tunnel(devbox.id) == {}
        assert client.devboxes.retrieve(devbox.id).tunnel is None

        # PTY: create_pty_tunnel's token is the credential of the pty resource.
        pty_tunnel = client.devboxes.create_pty_tunnel(devbox.id)
        assert pty_tunnel.tunnel_key and pty_tunnel.auth_token
        terminal = _client(server.base_url, token=pty_tunnel.auth_token)
        try:
            name = f"sdk-{uuid.uuid4().hex[:8]}"
            connected = terminal.pty.connect(name, cols=100, rows=30)
            assert connected.created is True and connected.attached is False
            assert (connected.cols, connected.rows) == (100, 30)
            again = terminal.pty.connect(name)
            assert again.created is False
            resized = terminal.pty.control(name, action="resize", cols=80, rows=24)
            assert resized.session_name == name
            assert terminal.pty.control(name, action="signal", signal="SIGINT").session_name == name
            assert terminal.pty.control(name, action="close").status == "closed"
            with pytest.raises(NotFoundError):
                terminal.pty.control(f"{name}-unknown", action="close")
        finally:
            terminal.close()

        # Deprecated delete_disk_snapshot (the disk_snapshots resource's delete is driven elsewhere).
        snapshot = client.devboxes.snapshot_disk(devbox.id, name="sdk-gaps")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            assert client.devboxes.delete_disk_snapshot(snapshot.id) == {}
        assert client.devboxes.disk_snapshots.query_status(snapshot.id).status == "deleted"

        # Gateways and MCP are not provided: a clear 400 through the client, not a 404 or a 500.
        with pytest.raises(BadRequestError):
            client.devboxes.create_gateway_token(devbox.id, gateway="gw", secret="s")
        with pytest.raises(BadRequestError):
            client.devboxes.create_mcp_token(devbox.id, mcp_config="mcp", secret="s")
    finally:
        client.close()


def test_object_api_logs_network_and_resume_async(server: ServerProcess, cleanup: list[str]) -> None:
    runloop = RunloopSDK(bearer_token=API_KEY, base_url=server.base_url, max_retries=0)
    runloop.api._strict_response_validation = True  # RunloopSDK takes no such argument; set it on its client
    try:
        devbox = runloop.devbox.create(name="object-gaps")
        cleanup.append(devbox.id)
        result = devbox.cmd.exec("echo logged")
        assert result.success
        assert devbox.logs().logs
        assert any(entry.cmd_id == result.execution_id for entry in devbox.logs(execution_id=result.execution_id).logs)

        assert devbox.get_tunnel() is None and devbox.get_tunnel_url(8080) is None
        tunnel = devbox.net.enable_tunnel(auth_mode="open")
        assert tunnel.auth_mode == "open"
        seen = devbox.get_tunnel()
        assert seen is not None and seen.tunnel_key == tunnel.tunnel_key
        url = devbox.get_tunnel_url(8080)
        assert url is not None and url.startswith(f"https://8080-{tunnel.tunnel_key}.")
        assert devbox.net.remove_tunnel() == {}
        assert devbox.get_tunnel() is None

        key = devbox.net.create_ssh_key()
        assert key.id == devbox.id and key.ssh_private_key.startswith("-----BEGIN")

        assert devbox.suspend().status == "suspended"
        assert devbox.resume_async().status in ("resuming", "running")
        assert devbox.await_running().status == "running"
        assert devbox.cmd.exec("echo back").stdout() == "back\n"

        with pytest.raises(BadRequestError):  # blueprints are not provided: refused, never silently dropped
            runloop.devbox.create_from_blueprint_id("bpt_does_not_exist")
    finally:
        runloop.close()


def test_async_rest_client_files_logs_network_and_snapshots(server: ServerProcess, cleanup: list[str]) -> None:
    async def scenario() -> None:
        client = AsyncRunloop(
            base_url=server.base_url, bearer_token=API_KEY, _strict_response_validation=True, max_retries=0
        )
        try:
            devbox = await client.devboxes.create_and_await_running(name="async-gaps")
            cleanup.append(devbox.id)
            written = await client.devboxes.write_file_contents(devbox.id, file_path="a/b.txt", contents="async\n")
            assert written.exit_status == 0
            assert await client.devboxes.read_file_contents(devbox.id, file_path="a/b.txt") == "async\n"
            data = os.urandom(64 * 1024)
            assert await client.devboxes.upload_file(devbox.id, path="a/c.bin", file=("c.bin", data)) == {}
            downloaded = await client.devboxes.download_file(devbox.id, path="a/c.bin")
            assert await downloaded.read() == data
            with pytest.raises(NotFoundError):
                await client.devboxes.read_file_contents(devbox.id, file_path="a/missing.txt")

            reader = await client.devboxes.execute_async(devbox.id, command="tr a-z A-Z", attach_stdin=True)
            sent = await client.devboxes.executions.send_std_in(reader.execution_id, devbox_id=devbox.id, text="hi\n")
            assert sent.success
            await client.devboxes.executions.send_std_in(reader.execution_id, devbox_id=devbox.id, signal="EOF")
            shouted = await client.devboxes.executions.await_completed(reader.execution_id, devbox_id=devbox.id)
            assert shouted.stdout == "HI\n"
            sleeper = await client.devboxes.execute_async(devbox.id, command="sleep 60")
            killed = await client.devboxes.executions.kill(sleeper.execution_id, devbox_id=devbox.id)
            assert killed.execution_id == sleeper.execution_id
            assert (await client.devboxes.logs.list(devbox.id)).logs

            tunnel = await client.devboxes.enable_tunnel(devbox.id)
            assert tunnel.tunnel_key
            assert await client.devboxes.remove_tunnel(devbox.id) == {}
            assert (await client.devboxes.create_pty_tunnel(devbox.id)).auth_token
            assert (await client.devboxes.create_ssh_key(devbox.id)).id == devbox.id
            assert await client.devboxes.keep_alive(devbox.id) == {}
            assert (await client.devboxes.retrieve_resource_usage(devbox.id)).id == devbox.id

            snapshot = await client.devboxes.snapshot_disk(devbox.id, name="async-gaps", metadata={"k": "v"})
            renamed = await client.devboxes.disk_snapshots.update(snapshot.id, name="renamed", metadata={"k": "w"})
            assert (renamed.name, renamed.metadata) == ("renamed", {"k": "w"})
            listed = await client.devboxes.disk_snapshots.list(devbox_id=devbox.id)
            assert [s.id for s in listed.snapshots] == [snapshot.id]
            assert await client.devboxes.disk_snapshots.delete(snapshot.id) == {}
            assert (await client.devboxes.disk_snapshots.query_status(snapshot.id)).status == "deleted"
            updated = await client.devboxes.update(devbox.id, name="async-renamed")
            assert updated.name == "async-renamed"
            assert [d.id async for d in client.devboxes.list(limit=100) if d.id == devbox.id] == [devbox.id]
            assert (await client.devboxes.shutdown(devbox.id)).status == "shutdown"
        finally:
            await client.close()

    asyncio.run(scenario())


def test_async_object_api_files_network_logs_and_snapshots(server: ServerProcess, cleanup: list[str]) -> None:
    async def scenario() -> None:
        runloop = AsyncRunloopSDK(bearer_token=API_KEY, base_url=server.base_url, max_retries=0)
        runloop.api._strict_response_validation = True
        try:
            devbox = await runloop.devbox.create(name="async-object-gaps")
            cleanup.append(devbox.id)
            await devbox.file.write(file_path="notes.txt", contents="async object\n")
            assert await devbox.file.read(file_path="notes.txt") == "async object\n"
            data = os.urandom(32 * 1024)
            assert await devbox.file.upload(path="blob.bin", file=("blob.bin", data)) == {}
            assert await devbox.file.download(path="blob.bin") == data

            reader = await devbox.cmd.exec_async("tr a-z A-Z", attach_stdin=True)
            await reader.send_std_in("quiet\n")
            await reader.close_std_in()
            assert await (await reader.result()).stdout() == "QUIET\n"
            sleeper = await devbox.cmd.exec_async("sleep 60")
            await sleeper.kill()
            assert (await sleeper.result()).exit_code == 137  # SIGKILL
            assert (await devbox.logs()).logs

            tunnel = await devbox.net.enable_tunnel(auth_mode="open")
            assert (await devbox.get_tunnel()) is not None
            assert (await devbox.get_tunnel_url(3000) or "").startswith(f"https://3000-{tunnel.tunnel_key}.")
            assert await devbox.net.remove_tunnel() == {}
            assert (await devbox.net.create_ssh_key()).id == devbox.id
            assert await devbox.keep_alive() == {}

            snapshot = await devbox.snapshot_disk(name="async-object")
            assert (await snapshot.get_info()).status == "complete"
            later = await devbox.snapshot_disk_async(name="async-object-later")
            assert (await later.await_completed()).status == "complete"
            renamed = await snapshot.update(name="async-renamed")
            assert renamed.name == "async-renamed"
            assert {s.id for s in await runloop.snapshot.list(devbox_id=devbox.id)} == {snapshot.id, later.id}
            child = await snapshot.create_devbox(name="async-child")
            cleanup.append(child.id)
            assert (await child.get_info()).snapshot_id == snapshot.id
            assert await (await child.cmd.exec("cat notes.txt")).stdout() == "async object\n"
            assert (await child.shutdown()).status == "shutdown"
            assert await later.delete() == {}
            assert await snapshot.delete() == {}
            assert (await devbox.shutdown()).status == "shutdown"
        finally:
            await runloop.aclose()

    asyncio.run(scenario())
