"""The real Runloop Python client (runloop-api-client 3.0.0), unchanged, against a real devboxd and real
Docker, with strict response validation: the generated REST client (sync and async), its polling helpers,
its pagination, its exception mapping, and the high-level object API (`RunloopSDK`).

Not covered here because the server does not implement them yet: named shells, stdin, kill, output
streaming (so no `stdout=`/`stderr=` callbacks on `devbox.cmd.exec`), logs, files, snapshots, tunnels.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from runloop_api_client import (
    AsyncRunloop,
    AsyncRunloopSDK,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    Runloop,
    RunloopError,
    RunloopSDK,
)
from runloop_api_client._models import BaseModel
from runloop_api_client.lib.polling import PollingConfig, PollingTimeout
from runloop_api_client.types import DevboxView
from uuid_utils import uuid7  # the client's own UUIDv7 source

from tests.conftest import API_KEY, ServerProcess

pytestmark = pytest.mark.docker

UNKNOWN_DEVBOX = "dbx_does_not_exist_0000000000"


def _client(base_url: str, **kwargs: Any) -> Runloop:
    """Exactly how a user builds the client, plus strict validation so any schema slip fails the test."""
    return Runloop(base_url=base_url, bearer_token=API_KEY, _strict_response_validation=True, max_retries=0, **kwargs)


def _shutdown_quietly(base_url: str, devbox_ids: list[str]) -> None:
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30) as http:
        for devbox_id in devbox_ids:
            with contextlib.suppress(httpx.HTTPError):
                http.post(f"/v1/devboxes/{devbox_id}/shutdown")


@pytest.fixture
def cleanup(server: ServerProcess) -> Iterator[list[str]]:
    """Append every devbox id a test creates on the shared server; all are shut down afterwards."""
    ids: list[str] = []
    yield ids
    _shutdown_quietly(server.base_url, ids)


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Runloop]:
    runloop = _client(server.base_url)
    yield runloop
    runloop.close()


def _statuses(devbox: DevboxView) -> list[str]:
    return [t.status for t in devbox.state_transitions if t.status is not None]


def _is_subsequence(wanted: list[str], seen: list[str]) -> bool:
    it = iter(seen)
    return all(status in it for status in wanted)


# ----- 1. the headline flow ------------------------------------------------------------------------------------


def test_create_await_running_run_command_suspend_resume_shutdown(server: ServerProcess, cleanup: list[str]) -> None:
    runloop = _client(server.base_url)
    name = f"headline-{uuid.uuid4().hex[:6]}"
    devbox = runloop.devboxes.create_and_await_running(
        name=name,
        metadata={"team": "sdk", "purpose": "headline"},
        environment_variables={"GREETING": "hello-from-env"},
        launch_parameters={"launch_commands": ["echo launched > ~/launch.txt"]},
    )
    cleanup.append(devbox.id)
    try:
        assert devbox.status == "running"
        assert devbox.name == name
        assert devbox.metadata == {"team": "sdk", "purpose": "headline"}
        assert devbox.launch_parameters.launch_commands == ["echo launched > ~/launch.txt"]
        assert _is_subsequence(["provisioning", "running"], _statuses(devbox)), _statuses(devbox)

        # Deprecated execute_sync: still used by plenty of user code.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            sync_result = runloop.devboxes.execute_sync(devbox.id, command="echo $GREETING; cat ~/launch.txt")
        assert sync_result.devbox_id == devbox.id
        assert sync_result.exit_status == 0
        assert sync_result.stdout == "hello-from-env\nlaunched\n"

        # execute + wait, inline completion, with a nonzero exit and stderr.
        done = runloop.devboxes.execute_and_await_completion(devbox.id, command="echo out; echo err >&2; exit 3")
        assert done.status == "completed"
        assert done.exit_status == 3
        assert done.stdout == "out\n"
        assert done.stderr == "err\n"

        # A command outlasting optimistic_timeout comes back still running; the same command_id re-attaches
        # to it (no second run), and execute_and_await_completion then falls back to wait_for_command.
        command_id = str(uuid7())
        pending = runloop.devboxes.execute(
            devbox.id,
            command="sleep 2; echo slow-done >> ~/slow.txt; cat ~/slow.txt",
            command_id=command_id,
            optimistic_timeout=1,
        )
        assert pending.status in ("queued", "running")
        assert pending.exit_status is None
        slow = runloop.devboxes.execute_and_await_completion(
            devbox.id,
            command="sleep 2; echo slow-done >> ~/slow.txt; cat ~/slow.txt",
            command_id=command_id,
            optimistic_timeout=1,
        )
        assert slow.execution_id == pending.execution_id
        assert slow.status == "completed"
        assert slow.exit_status == 0
        assert slow.stdout == "slow-done\n", "the repeated command_id must not run the command twice"
        waited = runloop.devboxes.wait_for_command(
            pending.execution_id, devbox_id=devbox.id, statuses=["completed"], timeout_seconds=5
        )
        assert waited.status == "completed" and waited.stdout == "slow-done\n"

        # execute_async + executions.await_completed.
        started = runloop.devboxes.execute_async(devbox.id, command="sleep 1; echo async-done")
        assert started.devbox_id == devbox.id
        assert started.status in ("queued", "running")
        finished = runloop.devboxes.executions.await_completed(started.execution_id, devbox_id=devbox.id)
        assert finished.execution_id == started.execution_id
        assert finished.status == "completed"
        assert finished.exit_status == 0
        assert finished.stdout == "async-done\n"
        fetched = runloop.devboxes.executions.retrieve(started.execution_id, devbox_id=devbox.id)
        assert fetched.status == "completed" and fetched.stdout == "async-done\n"

        # last_n (a string in the client) trims the returned output to the last lines.
        tail = runloop.devboxes.execute_and_await_completion(
            devbox.id, command="printf 'first\\nsecond\\nthird\\n'", last_n="1"
        )
        assert tail.exit_status == 0
        assert "third" in (tail.stdout or "") and "first" not in (tail.stdout or "")

        # State written before suspend survives suspend/resume.
        wrote = runloop.devboxes.execute_and_await_completion(devbox.id, command="echo persisted > ~/state.txt")
        assert wrote.exit_status == 0

        suspending = runloop.devboxes.suspend(devbox.id)
        assert suspending.id == devbox.id
        assert suspending.status in ("suspending", "suspended")
        suspended = runloop.devboxes.await_suspended(devbox.id)
        assert suspended.status == "suspended"

        resuming = runloop.devboxes.resume(devbox.id)
        assert resuming.status in ("resuming", "running")
        running = runloop.devboxes.await_running(devbox.id)
        assert running.status == "running"

        after = runloop.devboxes.execute_and_await_completion(devbox.id, command="cat ~/state.txt; echo $GREETING")
        assert after.exit_status == 0
        assert after.stdout == "persisted\nhello-from-env\n"

        ended = runloop.devboxes.shutdown(devbox.id)
        assert ended.id == devbox.id
        assert ended.status == "shutdown"
        final = runloop.devboxes.retrieve(devbox.id)
        assert final.status == "shutdown"
        assert final.shutdown_reason == "api_shutdown"
        assert final.end_time_ms is not None
        assert _is_subsequence(
            ["provisioning", "running", "suspending", "suspended", "resuming", "running", "shutdown"], _statuses(final)
        ), _statuses(final)
    finally:
        runloop.close()


# ----- 2. create then await_running ------------------------------------------------------------------------------


def test_create_returns_provisioning_then_await_running(client: Runloop, cleanup: list[str]) -> None:
    created = client.devboxes.create(name="plain-create", launch_parameters={"launch_commands": ["sleep 1"]})
    cleanup.append(created.id)
    assert created.status == "provisioning"
    assert created.name == "plain-create"
    running = client.devboxes.await_running(created.id)
    assert running.id == created.id
    assert running.status == "running"
    ended = client.devboxes.shutdown(created.id, force="true")  # the client sends force as a string
    assert ended.status == "shutdown"


# ----- 3. retrieve, update, keep_alive, usage, metadata keys/values --------------------------------------------


def test_retrieve_update_keep_alive_and_usage(client: Runloop, cleanup: list[str]) -> None:
    devbox = client.devboxes.create_and_await_running(name="before", metadata={"a": "1"})
    cleanup.append(devbox.id)

    got = client.devboxes.retrieve(devbox.id)
    assert got.id == devbox.id
    assert got.status == "running"
    assert got.name == "before"
    assert got.metadata == {"a": "1"}
    assert got.create_time_ms == devbox.create_time_ms

    updated = client.devboxes.update(devbox.id, name="after", metadata={"b": "2"})
    assert updated.id == devbox.id
    assert updated.name == "after"
    assert updated.metadata == {"b": "2"}
    assert client.devboxes.retrieve(devbox.id).name == "after"

    assert client.devboxes.keep_alive(devbox.id) == {}

    usage = client.devboxes.retrieve_resource_usage(devbox.id)
    assert usage.id == devbox.id
    assert usage.status == "running"
    assert usage.start_time_ms >= devbox.create_time_ms
    assert usage.total_elapsed_seconds >= 0
    assert usage.total_active_seconds >= 0
    assert usage.vcpu_seconds >= 0 and usage.memory_gb_seconds >= 0 and usage.disk_gb_seconds >= 0
    assert usage.end_time_ms is None

    client.devboxes.shutdown(devbox.id)
    ended_usage = client.devboxes.retrieve_resource_usage(devbox.id)
    assert ended_usage.status == "shutdown"
    assert ended_usage.end_time_ms is not None


class _MetadataKeys(BaseModel):
    keys: list[str]


class _MetadataValues(BaseModel):
    key: str
    values: list[str]


def test_metadata_keys_and_values_through_the_client_transport(client: Runloop, cleanup: list[str]) -> None:
    """runloop-api-client 3.0.0 has no method for /v1/devboxes/metadata/keys; users reach it with the client's
    generic `get`, which still authenticates and (strictly) validates the body."""
    key = f"k{uuid.uuid4().hex[:8]}"
    devbox = client.devboxes.create(metadata={key: "v1"})
    cleanup.append(devbox.id)
    keys = client.get("/v1/devboxes/metadata/keys", cast_to=_MetadataKeys)
    assert key in keys.keys
    values = client.get(f"/v1/devboxes/metadata/keys/{key}/values", cast_to=_MetadataValues)
    assert values.key == key
    assert values.values == ["v1"]


# ----- 4. pagination ---------------------------------------------------------------------------------------------


def test_list_auto_paginates_over_every_page(server_factory: Callable[..., ServerProcess]) -> None:
    private = server_factory()
    sent: list[httpx.URL] = []  # what the client asks for, to check its paging parameters
    recorder = httpx.Client(event_hooks={"request": [lambda request: sent.append(request.url)]})
    runloop = _client(private.base_url, http_client=recorder)
    created: list[str] = []
    try:
        for i in range(5):
            created.append(runloop.devboxes.create(name=f"page-{i}").id)

        first = runloop.devboxes.list(limit=2)
        assert len(first.devboxes) == 2
        assert first.has_more is True
        assert first.total_count == 5

        pages = list(first.iter_pages())
        assert [len(p.devboxes) for p in pages] == [2, 2, 1]
        assert [p.has_more for p in pages] == [True, True, False]

        sent.clear()
        ids = [d.id for d in runloop.devboxes.list(limit=2)]
        assert ids == list(reversed(created)), "auto-pagination must yield every devbox once, newest first"
        assert [(u.path, u.params.get("limit"), u.params.get("starting_after")) for u in sent] == [
            ("/v1/devboxes", "2", None),
            ("/v1/devboxes", "2", ids[1]),
            ("/v1/devboxes", "2", ids[3]),
        ]

        no_count = runloop.devboxes.list(limit=2, include_total_count=False)
        assert no_count.total_count is None
        assert no_count.has_more is True

        for devbox_id in created:
            runloop.devboxes.shutdown(devbox_id)
        shut = [d.id for d in runloop.devboxes.list(limit=2, status="shutdown")]
        assert shut == list(reversed(created))
        assert [d.id for d in runloop.devboxes.list(limit=2, status="running")] == []
    finally:
        runloop.close()
        recorder.close()
        _shutdown_quietly(private.base_url, created)


# ----- 5. errors -------------------------------------------------------------------------------------------------


def test_unknown_ids_raise_not_found(client: Runloop) -> None:
    with pytest.raises(NotFoundError) as info:
        client.devboxes.retrieve(UNKNOWN_DEVBOX)
    assert info.value.status_code == 404
    assert UNKNOWN_DEVBOX in str(info.value.body)

    with pytest.raises(NotFoundError):
        client.devboxes.shutdown(UNKNOWN_DEVBOX)
    with pytest.raises(NotFoundError):
        client.devboxes.await_running(UNKNOWN_DEVBOX, polling_config=PollingConfig(timeout_seconds=5))
    with pytest.raises(NotFoundError):
        client.devboxes.execute_and_await_completion(UNKNOWN_DEVBOX, command="true")


def test_bad_api_key_raises_authentication_error(server: ServerProcess) -> None:
    runloop = Runloop(base_url=server.base_url, bearer_token="wrong-key", _strict_response_validation=True)
    try:
        with pytest.raises(AuthenticationError):
            runloop.devboxes.list()
    finally:
        runloop.close()


def test_wrong_state_and_unknown_execution(client: Runloop, cleanup: list[str]) -> None:
    devbox = client.devboxes.create_and_await_running()
    cleanup.append(devbox.id)

    with pytest.raises(BadRequestError) as info:
        client.devboxes.resume(devbox.id)
    assert info.value.status_code == 400
    assert info.value.body  # the server says what was wrong

    with pytest.raises(NotFoundError):
        client.devboxes.executions.retrieve("exe_does_not_exist", devbox_id=devbox.id)

    # A running devbox never becomes suspended: the client's polling gives up with PollingTimeout, after the
    # server held the long-poll (not an immediate tight 408 loop, not an early error).
    began = time.monotonic()
    with pytest.raises(PollingTimeout):
        client.devboxes.await_suspended(devbox.id, polling_config=PollingConfig(timeout_seconds=2))
    assert 1.5 <= time.monotonic() - began < 15

    client.devboxes.shutdown(devbox.id)
    with pytest.raises(BadRequestError):
        client.devboxes.suspend(devbox.id)


def test_failing_launch_command_makes_create_and_await_running_raise(client: Runloop, cleanup: list[str]) -> None:
    before = {d.id for d in client.devboxes.list(limit=5000)}
    with pytest.raises(RunloopError, match="non-running terminal state: failure") as info:
        client.devboxes.create_and_await_running(
            name="doomed", launch_parameters={"launch_commands": ["echo about to fail; exit 7"]}
        )
    assert not isinstance(info.value, PollingTimeout)
    new = [d for d in client.devboxes.list(limit=5000) if d.id not in before and d.name == "doomed"]
    assert len(new) == 1
    cleanup.append(new[0].id)
    failed = client.devboxes.retrieve(new[0].id)
    assert failed.status == "failure"
    assert failed.failure_reason == "execution_failed"
    with pytest.raises(RunloopError, match="non-running terminal state: failure"):
        client.devboxes.await_running(failed.id)


# ----- 6. the object API ------------------------------------------------------------------------------------------


def test_object_api_devbox_lifecycle(server: ServerProcess, cleanup: list[str]) -> None:
    runloop = RunloopSDK(bearer_token=API_KEY, base_url=server.base_url, max_retries=0)
    # RunloopSDK takes no `_strict_response_validation`; switch it on in the REST client it wraps.
    runloop.api._strict_response_validation = True
    try:
        devbox = runloop.devbox.create(name="object-api", metadata={"via": "RunloopSDK"})
        cleanup.append(devbox.id)

        info = devbox.get_info()
        assert info.status == "running"
        assert info.name == "object-api"
        assert info.metadata == {"via": "RunloopSDK"}

        result = devbox.cmd.exec("echo hi; echo oops >&2; exit 4")
        assert result.exit_code == 4
        assert result.failed and not result.success
        assert result.stdout() == "hi\n"
        assert result.stderr() == "oops\n"
        assert result.stdout(num_lines=1) == "hi"

        ok = devbox.cmd.exec("echo line1; echo line2")
        assert ok.success and ok.exit_code == 0
        assert ok.stdout() == "line1\nline2\n"

        execution = devbox.cmd.exec_async("sleep 1; echo later")
        assert execution.devbox_id == devbox.id
        assert execution.get_state().status in ("queued", "running", "completed")
        later = execution.result()
        assert later.exit_code == 0
        assert later.stdout() == "later\n"

        assert devbox.keep_alive() == {}
        assert devbox.id in {d.id for d in runloop.devbox.list(limit=100)}
        assert runloop.devbox.from_id(devbox.id).id == devbox.id

        devbox.cmd.exec("echo kept > ~/kept.txt")
        assert devbox.suspend().status == "suspended"
        assert devbox.resume().status == "running"
        assert devbox.cmd.exec("cat ~/kept.txt").stdout() == "kept\n"

        ended = devbox.shutdown()
        assert ended.status == "shutdown"
        assert devbox.get_info().shutdown_reason == "api_shutdown"
    finally:
        runloop.close()


# ----- 7. the async client ----------------------------------------------------------------------------------------


def test_async_client_headline_flow(server: ServerProcess, cleanup: list[str]) -> None:
    async def flow() -> None:
        runloop = AsyncRunloop(
            base_url=server.base_url, bearer_token=API_KEY, _strict_response_validation=True, max_retries=0
        )
        try:
            devbox = await runloop.devboxes.create_and_await_running(
                name="async", environment_variables={"WHO": "async-env"}
            )
            cleanup.append(devbox.id)
            assert devbox.status == "running"
            assert devbox.name == "async"

            done = await runloop.devboxes.execute_and_await_completion(devbox.id, command="echo $WHO; exit 2")
            assert done.status == "completed"
            assert done.exit_status == 2
            assert done.stdout == "async-env\n"

            started = await runloop.devboxes.execute_async(devbox.id, command="sleep 1; echo async-later")
            finished = await runloop.devboxes.executions.await_completed(started.execution_id, devbox_id=devbox.id)
            assert finished.status == "completed" and finished.stdout == "async-later\n"

            ended = await runloop.devboxes.shutdown(devbox.id)
            assert ended.status == "shutdown"
            final = await runloop.devboxes.retrieve(devbox.id)
            assert final.shutdown_reason == "api_shutdown"
        finally:
            await runloop.close()

    asyncio.run(flow())


def test_async_object_api_devbox(server: ServerProcess, cleanup: list[str]) -> None:
    async def flow() -> None:
        runloop = AsyncRunloopSDK(bearer_token=API_KEY, base_url=server.base_url, max_retries=0)
        runloop.api._strict_response_validation = True
        try:
            devbox = await runloop.devbox.create(name="async-object-api")
            cleanup.append(devbox.id)
            assert (await devbox.get_info()).status == "running"
            result = await devbox.cmd.exec("echo async-sdk; exit 5")
            assert result.exit_code == 5
            assert await result.stdout() == "async-sdk\n"
            # Unlike the sync SDK, AsyncDevbox.suspend returns at once; await_suspended waits.
            assert (await devbox.suspend()).status in ("suspending", "suspended")
            assert (await devbox.await_suspended()).status == "suspended"
            assert (await devbox.resume()).status == "running"
            assert (await devbox.shutdown()).status == "shutdown"
        finally:
            await runloop.aclose()  # AsyncRunloopSDK names it aclose

    asyncio.run(flow())
