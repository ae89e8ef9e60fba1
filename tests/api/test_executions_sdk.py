"""Executions through the real Runloop Python client (runloop-api-client 3.0.0), unchanged, against a real
devboxd and real Docker, with strict response validation: execute / execute_and_await_completion /
execute_async, named shells (`shell_name`, which 3.0.0 only sends through `extra_body`), output streaming
over SSE with resumable offsets, stdin, kill, and the object API's `devbox.cmd.exec` / `exec_async` with
output callbacks and the full-output fallback for truncated results."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from runloop_api_client import BadRequestError, Runloop, RunloopSDK
from runloop_api_client.types import DevboxAsyncExecutionDetailView
from uuid_utils import uuid7

from tests.conftest import API_KEY, ServerProcess

pytestmark = pytest.mark.docker

SIGKILL_EXIT = 137  # 128 + 9


@pytest.fixture(scope="module")
def devbox_id(module_devbox: str) -> str:
    return module_devbox


def _shell() -> str:
    return f"sh-{uuid.uuid4().hex[:8]}"


def _numbers(first: int, last: int) -> str:
    """What `seq first last` prints."""
    return "".join(f"{i}\n" for i in range(first, last + 1))


def _wait_running(sdk: Runloop, devbox_id: str, execution_id: str) -> None:
    running = sdk.devboxes.wait_for_command(
        execution_id, devbox_id=devbox_id, statuses=["running", "completed"], timeout_seconds=10
    )
    assert running.status == "running", running


def _stdout_chunks(sdk: Runloop, devbox_id: str, execution_id: str, offset: str | None = None) -> list[tuple[str, int]]:
    kwargs = {} if offset is None else {"offset": offset}
    with sdk.devboxes.executions.stream_stdout_updates(execution_id, devbox_id=devbox_id, **kwargs) as stream:
        return [(chunk.output, chunk.offset) for chunk in stream]


# ----- 1. execute_and_await_completion, execute, execute_async ----------------------------------------------------


def test_execute_and_await_completion_returns_completed_output(sdk: Runloop, devbox_id: str) -> None:
    done = sdk.devboxes.execute_and_await_completion(devbox_id, command="echo hello; echo warn >&2; exit 5")
    assert isinstance(done, DevboxAsyncExecutionDetailView)
    assert done.devbox_id == devbox_id
    assert done.execution_id.startswith("exe_")
    assert done.status == "completed"
    assert done.exit_status == 5
    assert done.stdout == "hello\n"
    assert done.stderr == "warn\n"
    assert done.stdout_truncated is False and done.stderr_truncated is False

    ok = sdk.devboxes.execute_and_await_completion(devbox_id, command="whoami; pwd")
    assert ok.exit_status == 0
    assert ok.stdout == "user\n/home/user\n"


def test_execute_and_await_completion_outlasting_the_optimistic_timeout(sdk: Runloop, devbox_id: str) -> None:
    began = time.monotonic()
    done = sdk.devboxes.execute_and_await_completion(devbox_id, command="sleep 2; echo finally", optimistic_timeout=1)
    assert done.status == "completed"
    assert done.exit_status == 0
    assert done.stdout == "finally\n"
    assert 1.5 <= time.monotonic() - began < 15


def test_execute_with_command_id_and_optimistic_timeout(sdk: Runloop, devbox_id: str) -> None:
    # Fast command: completes within the optimistic timeout, answered inline.
    fast = sdk.devboxes.execute(devbox_id, command="echo quick", command_id=str(uuid7()), optimistic_timeout=10)
    assert fast.status == "completed"
    assert fast.exit_status == 0
    assert fast.stdout == "quick\n"

    # Slow command: comes back still running after ~optimistic_timeout, without output.
    command_id = str(uuid7())
    marker = f"/home/user/ran-{command_id}"
    command = f"echo run >> {marker}; sleep 3; echo slow-done"
    began = time.monotonic()
    pending = sdk.devboxes.execute(devbox_id, command=command, command_id=command_id, optimistic_timeout=1)
    assert 0.8 <= time.monotonic() - began < 3
    assert pending.status in ("queued", "running")
    assert pending.exit_status is None
    assert pending.stdout is None

    # The same command_id re-attaches to the same execution instead of running it again.
    again = sdk.devboxes.execute(devbox_id, command=command, command_id=command_id, optimistic_timeout=10)
    assert again.execution_id == pending.execution_id
    assert again.status == "completed"
    assert again.exit_status == 0
    assert again.stdout == "slow-done\n"
    count = sdk.devboxes.execute_and_await_completion(devbox_id, command=f"wc -l < {marker}")
    assert count.stdout == "1\n", "a repeated command_id must not run the command twice"

    # last_n (a string in the client) cuts the inline output to the last lines.
    tail = sdk.devboxes.execute(
        devbox_id, command="seq 1 10", command_id=str(uuid7()), optimistic_timeout=10, last_n="2"
    )
    assert tail.stdout == "9\n10\n"
    assert tail.stdout_truncated is True


def test_execute_async_then_await_completed(sdk: Runloop, devbox_id: str) -> None:
    started = sdk.devboxes.execute_async(devbox_id, command="sleep 1; echo async-out; echo async-err >&2; exit 2")
    assert started.devbox_id == devbox_id
    assert started.status in ("queued", "running")
    assert started.exit_status is None

    finished = sdk.devboxes.executions.await_completed(started.execution_id, devbox_id=devbox_id)
    assert finished.execution_id == started.execution_id
    assert finished.status == "completed"
    assert finished.exit_status == 2
    assert finished.stdout == "async-out\n"
    assert finished.stderr == "async-err\n"

    fetched = sdk.devboxes.executions.retrieve(started.execution_id, devbox_id=devbox_id)
    assert fetched.status == "completed" and fetched.exit_status == 2 and fetched.stdout == "async-out\n"


# ----- 2. named shells --------------------------------------------------------------------------------------------


def test_named_shell_keeps_cwd_and_exported_variables(sdk: Runloop, devbox_id: str) -> None:
    shell = _shell()
    workdir = f"/tmp/{shell}"
    first = sdk.devboxes.execute_async(
        devbox_id,
        command=f"mkdir -p {workdir} && cd {workdir} && export SHELL_VAR=kept-{shell}; greet() {{ echo hi-$1; }}",
        extra_body={"shell_name": shell},
    )
    done = sdk.devboxes.executions.await_completed(first.execution_id, devbox_id=devbox_id)
    assert done.exit_status == 0, done.stderr

    # execute_async on the same shell: same cwd, same exported variable, same function.
    second = sdk.devboxes.execute_async(
        devbox_id, command='pwd; echo "$SHELL_VAR"; greet you', extra_body={"shell_name": shell}
    )
    second_done = sdk.devboxes.executions.await_completed(second.execution_id, devbox_id=devbox_id)
    assert second_done.exit_status == 0, second_done.stderr
    assert second_done.stdout == f"{workdir}\nkept-{shell}\nhi-you\n"

    # execute (command_id) and execute_and_await_completion pass shell_name the same way.
    third = sdk.devboxes.execute(
        devbox_id,
        command="cd .. && export SECOND=two",
        command_id=str(uuid7()),
        optimistic_timeout=10,
        extra_body={"shell_name": shell},
    )
    assert third.status == "completed" and third.exit_status == 0
    fourth = sdk.devboxes.execute_and_await_completion(
        devbox_id, command='pwd; echo "$SHELL_VAR $SECOND"', extra_body={"shell_name": shell}
    )
    assert fourth.exit_status == 0
    assert fourth.stdout == f"/tmp\nkept-{shell} two\n"

    # A command exiting nonzero keeps the shell and its state.
    failing = sdk.devboxes.execute_and_await_completion(
        devbox_id, command="export AFTER_FAIL=yes; exit 3", extra_body={"shell_name": shell}
    )
    assert failing.exit_status == 3
    survived = sdk.devboxes.execute_and_await_completion(
        devbox_id, command='pwd; echo "$AFTER_FAIL"', extra_body={"shell_name": shell}
    )
    assert survived.stdout == "/tmp\nyes\n"

    # Unnamed commands and other shells start fresh in the home directory.
    unnamed = sdk.devboxes.execute_and_await_completion(devbox_id, command='pwd; echo "[$SHELL_VAR]"')
    assert unnamed.stdout == "/home/user\n[]\n"
    other = sdk.devboxes.execute_and_await_completion(
        devbox_id, command='pwd; echo "[$SHELL_VAR]"', extra_body={"shell_name": _shell()}
    )
    assert other.stdout == "/home/user\n[]\n"


def test_named_shell_runs_its_commands_one_at_a_time_in_order(sdk: Runloop, devbox_id: str) -> None:
    shell = _shell()
    log = f"/tmp/order-{shell}"
    first = sdk.devboxes.execute_async(
        devbox_id, command=f"echo a-start >> {log}; sleep 1.5; echo a-end >> {log}", extra_body={"shell_name": shell}
    )
    second = sdk.devboxes.execute_async(devbox_id, command=f"echo b >> {log}", extra_body={"shell_name": shell})
    assert second.status == "queued", "the second command on a busy shell waits its turn"
    done = sdk.devboxes.executions.await_completed(second.execution_id, devbox_id=devbox_id)
    assert done.exit_status == 0
    assert sdk.devboxes.executions.retrieve(first.execution_id, devbox_id=devbox_id).status == "completed"
    assert sdk.devboxes.execute_and_await_completion(devbox_id, command=f"cat {log}").stdout == "a-start\na-end\nb\n"


# ----- 3. output streams ------------------------------------------------------------------------------------------


def test_stream_stdout_and_stderr_updates_give_the_whole_output(sdk: Runloop, devbox_id: str) -> None:
    command = "for i in $(seq 1 30); do echo out$i; echo err$i >&2; sleep 0.03; done"
    started = sdk.devboxes.execute_async(devbox_id, command=command)

    # Both streams are read while the command runs, until the server ends them when it completed.
    stderr_chunks: list[str] = []

    def read_stderr() -> None:
        with sdk.devboxes.executions.stream_stderr_updates(started.execution_id, devbox_id=devbox_id) as stream:
            stderr_chunks.extend(chunk.output for chunk in stream)

    reader = threading.Thread(target=read_stderr)
    reader.start()
    stdout_chunks = _stdout_chunks(sdk, devbox_id, started.execution_id)
    reader.join(timeout=30)
    assert not reader.is_alive(), "stream_stderr_updates did not end after the command completed"

    expected_out = "".join(f"out{i}\n" for i in range(1, 31))
    expected_err = "".join(f"err{i}\n" for i in range(1, 31))
    assert "".join(text for text, _ in stdout_chunks) == expected_out
    assert "".join(stderr_chunks) == expected_err
    # Each chunk's offset is the byte offset where it ends.
    ends = [offset for _, offset in stdout_chunks]
    assert ends == sorted(ends) and ends[-1] == len(expected_out.encode())

    done = sdk.devboxes.executions.retrieve(started.execution_id, devbox_id=devbox_id)
    assert done.status == "completed"
    assert done.stdout == expected_out and done.stderr == expected_err


def test_stream_of_a_large_multibyte_output(sdk: Runloop, devbox_id: str) -> None:
    # 3-byte characters, so the server's 64 KiB reads end inside characters; the chunks must still decode.
    count = 100_000
    started = sdk.devboxes.execute_async(
        devbox_id, command=f"for i in $(seq 1 {count // 1000}); do printf '€%.0s' $(seq 1 1000); done; echo"
    )
    sdk.devboxes.executions.await_completed(started.execution_id, devbox_id=devbox_id)
    chunks = _stdout_chunks(sdk, devbox_id, started.execution_id)
    assert len(chunks) > 1
    assert "".join(text for text, _ in chunks) == "€" * count + "\n"
    assert chunks[-1][1] == 3 * count + 1


def test_stream_from_an_offset_resumes_without_repeats(sdk: Runloop, devbox_id: str) -> None:
    expected = _numbers(1, 3000)
    done = sdk.devboxes.execute_and_await_completion(devbox_id, command="seq 1 3000")
    assert done.stdout_truncated is True  # only the last 100 lines come inline

    whole = "".join(text for text, _ in _stdout_chunks(sdk, devbox_id, done.execution_id))
    assert whole == expected
    for offset in (0, 1, 1234, len(expected) - 1):
        resumed = "".join(text for text, _ in _stdout_chunks(sdk, devbox_id, done.execution_id, offset=str(offset)))
        assert resumed == expected[offset:], offset
    assert _stdout_chunks(sdk, devbox_id, done.execution_id, offset=str(len(expected))) == []

    with sdk.devboxes.executions.stream_stderr_updates(done.execution_id, devbox_id=devbox_id) as stream:
        assert [chunk.output for chunk in stream] == []


def test_stream_interrupted_mid_command_resumes_from_the_last_offset(sdk: Runloop, devbox_id: str) -> None:
    started = sdk.devboxes.execute_async(devbox_id, command="for i in $(seq 1 40); do echo line$i; sleep 0.05; done")
    stream = sdk.devboxes.executions.stream_stdout_updates(started.execution_id, devbox_id=devbox_id)
    first = next(iter(stream))
    stream.close()  # the reader goes away while the command still prints
    assert first.offset is not None and first.offset == len(first.output.encode())

    rest = _stdout_chunks(sdk, devbox_id, started.execution_id, offset=str(first.offset))
    assert first.output + "".join(text for text, _ in rest) == "".join(f"line{i}\n" for i in range(1, 41))


def test_stream_survives_a_quiet_command_longer_than_the_keepalive(sdk: Runloop, devbox_id: str) -> None:
    # The server pings an idle SSE stream every 10 s; the client must skip the pings and keep the chunks.
    started = sdk.devboxes.execute_async(devbox_id, command="echo before; sleep 11; echo after")
    chunks = _stdout_chunks(sdk, devbox_id, started.execution_id)
    assert "".join(text for text, _ in chunks) == "before\nafter\n"


# ----- 4. stdin and kill ------------------------------------------------------------------------------------------


def test_send_std_in_text_then_eof(sdk: Runloop, devbox_id: str) -> None:
    started = sdk.devboxes.execute_async(
        devbox_id,
        command='while IFS= read -r line; do echo "got:$line"; done; echo eof',
        attach_stdin=True,
    )
    sent = sdk.devboxes.executions.send_std_in(started.execution_id, devbox_id=devbox_id, text="alpha\nbeta\n")
    assert sent.success is True
    assert sent.execution_id == started.execution_id and sent.devbox_id == devbox_id
    assert sdk.devboxes.executions.send_std_in(started.execution_id, devbox_id=devbox_id, text="gamma\n").success
    time.sleep(0.3)
    assert sdk.devboxes.executions.retrieve(started.execution_id, devbox_id=devbox_id).status == "running"

    assert sdk.devboxes.executions.send_std_in(started.execution_id, devbox_id=devbox_id, signal="EOF").success
    done = sdk.devboxes.executions.await_completed(started.execution_id, devbox_id=devbox_id)
    assert done.exit_status == 0
    assert done.stdout == "got:alpha\ngot:beta\ngot:gamma\neof\n"

    # Input for a completed execution, or one started without attach_stdin, is refused.
    with pytest.raises(BadRequestError):
        sdk.devboxes.executions.send_std_in(started.execution_id, devbox_id=devbox_id, text="late\n")
    detached = sdk.devboxes.execute_async(devbox_id, command="sleep 5")
    try:
        with pytest.raises(BadRequestError):
            sdk.devboxes.executions.send_std_in(detached.execution_id, devbox_id=devbox_id, text="nope\n")
    finally:
        sdk.devboxes.executions.kill(detached.execution_id, devbox_id=devbox_id)


def test_send_std_in_interrupt_signals_the_command(sdk: Runloop, devbox_id: str) -> None:
    started = sdk.devboxes.execute_async(
        devbox_id,
        command="trap 'echo caught; exit 9' INT; echo ready; while true; do sleep 0.1; done",
        attach_stdin=True,
    )
    with sdk.devboxes.executions.stream_stdout_updates(started.execution_id, devbox_id=devbox_id) as stream:
        assert next(iter(stream)).output == "ready\n"  # the trap is set
    sent = sdk.devboxes.executions.send_std_in(started.execution_id, devbox_id=devbox_id, signal="INTERRUPT")
    assert sent.success is True
    done = sdk.devboxes.executions.await_completed(started.execution_id, devbox_id=devbox_id)
    assert done.exit_status == 9
    assert done.stdout == "ready\ncaught\n"


def test_stdin_and_kill_of_commands_queued_on_a_named_shell(sdk: Runloop, devbox_id: str) -> None:
    shell = _shell()
    busy = sdk.devboxes.execute_async(devbox_id, command="sleep 1.5; echo first", extra_body={"shell_name": shell})
    doomed = sdk.devboxes.execute_async(devbox_id, command="echo doomed", extra_body={"shell_name": shell})
    reader = sdk.devboxes.execute_async(
        devbox_id, command="cat; echo read-done", attach_stdin=True, extra_body={"shell_name": shell}
    )
    assert doomed.status == "queued" and reader.status == "queued"

    # Input sent while queued is delivered, in order, once the command starts.
    sdk.devboxes.executions.send_std_in(reader.execution_id, devbox_id=devbox_id, text="queued-input\n")
    sdk.devboxes.executions.send_std_in(reader.execution_id, devbox_id=devbox_id, signal="EOF")

    # A queued command killed never runs, and the shell goes on with the next one.
    killed = sdk.devboxes.executions.kill(doomed.execution_id, devbox_id=devbox_id)
    assert killed.status == "completed"
    assert killed.exit_status == SIGKILL_EXIT
    assert killed.stdout == ""

    assert sdk.devboxes.executions.await_completed(busy.execution_id, devbox_id=devbox_id).stdout == "first\n"
    read = sdk.devboxes.executions.await_completed(reader.execution_id, devbox_id=devbox_id)
    assert read.exit_status == 0
    assert read.stdout == "queued-input\nread-done\n"


def test_kill_a_running_execution(sdk: Runloop, devbox_id: str) -> None:
    started = sdk.devboxes.execute_async(devbox_id, command="echo started; sleep 60; echo never")
    _wait_running(sdk, devbox_id, started.execution_id)
    began = time.monotonic()
    killed = sdk.devboxes.executions.kill(started.execution_id, devbox_id=devbox_id)
    assert time.monotonic() - began < 10
    assert killed.execution_id == started.execution_id
    assert killed.status == "completed"
    assert killed.exit_status == SIGKILL_EXIT
    assert "never" not in (killed.stdout or "")
    fetched = sdk.devboxes.executions.retrieve(started.execution_id, devbox_id=devbox_id)
    assert fetched.status == "completed" and fetched.exit_status == SIGKILL_EXIT

    # Killing it again answers with the completed execution.
    again = sdk.devboxes.executions.kill(started.execution_id, devbox_id=devbox_id)
    assert again.status == "completed" and again.exit_status == SIGKILL_EXIT


def test_kill_process_group_ends_the_commands_children(sdk: Runloop, devbox_id: str) -> None:
    pid_file = f"/tmp/child-{uuid.uuid4().hex[:8]}"
    started = sdk.devboxes.execute_async(devbox_id, command=f"sleep 300 & echo $! > {pid_file}; wait")
    _wait_running(sdk, devbox_id, started.execution_id)
    deadline = time.monotonic() + 10
    while sdk.devboxes.execute_and_await_completion(devbox_id, command=f"test -s {pid_file}").exit_status != 0:
        assert time.monotonic() < deadline, "the command never wrote its child's pid"
        time.sleep(0.1)

    killed = sdk.devboxes.executions.kill(started.execution_id, devbox_id=devbox_id, kill_process_group=True)
    assert killed.status == "completed"
    assert killed.exit_status == SIGKILL_EXIT
    alive = sdk.devboxes.execute_and_await_completion(devbox_id, command=f"kill -0 $(cat {pid_file}) 2>/dev/null")
    assert alive.exit_status != 0, "the background child outlived a process-group kill"


# ----- 5. the object API ------------------------------------------------------------------------------------------


@pytest.fixture
def object_sdk(server: ServerProcess) -> Iterator[RunloopSDK]:
    runloop = RunloopSDK(bearer_token=API_KEY, base_url=server.base_url, max_retries=0)
    # RunloopSDK takes no `_strict_response_validation`; switch it on in the REST client it wraps.
    runloop.api._strict_response_validation = True
    yield runloop
    runloop.close()


def test_object_api_exec_with_callbacks_async_and_long_output(object_sdk: RunloopSDK) -> None:
    devbox = object_sdk.devbox.create(name="exec-object-api")
    try:
        # exec with callbacks: they receive the output as it streams (in chunks of whole lines here).
        out: list[str] = []
        err: list[str] = []
        both: list[str] = []
        result = devbox.cmd.exec(
            "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.1; done; exit 6",
            stdout=out.append,
            stderr=err.append,
            output=both.append,
        )
        assert result.exit_code == 6
        assert result.failed and not result.success
        assert result.stdout() == "out1\nout2\nout3\n"
        assert result.stderr() == "err1\nerr2\nerr3\n"
        assert "".join(out) == result.stdout()
        assert "".join(err) == result.stderr()
        assert sorted(both) == sorted(out + err), "output= sees every stdout and stderr chunk"
        assert result.stdout(num_lines=2) == "out2\nout3"

        # exec_async: returns at once; result() waits; the callbacks have everything by then.
        later: list[str] = []
        execution = devbox.cmd.exec_async("sleep 1; echo later; echo done", stdout=later.append)
        assert execution.devbox_id == devbox.id
        assert execution.get_state().status in ("queued", "running")
        finished = execution.result()
        assert finished.exit_code == 0
        assert finished.stdout() == "later\ndone\n"
        assert "".join(later) == "later\ndone\n"

        # 500 lines: the inline result holds the last 100 and says it is truncated; stdout() streams it all.
        lines: list[str] = []
        long = devbox.cmd.exec("seq 1 500", stdout=lines.append)
        assert long.exit_code == 0
        assert long.result.stdout_truncated is True
        assert long.result.stdout == _numbers(401, 500)
        assert long.stdout() == _numbers(1, 500)
        assert long.stdout(num_lines=3) == "498\n499\n500"
        assert "".join(lines) == _numbers(1, 500)

        # A named shell through the object API's extra_body.
        shell = _shell()
        assert devbox.cmd.exec("cd /tmp && export OBJ=yes", extra_body={"shell_name": shell}).success
        assert devbox.cmd.exec('pwd; echo "$OBJ"', extra_body={"shell_name": shell}).stdout() == "/tmp\nyes\n"
    finally:
        assert devbox.shutdown().status == "shutdown"


def test_object_api_stdin_and_kill(object_sdk: RunloopSDK) -> None:
    devbox = object_sdk.devbox.create(name="exec-object-api-stdin")
    try:
        reader = devbox.cmd.exec_async("tr a-z A-Z", attach_stdin=True)
        reader.send_std_in("hello\n")
        reader.send_std_in("world\n")
        reader.close_std_in()
        shouted = reader.result()
        assert shouted.exit_code == 0
        assert shouted.stdout() == "HELLO\nWORLD\n"

        sleeper = devbox.cmd.exec_async("sleep 60")
        _wait_running(object_sdk.api, devbox.id, sleeper.execution_id)
        sleeper.kill()
        ended = sleeper.result()
        assert ended.exit_code == SIGKILL_EXIT
        assert ended.failed
    finally:
        assert devbox.shutdown().status == "shutdown"
