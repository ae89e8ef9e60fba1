"""Executions in depth: execute_sync/execute_async/execute, last_n, wait_for_status, kill (with and without the
process group), send_std_in (text, EOF, INTERRUPT), named shells (state, ordering, independence), byte-exact
output, SSE output streams with offsets, exec logs and their live tail, suspended/shut-down devboxes, big output
with bounded server memory, concurrency, and output kept across a server restart."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import API_KEY, wait_for

EXECUTION_FIELDS = {
    "devbox_id",
    "execution_id",
    "status",
    "shell_name",
    "stdout",
    "stderr",
    "exit_status",
    "stdout_truncated",
    "stderr_truncated",
}


@pytest.fixture(scope="module")
def devbox_id(module_devbox: str) -> str:
    return module_devbox


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def sync(http: httpx.Client, devbox_id: str, command: str, shell_name: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"command": command}
    if shell_name is not None:
        body["shell_name"] = shell_name
    response = http.post(f"/v1/devboxes/{devbox_id}/execute_sync", json=body)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def start(http: httpx.Client, devbox_id: str, command: str, **extra: Any) -> dict[str, Any]:
    response = http.post(f"/v1/devboxes/{devbox_id}/execute_async", json={"command": command, **extra})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def exec_url(devbox_id: str, execution_id: str) -> str:
    return f"/v1/devboxes/{devbox_id}/executions/{execution_id}"


def wait_exec(
    http: httpx.Client, devbox_id: str, execution_id: str, statuses: list[str], seconds: float = 60
) -> dict[str, Any]:
    """Long-poll the execution's wait_for_status until one of `statuses`, re-asking on 408."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = http.post(
            exec_url(devbox_id, execution_id) + "/wait_for_status", json={"statuses": statuses, "timeout_seconds": 10}
        )
        if response.status_code == 200:
            return response.json()  # type: ignore[no-any-return]
        assert response.status_code == 408, response.text
    raise AssertionError(f"execution {execution_id} never reached {statuses}")


def done(http: httpx.Client, devbox_id: str, execution_id: str, seconds: float = 60) -> dict[str, Any]:
    return wait_exec(http, devbox_id, execution_id, ["completed"], seconds)


def sse_lines(response: httpx.Response) -> Iterator[str]:
    """Every non-blank line of an SSE response, checking that it is a `data:` line or a comment."""
    for line in response.iter_lines():
        if not line:
            continue
        assert line.startswith("data: ") or line.startswith(":"), f"unexpected SSE line {line!r}"
        yield line


def sse_data(response: httpx.Response) -> Iterator[dict[str, Any]]:
    for line in sse_lines(response):
        if line.startswith("data: "):
            yield json.loads(line[len("data: ") :])


def read_stream(http: httpx.Client, devbox_id: str, execution_id: str, which: str, **params: Any) -> list[dict]:
    url = exec_url(devbox_id, execution_id) + f"/stream_{which}_updates"
    with http.stream("GET", url, params=params, timeout=30) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(sse_data(response))


def first_chunk(http: httpx.Client, devbox_id: str, execution_id: str) -> dict[str, Any]:
    """The first stdout chunk of a running execution, read live from the SSE stream."""
    url = exec_url(devbox_id, execution_id) + "/stream_stdout_updates"
    with http.stream("GET", url, timeout=30) as response:
        assert response.status_code == 200
        return next(sse_data(response))


def process_alive(http: httpx.Client, devbox_id: str, pid_file: str) -> bool:
    """Whether the pid in `pid_file` is a live (non-zombie) process, allowing a moment for a SIGKILL to land."""
    script = (
        f"pid=$(cat {pid_file}); "
        "for i in $(seq 1 50); do "
        "state=$(awk '/^State:/{print $2}' /proc/$pid/status 2>/dev/null); "
        '[ -z "$state" ] || [ "$state" = Z ] && { echo gone; exit 0; }; sleep 0.1; done; echo alive'
    )
    return sync(http, devbox_id, script)["stdout"] == "alive\n"


# ---------------------------------------------------------------- basic execution endpoints


def test_execute_sync_view_and_attach_stdin_rejected(shared_http, devbox_id):
    result = sync(shared_http, devbox_id, "echo hi; echo there >&2; exit 2")
    assert result == {
        "devbox_id": devbox_id,
        "stdout": "hi\n",
        "stderr": "there\n",
        "exit_status": 2,
        "shell_name": None,
    }
    named = sync(shared_http, devbox_id, "echo named", shell_name=unique("sync"))
    assert named["stdout"] == "named\n"
    assert named["shell_name"].startswith("sync-")

    refused = shared_http.post(
        f"/v1/devboxes/{devbox_id}/execute_sync", json={"command": "echo no", "attach_stdin": True}
    )
    assert refused.status_code == 400, refused.text
    assert set(refused.json()) == {"error", "detail"}


def test_execute_async_view_shape(shared_http, devbox_id):
    shell = unique("shape")
    started = start(shared_http, devbox_id, "echo one; echo two >&2", shell_name=shell)
    assert set(started) >= EXECUTION_FIELDS
    assert started["devbox_id"] == devbox_id
    assert started["shell_name"] == shell
    assert started["status"] in ("queued", "running", "completed")
    if started["status"] != "completed":
        assert started["stdout"] is None and started["stderr"] is None and started["exit_status"] is None
    finished = done(shared_http, devbox_id, started["execution_id"])
    assert set(finished) >= EXECUTION_FIELDS
    assert (finished["status"], finished["exit_status"]) == ("completed", 0)
    assert (finished["stdout"], finished["stderr"]) == ("one\n", "two\n")
    assert finished["stdout_truncated"] is False and finished["stderr_truncated"] is False
    assert finished["shell_name"] == shell

    pending = start(shared_http, devbox_id, "sleep 2")
    assert pending["status"] in ("queued", "running")
    assert (pending["stdout"], pending["stderr"], pending["exit_status"]) == (None, None, None)
    assert done(shared_http, devbox_id, pending["execution_id"])["exit_status"] == 0


def test_execute_with_command_id_and_last_n_runs_once(shared_http, devbox_id):
    command_id = str(uuid.uuid4())
    counter = f"/tmp/{unique('count')}"
    body = {
        "command_id": command_id,
        "command": f"echo x >> {counter}; for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done",
        "optimistic_timeout": 20,
    }
    url = f"/v1/devboxes/{devbox_id}/execute"
    first = shared_http.post(url, params={"last_n": 2}, json=body)
    assert first.status_code == 200, first.text
    view = first.json()
    assert (view["status"], view["exit_status"]) == ("completed", 0)
    assert (view["stdout"], view["stderr"]) == ("out4\nout5\n", "err4\nerr5\n")
    assert view["stdout_truncated"] is True and view["stderr_truncated"] is True

    again = shared_http.post(url, params={"last_n": 10}, json=body)
    assert again.status_code == 200, again.text
    assert again.json()["execution_id"] == view["execution_id"]
    assert again.json()["stdout"] == "".join(f"out{i}\n" for i in range(1, 6))
    assert again.json()["stdout_truncated"] is False
    assert sync(shared_http, devbox_id, f"wc -l < {counter}")["stdout"] == "1\n"


def test_get_execution_last_n_defaults_to_100_lines(shared_http, devbox_id):
    started = start(shared_http, devbox_id, "seq 1 150; seq 1 3 >&2")
    done(shared_http, devbox_id, started["execution_id"])
    url = exec_url(devbox_id, started["execution_id"])

    default = shared_http.get(url).json()
    assert default["stdout"] == "".join(f"{i}\n" for i in range(51, 151))
    assert default["stdout_truncated"] is True
    assert default["stderr"] == "1\n2\n3\n"
    assert default["stderr_truncated"] is False

    all_lines = shared_http.get(url, params={"last_n": 150}).json()
    assert all_lines["stdout"] == "".join(f"{i}\n" for i in range(1, 151))
    assert all_lines["stdout_truncated"] is False

    one = shared_http.get(url, params={"last_n": 1}).json()
    assert (one["stdout"], one["stderr"]) == ("150\n", "3\n")
    assert one["stdout_truncated"] is True and one["stderr_truncated"] is True
    waited = shared_http.post(url + "/wait_for_status", params={"last_n": 2}, json={"statuses": ["completed"]})
    assert waited.status_code == 200, waited.text
    assert (waited.json()["stdout"], waited.json()["stdout_truncated"]) == ("149\n150\n", True)


def test_execution_wait_for_status_holds_then_408(shared_http, devbox_id):
    started = start(shared_http, devbox_id, "sleep 30")
    url = exec_url(devbox_id, started["execution_id"])
    wait_exec(shared_http, devbox_id, started["execution_id"], ["running"])
    t0 = time.monotonic()
    response = shared_http.post(url + "/wait_for_status", json={"statuses": ["completed"], "timeout_seconds": 1})
    assert response.status_code == 408, response.text
    assert time.monotonic() - t0 >= 0.9  # it held the request rather than answering at once
    killed = shared_http.post(url + "/kill", json={})
    assert killed.status_code == 200, killed.text


def test_unknown_execution_and_devbox_are_404(shared_http, devbox_id):
    missing = exec_url(devbox_id, "exe_doesnotexist")
    assert shared_http.get(missing).status_code == 404
    assert shared_http.post(missing + "/kill", json={}).status_code == 404
    waited = shared_http.post(missing + "/wait_for_status", json={"statuses": ["completed"], "timeout_seconds": 1})
    assert waited.status_code == 404
    assert shared_http.post("/v1/devboxes/dbx_nope/execute_async", json={"command": "true"}).status_code == 404
    assert shared_http.post("/v1/devboxes/dbx_nope/execute_sync", json={"command": "true"}).status_code == 404


# ---------------------------------------------------------------- kill


def test_kill_running_execution_returns_output_so_far(shared_http, devbox_id):
    started = start(shared_http, devbox_id, "echo err-before >&2; echo before-kill; sleep 300; echo after-kill")
    eid = started["execution_id"]
    assert first_chunk(shared_http, devbox_id, eid)["output"] == "before-kill\n"
    killed = shared_http.post(exec_url(devbox_id, eid) + "/kill", json={})
    assert killed.status_code == 200, killed.text
    view = killed.json()
    assert set(view) >= EXECUTION_FIELDS
    assert (view["execution_id"], view["status"], view["exit_status"]) == (eid, "completed", 137)
    assert view["stdout"] == "before-kill\n"
    assert view["stderr"] == "err-before\n"
    again = shared_http.get(exec_url(devbox_id, eid)).json()
    assert (again["status"], again["exit_status"], again["stdout"]) == ("completed", 137, "before-kill\n")


def test_kill_without_body_is_accepted_and_ends_open_streams(shared_http, devbox_id):
    started = start(shared_http, devbox_id, "echo go; sleep 300")
    eid = started["execution_id"]
    with shared_http.stream("GET", exec_url(devbox_id, eid) + "/stream_stdout_updates", timeout=30) as response:
        events = sse_data(response)
        assert next(events) == {"output": "go\n", "offset": 3}
        killed = shared_http.post(exec_url(devbox_id, eid) + "/kill")
        assert killed.status_code == 200, killed.text
        assert (killed.json()["status"], killed.json()["exit_status"]) == ("completed", 137)
        assert list(events) == []  # the stream closes once the execution is over


def test_kill_without_process_group_leaves_background_children(shared_http, devbox_id):
    pid_file = f"/tmp/{unique('bgpid')}"
    started = start(shared_http, devbox_id, f"sleep 300 & echo $! > {pid_file}; echo ready; sleep 300")
    eid = started["execution_id"]
    assert first_chunk(shared_http, devbox_id, eid)["output"] == "ready\n"
    try:
        killed = shared_http.post(exec_url(devbox_id, eid) + "/kill", json={"kill_process_group": False})
        assert killed.status_code == 200, killed.text
        assert (killed.json()["status"], killed.json()["exit_status"]) == ("completed", 137)
        assert killed.json()["stdout"] == "ready\n"
        assert sync(shared_http, devbox_id, f"kill -0 $(cat {pid_file}) && echo alive")["stdout"] == "alive\n"
    finally:
        sync(shared_http, devbox_id, f"kill -9 $(cat {pid_file}) 2>/dev/null; true")


def test_kill_with_process_group_kills_background_children(shared_http, devbox_id):
    pid_file = f"/tmp/{unique('bgpid')}"
    started = start(shared_http, devbox_id, f"sleep 300 & echo $! > {pid_file}; echo ready; sleep 300")
    eid = started["execution_id"]
    assert first_chunk(shared_http, devbox_id, eid)["output"] == "ready\n"
    try:
        assert sync(shared_http, devbox_id, f"kill -0 $(cat {pid_file}) && echo alive")["stdout"] == "alive\n"
        killed = shared_http.post(exec_url(devbox_id, eid) + "/kill", json={"kill_process_group": True})
        assert killed.status_code == 200, killed.text
        assert (killed.json()["status"], killed.json()["exit_status"]) == ("completed", 137)
        assert not process_alive(shared_http, devbox_id, pid_file)
    finally:
        sync(shared_http, devbox_id, f"kill -9 $(cat {pid_file}) 2>/dev/null; true")


def test_kill_queued_named_shell_execution_never_runs_it(shared_http, devbox_id):
    shell = unique("killq")
    marker = f"/tmp/{unique('marker')}"
    busy = start(shared_http, devbox_id, "echo busy; sleep 300", shell_name=shell)
    first_chunk(shared_http, devbox_id, busy["execution_id"])
    queued = start(shared_http, devbox_id, f"touch {marker}; echo ran", shell_name=shell)
    assert shared_http.get(exec_url(devbox_id, queued["execution_id"])).json()["status"] == "queued"

    killed = shared_http.post(exec_url(devbox_id, queued["execution_id"]) + "/kill", json={})
    assert killed.status_code == 200, killed.text
    assert (killed.json()["status"], killed.json()["exit_status"]) == ("completed", 137)
    assert killed.json()["stdout"] == ""
    assert shared_http.get(exec_url(devbox_id, busy["execution_id"])).json()["status"] == "running"

    shared_http.post(exec_url(devbox_id, busy["execution_id"]) + "/kill", json={})
    assert done(shared_http, devbox_id, busy["execution_id"])["exit_status"] == 137
    after = sync(shared_http, devbox_id, f"test -e {marker} && echo ran || echo not-ran", shell_name=shell)
    assert after["stdout"] == "not-ran\n"
    final = shared_http.get(exec_url(devbox_id, queued["execution_id"])).json()
    assert (final["status"], final["exit_status"], final["stdout"]) == ("completed", 137, "")


def test_kill_completed_execution_returns_it_unchanged(shared_http, devbox_id):
    started = start(shared_http, devbox_id, "echo finished; exit 5")
    before = done(shared_http, devbox_id, started["execution_id"])
    killed = shared_http.post(exec_url(devbox_id, started["execution_id"]) + "/kill", json={"kill_process_group": True})
    assert killed.status_code == 200, killed.text
    assert killed.json() == before
    assert (killed.json()["exit_status"], killed.json()["stdout"]) == (5, "finished\n")


# ---------------------------------------------------------------- stdin


def send_stdin(http: httpx.Client, devbox_id: str, execution_id: str, **body: Any) -> httpx.Response:
    return http.post(exec_url(devbox_id, execution_id) + "/send_std_in", json=body)


def test_send_std_in_text_then_eof(shared_http, devbox_id):
    started = start(shared_http, devbox_id, "cat", attach_stdin=True)
    eid = started["execution_id"]
    wait_exec(shared_http, devbox_id, eid, ["running"])
    first = send_stdin(shared_http, devbox_id, eid, text="hello ")
    assert first.status_code == 200, first.text
    assert first.json() == {"devbox_id": devbox_id, "execution_id": eid, "success": True}
    assert send_stdin(shared_http, devbox_id, eid, text="wörld\nline two").status_code == 200
    eof = send_stdin(shared_http, devbox_id, eid, text=None, signal="EOF")
    assert eof.status_code == 200, eof.text
    assert eof.json()["success"] is True
    finished = done(shared_http, devbox_id, eid)
    assert (finished["exit_status"], finished["stdout"], finished["stderr"]) == (0, "hello wörld\nline two", "")


def test_send_std_in_text_and_eof_together(shared_http, devbox_id):
    started = start(shared_http, devbox_id, "wc -c", attach_stdin=True)
    eid = started["execution_id"]
    response = send_stdin(shared_http, devbox_id, eid, text="12345", signal="EOF")
    assert response.status_code == 200, response.text
    assert done(shared_http, devbox_id, eid)["stdout"].strip() == "5"


def test_send_std_in_interrupt_stops_the_command(shared_http, devbox_id):
    started = start(shared_http, devbox_id, "sleep 300", attach_stdin=True)
    eid = started["execution_id"]
    wait_exec(shared_http, devbox_id, eid, ["running"])
    response = send_stdin(shared_http, devbox_id, eid, signal="INTERRUPT")
    assert response.status_code == 200, response.text
    assert response.json() == {"devbox_id": devbox_id, "execution_id": eid, "success": True}
    finished = done(shared_http, devbox_id, eid, seconds=20)
    assert (finished["status"], finished["exit_status"]) == ("completed", 130)


def test_send_std_in_interrupt_on_named_shell_keeps_its_state(shared_http, devbox_id):
    shell = unique("intr")
    sync(shared_http, devbox_id, "cd /tmp && export KEEP_ME=1", shell_name=shell)
    started = start(shared_http, devbox_id, "sleep 300", shell_name=shell, attach_stdin=True)
    eid = started["execution_id"]
    wait_exec(shared_http, devbox_id, eid, ["running"])
    assert send_stdin(shared_http, devbox_id, eid, signal="INTERRUPT").status_code == 200
    assert done(shared_http, devbox_id, eid, seconds=20)["exit_status"] == 130
    after = sync(shared_http, devbox_id, 'pwd; echo "$KEEP_ME"', shell_name=shell)
    assert after["stdout"] == "/tmp\n1\n"


def test_send_std_in_errors(shared_http, devbox_id):
    plain = start(shared_http, devbox_id, "sleep 300")
    not_attached = send_stdin(shared_http, devbox_id, plain["execution_id"], text="x")
    assert not_attached.status_code == 400, not_attached.text
    assert set(not_attached.json()) == {"error", "detail"}
    shared_http.post(exec_url(devbox_id, plain["execution_id"]) + "/kill", json={})

    attached = start(shared_http, devbox_id, "cat", attach_stdin=True)
    eid = attached["execution_id"]
    neither = send_stdin(shared_http, devbox_id, eid)
    assert neither.status_code == 400, neither.text
    both_null = send_stdin(shared_http, devbox_id, eid, text=None, signal=None)
    assert both_null.status_code == 400, both_null.text
    bad_signal = send_stdin(shared_http, devbox_id, eid, signal="TERMINATE")
    assert bad_signal.status_code in (400, 422), bad_signal.text  # a malformed body
    assert send_stdin(shared_http, devbox_id, eid, signal="EOF").status_code == 200
    assert done(shared_http, devbox_id, eid)["exit_status"] == 0
    completed = send_stdin(shared_http, devbox_id, eid, text="late")
    assert completed.status_code == 400, completed.text

    assert send_stdin(shared_http, devbox_id, "exe_doesnotexist", text="x").status_code == 404
    unknown_devbox = shared_http.post(f"/v1/devboxes/dbx_nope/executions/{eid}/send_std_in", json={"text": "x"})
    assert unknown_devbox.status_code == 404


# ---------------------------------------------------------------- named shells


def test_named_shell_keeps_cwd_env_functions_and_aliases(shared_http, devbox_id):
    shell = unique("state")
    setup = (
        "mkdir -p /tmp/shell-state && cd /tmp/shell-state && export KEPT=kept-value DROPPED=x; "
        "greet() { echo \"hi $1\"; }; alias sayit='echo from-alias'"
    )
    assert sync(shared_http, devbox_id, setup, shell_name=shell)["exit_status"] == 0
    assert sync(shared_http, devbox_id, "unset DROPPED", shell_name=shell)["exit_status"] == 0
    result = sync(shared_http, devbox_id, 'pwd; echo "$KEPT"; echo "${DROPPED-unset}"; greet bob', shell_name=shell)
    assert result["stdout"] == "/tmp/shell-state\nkept-value\nunset\nhi bob\n", result
    assert sync(shared_http, devbox_id, "sayit", shell_name=shell)["stdout"] == "from-alias\n"
    # A child process sees the exported variable too.
    assert sync(shared_http, devbox_id, "bash -c 'echo $KEPT'", shell_name=shell)["stdout"] == "kept-value\n"


def test_exit_in_named_shell_ends_only_that_command(shared_http, devbox_id):
    shell = unique("exit")
    sync(shared_http, devbox_id, "cd /tmp && export AFTER_EXIT=still-here", shell_name=shell)
    exited = sync(shared_http, devbox_id, "echo leaving; exit 3", shell_name=shell)
    assert (exited["stdout"], exited["exit_status"]) == ("leaving\n", 3)
    after = sync(shared_http, devbox_id, 'pwd; echo "$AFTER_EXIT"', shell_name=shell)
    assert (after["stdout"], after["exit_status"]) == ("/tmp\nstill-here\n", 0)
    failed = sync(shared_http, devbox_id, "false", shell_name=shell)
    assert failed["exit_status"] == 1
    assert sync(shared_http, devbox_id, 'echo "$AFTER_EXIT"', shell_name=shell)["stdout"] == "still-here\n"


def test_named_shell_survives_syntax_errors_stdin_reads_exec_and_traps(shared_http, devbox_id):
    shell = unique("robust")
    sync(shared_http, devbox_id, "cd /tmp && export SURVIVES=yes", shell_name=shell)
    unterminated = sync(shared_http, devbox_id, "echo 'unterminated", shell_name=shell)
    assert (unterminated["stdout"], unterminated["exit_status"]) == ("", 2)
    assert sync(shared_http, devbox_id, "if then", shell_name=shell)["exit_status"] == 2
    # Without attach_stdin a read sees end of input: it must not swallow the shell's next command.
    assert sync(shared_http, devbox_id, 'read -r line; echo "got:$line"', shell_name=shell)["stdout"] == "got:\n"
    assert sync(shared_http, devbox_id, "cat; echo cat-done", shell_name=shell)["stdout"] == "cat-done\n"
    replaced = sync(shared_http, devbox_id, "exec bash -c 'echo replaced; exit 4'", shell_name=shell)
    assert (replaced["stdout"], replaced["exit_status"]) == ("replaced\n", 4)
    trapped = sync(shared_http, devbox_id, "trap 'echo trapped' EXIT; echo body", shell_name=shell)
    assert trapped["stdout"] == "body\ntrapped\n"
    assert sync(shared_http, devbox_id, "kill -TERM $$", shell_name=shell)["exit_status"] == 143
    after = sync(shared_http, devbox_id, 'pwd; echo "$SURVIVES"', shell_name=shell)
    assert (after["stdout"], after["exit_status"]) == ("/tmp\nyes\n", 0)


def test_named_shell_runs_commands_in_order_while_others_run_in_parallel(shared_http, devbox_id):
    shell = unique("order")
    order_file = f"/tmp/{unique('order')}"
    # The first one sleeps longest: if the shell ran them in parallel, the file would not read 0, 1, 2.
    executions = [
        start(shared_http, devbox_id, f"sleep {1 if i == 0 else 0.3}; echo {i} >> {order_file}", shell_name=shell)
        for i in range(3)
    ]
    assert [e["status"] for e in executions[1:]] == ["queued", "queued"], executions
    for execution in executions:
        assert done(shared_http, devbox_id, execution["execution_id"])["exit_status"] == 0
    assert sync(shared_http, devbox_id, f"cat {order_file}")["stdout"] == "0\n1\n2\n"


def test_concurrent_commands_on_one_shell_are_serialized(shared_http, devbox_id):
    shell = unique("serial")
    sync(shared_http, devbox_id, "export COUNTER=0", shell_name=shell)

    def bump(_: int) -> str:
        return sync(shared_http, devbox_id, "export COUNTER=$((COUNTER + 1)); sleep 0.02; echo $COUNTER", shell)[
            "stdout"
        ]

    with ThreadPoolExecutor(max_workers=20) as pool:
        outputs = list(pool.map(bump, range(20)))
    # Each command saw the previous one's export: no two ran at once, none was lost.
    assert sorted(int(o) for o in outputs) == list(range(1, 21))
    assert sync(shared_http, devbox_id, "echo $COUNTER", shell_name=shell)["stdout"] == "20\n"


def test_other_shells_and_unnamed_commands_run_while_a_shell_is_busy(shared_http, devbox_id):
    shell_a = unique("busy")
    busy = start(shared_http, devbox_id, "echo started; sleep 300", shell_name=shell_a)
    first_chunk(shared_http, devbox_id, busy["execution_id"])
    try:
        other = start(shared_http, devbox_id, "echo other-shell", shell_name=unique("free"))
        unnamed = start(shared_http, devbox_id, "echo unnamed")
        assert done(shared_http, devbox_id, other["execution_id"])["stdout"] == "other-shell\n"
        assert done(shared_http, devbox_id, unnamed["execution_id"])["stdout"] == "unnamed\n"
        assert sync(shared_http, devbox_id, "echo sync-unnamed")["stdout"] == "sync-unnamed\n"
        assert shared_http.get(exec_url(devbox_id, busy["execution_id"])).json()["status"] == "running"
    finally:
        shared_http.post(exec_url(devbox_id, busy["execution_id"]) + "/kill", json={"kill_process_group": True})


def test_unnamed_commands_start_fresh_in_home(shared_http, devbox_id):
    first = sync(shared_http, devbox_id, "cd /tmp && export FRESH_CHECK=leaked && myfn() { :; }; pwd")
    assert first["stdout"] == "/tmp\n"
    second = sync(shared_http, devbox_id, 'pwd; echo "${FRESH_CHECK-unset}"; type myfn >/dev/null 2>&1 || echo nofn')
    assert second["stdout"] == "/home/user\nunset\nnofn\n"


def test_each_command_sees_a_fresh_login_shell_even_from_a_prestarted_one(http, devbox_factory):
    """Plain commands may run in a login bash the agent started ahead: it must be indistinguishable from
    `bash -lc command` (arguments, $0, stdin, no leftovers), and a change to the profile shows at once."""
    devbox_id = devbox_factory()["id"]
    for _ in range(3):  # the first starts the usual way; the next ones find a prestarted shell
        result = sync(
            http,
            devbox_id,
            'echo "$0|$#|${__devboxd_cmd-none}|${__devboxd_fd-none}"; shopt -q login_shell && echo login',
        )
        assert result["stdout"] == "bash|0|none|none\nlogin\n"
    assert sync(http, devbox_id, "read -r line; echo rc=$?")["stdout"] == "rc=1\n"  # stdin: at its end
    assert sync(http, devbox_id, "ls /proc/self/fd | wc -l")["stdout"].strip() == "4"  # 0-2 and ls's own
    sync(http, devbox_id, "echo 'export FROM_PROFILE=yes' >> ~/.profile")
    assert sync(http, devbox_id, 'echo "${FROM_PROFILE-no}"')["stdout"] == "yes\n"
    sync(http, devbox_id, "sudo sh -c 'echo export FROM_ETC=1 > /etc/profile.d/zz-test.sh'")
    assert sync(http, devbox_id, 'echo "${FROM_ETC-no}"')["stdout"] == "1\n"
    syntax = sync(http, devbox_id, "echo (")
    assert syntax["exit_status"] == 2 and "syntax error" in syntax["stderr"]


def test_different_shell_names_are_independent(shared_http, devbox_id):
    shell_a, shell_b = unique("indep-a"), unique("indep-b")
    sync(shared_http, devbox_id, "cd /tmp && export WHICH=a", shell_name=shell_a)
    sync(shared_http, devbox_id, "cd /usr && export WHICH=b", shell_name=shell_b)
    assert sync(shared_http, devbox_id, 'pwd; echo "$WHICH"', shell_name=shell_a)["stdout"] == "/tmp\na\n"
    assert sync(shared_http, devbox_id, 'pwd; echo "$WHICH"', shell_name=shell_b)["stdout"] == "/usr\nb\n"
    fresh = sync(shared_http, devbox_id, 'pwd; echo "${WHICH-unset}"', shell_name=unique("indep-c"))
    assert fresh["stdout"] == "/home/user\nunset\n"


@pytest.mark.parametrize("shell_name", ["", "s" * 257])
@pytest.mark.parametrize("endpoint", ["execute_sync", "execute_async", "execute"])
def test_invalid_shell_names_are_400(shared_http, devbox_id, shell_name, endpoint):
    body: dict[str, Any] = {"command": "echo nope", "shell_name": shell_name}
    if endpoint == "execute":
        body["command_id"] = str(uuid.uuid4())
    response = shared_http.post(f"/v1/devboxes/{devbox_id}/{endpoint}", json=body)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error", "detail"}


def test_shell_name_of_256_chars_is_accepted(shared_http, devbox_id):
    shell = "s" * 256
    result = sync(shared_http, devbox_id, "echo long-name", shell_name=shell)
    assert (result["stdout"], result["shell_name"]) == ("long-name\n", shell)


# ---------------------------------------------------------------- environment and output fidelity


def test_commands_run_in_login_bash_with_devbox_environment(http, devbox_factory):
    devbox = devbox_factory(environment_variables={"FROM_CREATE": "value with spaces", "SECOND": "2"})
    assert devbox["status"] == "running"
    script = 'shopt -q login_shell && echo login; whoami; pwd; echo "$FROM_CREATE|$SECOND"; echo "$HOME"'
    result = sync(http, devbox["id"], script)
    assert result["stdout"] == "login\nuser\n/home/user\nvalue with spaces|2\n/home/user\n"
    named = sync(http, devbox["id"], 'echo "$FROM_CREATE"', shell_name="env")
    assert named["stdout"] == "value with spaces\n"


def test_output_is_byte_exact(shared_http, devbox_id):
    script = r"printf '  lead\ttab\r\nno-newline-héllo ☃ 日本 🎉'; printf 'e1\n\ne2 ünï' >&2"
    expected_out = "  lead\ttab\r\nno-newline-héllo ☃ 日本 🎉"
    expected_err = "e1\n\ne2 ünï"
    result = sync(shared_http, devbox_id, script)
    assert (result["stdout"], result["stderr"]) == (expected_out, expected_err)

    started = start(shared_http, devbox_id, script)
    finished = done(shared_http, devbox_id, started["execution_id"])
    assert (finished["stdout"], finished["stderr"]) == (expected_out, expected_err)
    stream = read_stream(shared_http, devbox_id, started["execution_id"], "stdout")
    assert "".join(c["output"] for c in stream) == expected_out
    assert stream[-1]["offset"] == len(expected_out.encode())


def test_empty_output_is_empty_strings(shared_http, devbox_id):
    started = start(shared_http, devbox_id, "true")
    finished = done(shared_http, devbox_id, started["execution_id"])
    assert (finished["stdout"], finished["stderr"], finished["exit_status"]) == ("", "", 0)
    assert finished["stdout_truncated"] is False
    assert read_stream(shared_http, devbox_id, started["execution_id"], "stdout") == []


# ---------------------------------------------------------------- SSE output streams


def test_stream_updates_offsets_and_resume(shared_http, devbox_id):
    started = start(
        shared_http, devbox_id, "echo aé; sleep 0.2; echo bb; echo E1 >&2; sleep 0.2; echo ccc; echo E2 >&2"
    )
    eid = started["execution_id"]
    done(shared_http, devbox_id, eid)
    expected = "aé\nbb\nccc\n"
    total = len(expected.encode())

    chunks = read_stream(shared_http, devbox_id, eid, "stdout")
    assert chunks and all(set(c) == {"output", "offset"} for c in chunks)
    assert "".join(c["output"] for c in chunks) == expected
    position = 0
    for chunk in chunks:  # offset is the byte offset where each chunk ends
        position += len(chunk["output"].encode())
        assert chunk["offset"] == position
    assert position == total

    resumed = read_stream(shared_http, devbox_id, eid, "stdout", offset=str(len("aé\n".encode())))
    assert "".join(c["output"] for c in resumed) == "bb\nccc\n"
    assert resumed[-1]["offset"] == total
    assert read_stream(shared_http, devbox_id, eid, "stdout", offset=str(total)) == []

    stderr = read_stream(shared_http, devbox_id, eid, "stderr")
    assert "".join(c["output"] for c in stderr) == "E1\nE2\n"
    assert stderr[-1]["offset"] == 6
    assert "".join(c["output"] for c in read_stream(shared_http, devbox_id, eid, "stderr", offset="3")) == "E2\n"


def check_chunks(chunks: list[dict[str, Any]], expected: str, start_offset: int = 0) -> None:
    """Chunks join to `expected`, never split a character, and each offset is where its chunk ends."""
    assert "".join(c["output"] for c in chunks) == expected
    position = start_offset
    for chunk in chunks:
        assert "\ufffd" not in chunk["output"]
        position += len(chunk["output"].encode())
        assert chunk["offset"] == position


def test_stream_never_splits_multibyte_characters(shared_http, devbox_id):
    line = "é☃日本🎉\n"
    started = start(shared_http, devbox_id, f"yes '{line[:-1]}' | head -n 200000")
    done(shared_http, devbox_id, started["execution_id"])
    chunks = read_stream(shared_http, devbox_id, started["execution_id"], "stdout")
    assert len(chunks) > 1
    check_chunks(chunks, line * 200000)
    middle = chunks[len(chunks) // 2]["offset"]
    resumed = read_stream(shared_http, devbox_id, started["execution_id"], "stdout", offset=str(middle))
    check_chunks(resumed, (line * 200000).encode()[middle:].decode(), start_offset=middle)

    # A character whose bytes arrive a second apart is held back until it is whole, live and when stored.
    split = r"printf 'x\xe2\x98'; sleep 1; printf '\x83\n'; printf '\xe2' >&2; sleep 0.5; printf '\x98\x83' >&2"
    started = start(shared_http, devbox_id, split)
    url = exec_url(devbox_id, started["execution_id"]) + "/stream_stdout_updates"
    with shared_http.stream("GET", url, timeout=30) as response:
        check_chunks(list(sse_data(response)), "x☃\n")
    finished = done(shared_http, devbox_id, started["execution_id"])
    assert (finished["stdout"], finished["stderr"]) == ("x☃\n", "☃")
    check_chunks(read_stream(shared_http, devbox_id, started["execution_id"], "stderr"), "☃")


def test_stream_sends_only_data_lines(shared_http, devbox_id):
    started = start(shared_http, devbox_id, "for i in 1 2 3; do echo $i; sleep 0.1; done")
    url = exec_url(devbox_id, started["execution_id"]) + "/stream_stdout_updates"
    with shared_http.stream("GET", url, timeout=30) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    assert lines
    for line in lines:
        assert not line.startswith(("id:", "retry:", "event:")), line
        assert line.startswith("data: ") or line.startswith(":"), line
    data = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    assert "".join(c["output"] for c in data) == "1\n2\n3\n"


def test_stream_delivers_live_output_before_completion(shared_http, devbox_id):
    started = start(shared_http, devbox_id, "echo early; sleep 2; echo late")
    eid = started["execution_id"]
    url = exec_url(devbox_id, eid) + "/stream_stdout_updates"
    with shared_http.stream("GET", url, timeout=30) as response:
        assert response.status_code == 200
        events = sse_data(response)
        first = next(events)
        assert first == {"output": "early\n", "offset": 6}
        assert shared_http.get(exec_url(devbox_id, eid)).json()["status"] == "running"
        rest = list(events)  # the stream closes by itself once the command has completed
    assert "".join(c["output"] for c in rest) == "late\n"
    assert rest[-1]["offset"] == len("early\nlate\n")
    assert shared_http.get(exec_url(devbox_id, eid)).json()["status"] == "completed"


@pytest.mark.parametrize("offset", ["abc", "-1", "1.5"])
def test_stream_bad_offset_is_400(shared_http, devbox_id, offset):
    started = start(shared_http, devbox_id, "echo x")
    for which in ("stdout", "stderr"):
        url = exec_url(devbox_id, started["execution_id"]) + f"/stream_{which}_updates"
        response = shared_http.get(url, params={"offset": offset})
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/json")
        assert set(response.json()) == {"error", "detail"}


def test_stream_of_unknown_execution_is_404(shared_http, devbox_id):
    for which in ("stdout", "stderr"):
        response = shared_http.get(exec_url(devbox_id, "exe_doesnotexist") + f"/stream_{which}_updates")
        assert response.status_code == 404, response.text
        response = shared_http.get(f"/v1/devboxes/dbx_nope/executions/exe_x/stream_{which}_updates")
        assert response.status_code == 404, response.text


# ---------------------------------------------------------------- logs


def test_exec_log_entries_and_filters(shared_http, devbox_id):
    shell = unique("logs")
    ok = sync(shared_http, devbox_id, "echo logged-ok", shell_name=shell)
    assert ok["exit_status"] == 0
    failed = start(shared_http, devbox_id, "exit 9", shell_name=shell)
    done(shared_http, devbox_id, failed["execution_id"])
    unnamed = start(shared_http, devbox_id, "echo unnamed-log")
    done(shared_http, devbox_id, unnamed["execution_id"])

    by_shell = shared_http.get(f"/v1/devboxes/{devbox_id}/logs", params={"shell_name": shell})
    assert by_shell.status_code == 200, by_shell.text
    entries = by_shell.json()["logs"]
    assert [(e["source"], e["cmd"], e["exit_code"], e["level"], e["shell_name"]) for e in entries] == [
        ("exec", "echo logged-ok", 0, "info", shell),
        ("exec", "exit 9", 9, "error", shell),
    ]
    assert entries[1]["cmd_id"] == failed["execution_id"]
    assert all(isinstance(e["timestamp_ms"], int) for e in entries)
    assert entries[0]["timestamp_ms"] <= entries[1]["timestamp_ms"]

    by_exec = shared_http.get(f"/v1/devboxes/{devbox_id}/logs", params={"execution_id": unnamed["execution_id"]})
    assert [(e["cmd"], e["cmd_id"], e["exit_code"], e["level"]) for e in by_exec.json()["logs"]] == [
        ("echo unnamed-log", unnamed["execution_id"], 0, "info")
    ]
    everything = shared_http.get(f"/v1/devboxes/{devbox_id}/logs").json()["logs"]
    ids = {e.get("cmd_id") for e in everything}
    assert {failed["execution_id"], unnamed["execution_id"]} <= ids
    assert shared_http.get("/v1/devboxes/dbx_nope/logs").status_code == 404


def test_logs_tail_streams_past_then_live_entries(server, shared_http, devbox_id):
    shell = unique("tail")
    sync(shared_http, devbox_id, "echo past", shell_name=shell)
    with (
        httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30) as tailer,
        tailer.stream("GET", f"/v1/devboxes/{devbox_id}/logs/tail", params={"shell_name": shell}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_data(response)
        past = next(events)
        assert (past["source"], past["cmd"], past["exit_code"], past["shell_name"]) == ("exec", "echo past", 0, shell)
        live = start(shared_http, devbox_id, "exit 6", shell_name=shell)
        new = next(events)
        assert (new["cmd"], new["cmd_id"], new["exit_code"], new["level"]) == (
            "exit 6",
            live["execution_id"],
            6,
            "error",
        )

    by_exec = f"/v1/devboxes/{devbox_id}/logs/tail"
    with shared_http.stream("GET", by_exec, params={"execution_id": live["execution_id"]}, timeout=30) as response:
        assert next(sse_data(response))["cmd_id"] == live["execution_id"]
    assert shared_http.get("/v1/devboxes/dbx_nope/logs/tail").status_code == 404


# ---------------------------------------------------------------- devbox state


def test_shutdown_ends_running_execution_and_refuses_new_ones(http, devbox_factory):
    devbox = devbox_factory()
    started = start(http, devbox["id"], "echo running; sleep 300")
    first_chunk(http, devbox["id"], started["execution_id"])
    assert http.post(f"/v1/devboxes/{devbox['id']}/shutdown").status_code == 200
    finished = done(http, devbox["id"], started["execution_id"], seconds=30)
    assert (finished["status"], finished["exit_status"]) == ("completed", 137)
    assert finished["stdout"] == "running\n"
    wait_for(http, devbox["id"], ["shutdown"])
    for endpoint, body in [
        ("execute_sync", {"command": "echo no"}),
        ("execute_async", {"command": "echo no"}),
        ("execute", {"command": "echo no", "command_id": str(uuid.uuid4())}),
    ]:
        response = http.post(f"/v1/devboxes/{devbox['id']}/{endpoint}", json=body)
        assert response.status_code == 400, (endpoint, response.text)


def test_suspend_ends_running_execution_and_refuses_new_ones(http, devbox_factory):
    devbox = devbox_factory()
    started = start(http, devbox["id"], "echo running; sleep 300", shell_name="main")
    first_chunk(http, devbox["id"], started["execution_id"])
    assert http.post(f"/v1/devboxes/{devbox['id']}/suspend").status_code == 200
    finished = done(http, devbox["id"], started["execution_id"], seconds=30)
    assert (finished["status"], finished["exit_status"]) == ("completed", 137)
    wait_for(http, devbox["id"], ["suspended"])
    for endpoint, body in [
        ("execute_sync", {"command": "echo no"}),
        ("execute_async", {"command": "echo no", "shell_name": "main"}),
        ("execute", {"command": "echo no", "command_id": str(uuid.uuid4())}),
    ]:
        response = http.post(f"/v1/devboxes/{devbox['id']}/{endpoint}", json=body)
        assert response.status_code == 400, (endpoint, response.text)


# ---------------------------------------------------------------- scale


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_big_output_is_truncated_and_does_not_grow_server_memory(server, shared_http, devbox_id):
    assert server.process is not None
    before = rss_kib(server.process.pid)
    command = r"head -c 100000000 /dev/zero | tr '\0' 'a' | fold -w 100; echo; echo tail-line"
    started = start(shared_http, devbox_id, command)
    finished = done(shared_http, devbox_id, started["execution_id"], seconds=120)
    after = rss_kib(server.process.pid)
    assert finished["exit_status"] == 0
    lines = finished["stdout"].splitlines()
    assert len(lines) == 100
    assert lines[-1] == "tail-line"
    assert lines[:-1] == ["a" * 100] * 99
    assert finished["stdout_truncated"] is True
    assert finished["stderr"] == "" and finished["stderr_truncated"] is False
    growth_mib = (after - before) / 1024
    assert growth_mib < 60, f"server RSS grew by {growth_mib:.1f} MiB for 100 MB of output"

    last = shared_http.get(exec_url(devbox_id, started["execution_id"]), params={"last_n": 2}).json()
    assert last["stdout"] == "a" * 100 + "\ntail-line\n"
    total = 100_000_000 + 1_000_000 + len("tail-line\n")  # 'a's, one newline per 100 of them, the last line
    resumed = read_stream(shared_http, devbox_id, started["execution_id"], "stdout", offset=str(total - 10))
    assert "".join(c["output"] for c in resumed) == "tail-line\n"
    assert resumed[-1]["offset"] == total


def test_fifty_concurrent_executions_on_one_devbox(shared_http, devbox_id):
    executions = [start(shared_http, devbox_id, f"sleep 1; echo {i}") for i in range(50)]
    assert len({e["execution_id"] for e in executions}) == 50
    devbox = shared_http.get(f"/v1/devboxes/{devbox_id}")
    assert devbox.status_code == 200, devbox.text
    for i, execution in enumerate(executions):
        finished = done(shared_http, devbox_id, execution["execution_id"])
        assert (finished["exit_status"], finished["stdout"]) == (0, f"{i}\n")


def test_one_command_each_on_ten_devboxes_concurrently(http, devbox_factory):
    devboxes = [devbox_factory(wait=False)["id"] for _ in range(10)]
    for dbx in devboxes:
        assert wait_for(http, dbx, ["running", "failure", "shutdown"])["status"] == "running"

    def run(dbx: str) -> dict[str, Any]:
        response = http.post(f"/v1/devboxes/{dbx}/execute_sync", json={"command": f"sleep 0.5; echo {dbx}"})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(run, devboxes))
    assert [(r["devbox_id"], r["stdout"], r["exit_status"]) for r in results] == [
        (dbx, f"{dbx}\n", 0) for dbx in devboxes
    ]


# ---------------------------------------------------------------- restart


def test_completed_output_survives_server_restart(server_factory):
    srv = server_factory()
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=srv.base_url, headers=headers, timeout=60) as client:
        dbx = client.post("/v1/devboxes", json={}).json()["id"]
        wait_for(client, dbx, ["running"])
        started = start(client, dbx, "seq 1 5; echo to-stderr >&2; printf 'ünicode'; exit 3", shell_name="keep")
        before = done(client, dbx, started["execution_id"])
        assert before["stdout"] == "1\n2\n3\n4\n5\nünicode"
        running = start(client, dbx, "echo pre-restart; sleep 300")
        assert first_chunk(client, dbx, running["execution_id"])["output"] == "pre-restart\n"
    srv.restart()
    with httpx.Client(base_url=srv.base_url, headers=headers, timeout=60) as client:
        try:
            after = client.get(exec_url(dbx, started["execution_id"]))
            assert after.status_code == 200, after.text
            body = after.json()
            for key in ("stdout", "stderr", "exit_status", "status", "shell_name", "execution_id"):
                assert body[key] == before[key], key
            cut = client.get(exec_url(dbx, started["execution_id"]), params={"last_n": 2}).json()
            assert cut["stdout"] == "5\nünicode"
            assert cut["stdout_truncated"] is True
            stream = read_stream(client, dbx, started["execution_id"], "stdout")
            assert "".join(c["output"] for c in stream) == before["stdout"]
            # An execution that was running when the server went down does not stay running forever.
            ended = done(client, dbx, running["execution_id"], seconds=30)
            assert ended["stdout"].startswith("pre-restart\n")
            assert ended["exit_status"] is not None
        finally:
            client.post(f"/v1/devboxes/{dbx}/shutdown")
