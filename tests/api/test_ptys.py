"""Interactive terminals (app/api/routers/ptys.py, app/services/ptys.py) against a real devbox: the devbox-scoped
form (`/v1/devboxes/{id}/pty/{name}`, API key) and the PTY-tunnel form (`/pty/{name}`, create_pty_tunnel token),
the WebSocket data plane (echo round trips, size, SIGWINCH, signals, single attach, reconnect with replay of the
missed output, close, exit), validation, auth and close codes, the devbox lifecycle, and idle policies.

Every terminal read waits for a marker the shell computes (`echo "M-$((40+2))"` prints `M-42`, while the echo of
the typed line shows `M-$((40+2))`), with a generous timeout; nothing asserts a duration."""

from __future__ import annotations

import codecs
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import websockets
from websockets.sync.client import ClientConnection, connect

from tests.conftest import API_KEY, OTHER_API_KEY, ServerProcess, wait_for

TIMEOUT = 15.0
KEY_HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Term:
    """One WebSocket client: sends typed lines, reads terminal output until a marker shows up."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.buffer = ""
        self.frames: list[bytes] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def send(self, line: str) -> None:
        self.ws.send(line + "\n")

    def _read(self, deadline: float, waiting_for: str) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{waiting_for} never appeared; terminal output so far: {self.buffer[-3000:]!r}")
        try:
            data = self.ws.recv(timeout=left)
        except TimeoutError:
            return
        raw = data if isinstance(data, bytes) else data.encode()
        self.frames.append(raw)
        self.buffer += self._decoder.decode(raw)

    def expect(self, marker: str, timeout: float = TIMEOUT) -> str:
        """Everything up to and including `marker`; what follows stays for the next expect."""
        deadline = time.monotonic() + timeout
        while marker not in self.buffer:
            self._read(deadline, repr(marker))
        before, _, self.buffer = self.buffer.partition(marker)
        return before + marker

    def expect_re(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (match := re.search(pattern, self.buffer)) is None:
            self._read(deadline, f"/{pattern}/")
        self.buffer = self.buffer[match.end() :]
        return match

    def run(self, command: str, marker: str) -> str:
        self.send(command)
        return self.expect(marker)

    def wait_closed(self, timeout: float = TIMEOUT) -> int | None:
        """Read until the server closes the socket; the close code it sent."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._read(deadline, "the close of the socket")
        except websockets.ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else None


def ws_url(server: ServerProcess, connect_url: str) -> str:
    assert connect_url.startswith("/"), connect_url  # server-relative
    return f"ws://127.0.0.1:{server.port}{connect_url}"


@contextmanager
def terminal(server: ServerProcess, connect_url: str, headers: dict[str, str] | None = None) -> Iterator[Term]:
    ws = connect(
        ws_url(server, connect_url),
        additional_headers=KEY_HEADERS if headers is None else headers,
        open_timeout=30,
        max_size=None,
    )
    try:
        yield Term(ws)
    finally:
        ws.close()


def refusal_code(server: ServerProcess, connect_url: str, headers: dict[str, str]) -> int | None:
    """Open the WebSocket (the server accepts it) and return the code it is closed with."""
    ws = connect(ws_url(server, connect_url), additional_headers=headers, open_timeout=30)
    try:
        return Term(ws).wait_closed()
    finally:
        ws.close()


def pty_path(devbox_id: str, name: str) -> str:
    return f"/v1/devboxes/{devbox_id}/pty/{name}"


def socket_path(devbox_id: str, name: str) -> str:
    return f"{pty_path(devbox_id, name)}/ws"


def open_pty(http: httpx.Client, devbox_id: str, name: str, **query: int) -> dict[str, Any]:
    response = http.get(pty_path(devbox_id, name), params=query)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def control(http: httpx.Client, devbox_id: str, name: str, **body: Any) -> httpx.Response:
    return http.post(f"{pty_path(devbox_id, name)}/control", json=body)


def assert_fresh_shell(server: ServerProcess, http: httpx.Client, devbox_id: str, name: str) -> None:
    """Connecting with `name` now starts a new shell: nothing the old one exported (KEEP) is there."""
    fresh = open_pty(http, devbox_id, name)
    assert fresh["created"] is True
    with terminal(server, fresh["connect_url"]) as term:
        term.run('echo "K-${KEEP:-unset}-$((2+3))"', "K-unset-5")


def stty_size(term: Term) -> str:
    """`stty size` as ROWSxCOLS."""
    term.send('echo "SZ-$(stty size | tr " " x)-SZ"')
    return term.expect_re(r"SZ-(\d+x\d+)-SZ").group(1)


def sh(http: httpx.Client, devbox_id: str, command: str) -> int:
    response = http.post(f"/v1/devboxes/{devbox_id}/execute_sync", json={"command": command})
    assert response.status_code == 200, response.text
    return int(response.json()["exit_status"])


def create_running(http: httpx.Client, **body: Any) -> str:
    response = http.post("/v1/devboxes", json=body)
    assert response.status_code == 200, response.text
    devbox_id: str = response.json()["id"]
    assert wait_for(http, devbox_id, ["running", "failure", "shutdown"])["status"] == "running"
    return devbox_id


@pytest.fixture
def own_devbox(http: httpx.Client) -> Iterator[str]:
    """A devbox of this test alone (its lifecycle changes); shut down after."""
    devbox_id = create_running(http)
    try:
        yield devbox_id
    finally:
        http.post(f"/v1/devboxes/{devbox_id}/shutdown")


# ----- the connect view ----------------------------------------------------------------------------------


def test_connect_view_created_then_reused(server, http, module_devbox):
    name = unique()
    first = open_pty(http, module_devbox, name, cols=100, rows=30)
    assert first["session_name"] == name
    assert first["status"] == "running"
    assert first["created"] is True
    assert first["attached"] is False
    assert (first["cols"], first["rows"]) == (100, 30)
    assert isinstance(first["idle_ttl_seconds"], int) and first["idle_ttl_seconds"] > 0
    assert isinstance(first["protocol_version"], str) and first["protocol_version"]
    assert first["connect_url"] == f"/v1/devboxes/{module_devbox}/pty/{name}/ws"

    second = open_pty(http, module_devbox, name)
    assert second["created"] is False
    assert second["attached"] is False
    assert (second["cols"], second["rows"]) == (100, 30)  # no size given: unchanged

    with terminal(server, first["connect_url"]) as term:
        term.run('echo "M-$((40+2))"', "M-42")
        third = open_pty(http, module_devbox, name)  # bootstrap always succeeds, even while attached
        assert third["created"] is False
        assert third["attached"] is True

    fourth = open_pty(http, module_devbox, name, cols=90, rows=20)  # a size on reconnect resizes
    assert (fourth["cols"], fourth["rows"]) == (90, 20)
    assert control(http, module_devbox, name, action="close").status_code == 200


def test_default_size_and_only_both_sizes_count(server, http, module_devbox):
    name = unique()
    view = open_pty(http, module_devbox, name, cols=100)  # rows missing: ignored
    assert (view["cols"], view["rows"]) == (80, 24)
    with terminal(server, view["connect_url"]) as term:
        assert stty_size(term) == "24x80"
    assert control(http, module_devbox, name, action="close").status_code == 200


# ----- interactive ------------------------------------------------------------------------------------


def test_interactive_shell_echo_user_tty_and_initial_size(server, http, module_devbox):
    name = unique()
    view = open_pty(http, module_devbox, name, cols=100, rows=30)
    with terminal(server, view["connect_url"]) as term:
        term.run('echo "M-$((40+2))"', "M-42")
        term.send('echo "W-$(whoami)-W"')
        assert term.expect_re(r"W-(\w+)-W").group(1) == "user"
        term.send('echo "T-$(tty)-T"')
        assert re.fullmatch(r"/dev/pts/\d+", term.expect_re(r"T-(/\S*)-T").group(1))
        assert stty_size(term) == "30x100"
        term.ws.send(b'printf "BIN-%s\\n" "$((6*7))"\n')  # binary frames are input too
        term.expect("BIN-42")
    assert control(http, module_devbox, name, action="close").status_code == 200


def test_resize_changes_stty_size_and_view(server, http, module_devbox):
    name = unique()
    view = open_pty(http, module_devbox, name, cols=100, rows=30)
    with terminal(server, view["connect_url"]) as term:
        assert stty_size(term) == "30x100"
        resized = control(http, module_devbox, name, action="resize", cols=120, rows=40)
        assert resized.status_code == 200, resized.text
        assert resized.json() == {"session_name": name, "status": "ok"}
        assert stty_size(term) == "40x120"
    again = open_pty(http, module_devbox, name)
    assert (again["created"], again["cols"], again["rows"]) == (False, 120, 40)
    assert control(http, module_devbox, name, action="close").status_code == 200


def test_resize_delivers_sigwinch(server, http, module_devbox):
    name = unique()
    view = open_pty(http, module_devbox, name, cols=100, rows=30)
    with terminal(server, view["connect_url"]) as term:
        # `wait` is interruptible by a trapped signal, so the trap runs as soon as SIGWINCH arrives
        term.run("trap 'echo WINCH-$((1+1))' WINCH; echo \"READY-$((4+4))\"; sleep 5 & wait", "READY-8")
        assert control(http, module_devbox, name, action="resize", cols=110, rows=35).status_code == 200
        term.expect("WINCH-2")
        term.run('echo "M-$((5+5))"', "M-10")
    assert control(http, module_devbox, name, action="close").status_code == 200


def _wait_for_process(http: httpx.Client, devbox_id: str, cmdline: str) -> None:
    """Until a process with exactly this command line exists in the devbox (so it is the foreground job)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if sh(http, devbox_id, f"pgrep -f '^{cmdline}$'") == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"{cmdline!r} never started in the terminal")


def test_signal_interrupts_the_foreground_command(server, http, module_devbox):
    name = unique()
    view = open_pty(http, module_devbox, name)
    with terminal(server, view["connect_url"]) as term:
        term.run('echo "M-$((1+2))"', "M-3")
        term.send("sleep 301")
        _wait_for_process(http, module_devbox, "sleep 301")
        response = control(http, module_devbox, name, action="signal", signal="SIGINT")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "ok"
        term.send('echo "RC-$?-$((7+7))"')  # typed after the prompt came back: sleep ended by SIGINT (130)
        assert term.expect_re(r"RC-(\d+)-14").group(1) == "130"
    assert control(http, module_devbox, name, action="close").status_code == 200


def test_control_validation(http, module_devbox):
    name = unique()
    open_pty(http, module_devbox, name)
    for body in (
        {"action": "signal", "signal": "SIGBOGUS"},
        {"action": "signal"},
        {"action": "resize", "cols": 0, "rows": 30},
        {"action": "resize", "cols": 1001, "rows": 30},
        {"action": "resize", "cols": 80, "rows": 0},
        {"action": "resize", "cols": 80, "rows": 1001},
        {"action": "resize", "cols": 80},
    ):
        response = control(http, module_devbox, name, **body)
        assert response.status_code == 400, (body, response.text)
    for body in ({"action": "explode"}, {"action": "resize", "cols": 80, "rows": 24, "bogus": 1}):
        response = control(http, module_devbox, name, **body)
        assert response.status_code in (400, 422), (body, response.text)
    # the boundaries are accepted
    assert control(http, module_devbox, name, action="resize", cols=1000, rows=1).status_code == 200
    assert control(http, module_devbox, name, action="resize", cols=1, rows=1000).status_code == 200
    assert control(http, module_devbox, name, action="close").status_code == 200

    missing = control(http, module_devbox, unique("missing"), action="resize", cols=80, rows=24)
    assert missing.status_code == 404, missing.text
    assert control(http, module_devbox, unique("missing"), action="close").status_code == 404
    assert control(http, "dbx_nope", name, action="close").status_code == 404


# ----- single attach, reconnect, close, exit --------------------------------------------------------------


def test_second_client_is_refused_with_4409(server, http, module_devbox):
    name = unique()
    view = open_pty(http, module_devbox, name)
    with terminal(server, view["connect_url"]) as term:
        term.run('echo "M-$((2+2))"', "M-4")
        assert refusal_code(server, view["connect_url"], KEY_HEADERS) == 4409
        term.run('echo "M-$((3+3))"', "M-6")  # the first client is unaffected
    # once it left, a new client may attach
    with terminal(server, view["connect_url"]) as term:
        term.run('echo "M-$((4+4))"', "M-8")
    assert control(http, module_devbox, name, action="close").status_code == 200


def _wait_detached(http: httpx.Client, devbox_id: str, name: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while open_pty(http, devbox_id, name)["attached"]:
        assert time.monotonic() < deadline, "the server never saw the client go"
        time.sleep(0.1)


def test_reconnect_replays_missed_output_and_keeps_the_shell(server, http, module_devbox):
    name = unique()
    go, done = f"/tmp/go-{name}", f"/tmp/done-{name}"
    view = open_pty(http, module_devbox, name)
    with terminal(server, view["connect_url"]) as term:
        term.run('export KEEP=yes; cd /tmp; echo "M-$((9+9))"', "M-18")
        # started now, prints only once the test says so (after the client has gone)
        term.send(f"until [ -e {go} ]; do sleep 0.1; done; sleep 1; echo LATE-$((2*3)); sleep 1; touch {done}")
    _wait_detached(http, module_devbox, name)
    assert sh(http, module_devbox, f"touch {go}") == 0
    deadline = time.monotonic() + TIMEOUT
    while sh(http, module_devbox, f"test -e {done}") != 0:  # LATE-6 was printed while nobody was attached
        assert time.monotonic() < deadline, "the command in the terminal never finished"
        time.sleep(0.2)

    again = open_pty(http, module_devbox, name)
    assert again["created"] is False
    assert again["attached"] is False
    with terminal(server, again["connect_url"]) as term:
        term.expect("LATE-6")
        assert b"LATE-6" in term.frames[0]  # the missed output comes first, in one go
        term.send('echo "K-$KEEP-$(pwd)-$((1+1))"')
        term.expect("K-yes-/tmp-2")
    assert control(http, module_devbox, name, action="close").status_code == 200


def test_close_ends_the_session_and_the_next_connect_is_fresh(server, http, module_devbox):
    name = unique()
    view = open_pty(http, module_devbox, name)
    with terminal(server, view["connect_url"]) as term:
        term.run('export KEEP=yes; echo "M-$((6+6))"', "M-12")
        closed = control(http, module_devbox, name, action="close")
        assert closed.status_code == 200, closed.text
        assert closed.json() == {"session_name": name, "status": "closed"}
        assert term.wait_closed() == 1000

    assert control(http, module_devbox, name, action="close").status_code == 404  # gone
    assert_fresh_shell(server, http, module_devbox, name)
    assert control(http, module_devbox, name, action="close").status_code == 200


def test_close_of_a_detached_session(server, http, module_devbox):
    name = unique()
    view = open_pty(http, module_devbox, name)
    with terminal(server, view["connect_url"]) as term:
        term.run('export KEEP=yes; echo "M-$((8+8))"', "M-16")
    assert control(http, module_devbox, name, action="close").json()["status"] == "closed"
    assert_fresh_shell(server, http, module_devbox, name)
    assert control(http, module_devbox, name, action="close").status_code == 200


def test_exit_closes_the_socket_with_1000_and_the_next_connect_is_fresh(server, http, module_devbox):
    name = unique()
    view = open_pty(http, module_devbox, name)
    with terminal(server, view["connect_url"]) as term:
        term.run('export KEEP=yes; echo "M-$((10+1))"', "M-11")
        term.send("exit")
        assert term.wait_closed() == 1000
    assert_fresh_shell(server, http, module_devbox, name)
    assert control(http, module_devbox, name, action="close").status_code == 200


# ----- session names -------------------------------------------------------------------------------------


def test_session_name_rules(server, http, module_devbox):
    for bad in ("bad!name", "a" * 257, "dot.name"):
        response = http.get(pty_path(module_devbox, bad))
        assert response.status_code == 400, (bad, response.text)
        assert control(http, module_devbox, bad, action="close").status_code == 400
    longest = ("Az09_-" * 43)[:256]
    assert len(longest) == 256
    view = open_pty(http, module_devbox, longest)
    assert view["created"] is True and view["session_name"] == longest
    with terminal(server, view["connect_url"]) as term:
        term.run('echo "M-$((50+5))"', "M-55")
    assert control(http, module_devbox, longest, action="close").status_code == 200


# ----- auth ----------------------------------------------------------------------------------------------


def test_websocket_auth_and_other_tenant(server, http, module_devbox):
    name = unique()
    view = open_pty(http, module_devbox, name)
    url = view["connect_url"]
    assert refusal_code(server, url, {}) == 4401
    assert refusal_code(server, url, {"Authorization": "Bearer wrong-key"}) == 4401
    assert refusal_code(server, url, {"Authorization": API_KEY}) == 4401  # no Bearer scheme

    other = {"Authorization": f"Bearer {OTHER_API_KEY}"}
    assert http.get(pty_path(module_devbox, name), headers=other).status_code == 404
    assert refusal_code(server, url, other) == 4404
    assert (
        http.post(f"{pty_path(module_devbox, name)}/control", json={"action": "close"}, headers=other).status_code
        == 404
    )
    assert http.get(pty_path(module_devbox, name), headers={"Authorization": "Bearer wrong"}).status_code == 401

    # none of that touched the session: the owner still gets the same shell
    assert open_pty(http, module_devbox, name)["created"] is False
    with terminal(server, url) as term:
        term.run('echo "M-$((30+3))"', "M-33")
    assert control(http, module_devbox, name, action="close").status_code == 200


# ----- the PTY tunnel form -------------------------------------------------------------------------------


def test_pty_tunnel_form(server, http, module_devbox):
    created = http.post(f"/v1/devboxes/{module_devbox}/create_pty_tunnel")
    assert created.status_code == 200, created.text
    tunnel = created.json()
    assert set(tunnel) == {"tunnel_key", "auth_token"}
    assert tunnel["tunnel_key"] and tunnel["auth_token"]
    token = {"Authorization": f"Bearer {tunnel['auth_token']}"}
    name = unique()

    with httpx.Client(base_url=server.base_url, timeout=60) as bare:
        view = bare.get(f"/pty/{name}", params={"cols": 100, "rows": 30}, headers=token)
        assert view.status_code == 200, view.text
        assert view.json()["connect_url"] == f"/pty/{name}/ws"
        assert (view.json()["created"], view.json()["cols"], view.json()["rows"]) == (True, 100, 30)

        assert bare.get(f"/pty/{name}").status_code == 401
        assert bare.get(f"/pty/{name}", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
        assert bare.get(f"/pty/{name}", headers=KEY_HEADERS).status_code == 401  # an API key is not a tunnel token
        bad_control = bare.post(f"/pty/{name}/control", json={"action": "close"}, headers={"Authorization": "Bearer x"})
        assert bad_control.status_code == 401
        assert refusal_code(server, f"/pty/{name}/ws", {}) == 4401
        assert refusal_code(server, f"/pty/{name}/ws", {"Authorization": "Bearer not-a-token"}) == 4401

        with terminal(server, view.json()["connect_url"], headers=token) as term:
            term.run('export KEEP=tun; echo "M-$((60+6))"', "M-66")
            assert stty_size(term) == "30x100"
            resized = bare.post(
                f"/pty/{name}/control", json={"action": "resize", "cols": 120, "rows": 40}, headers=token
            )
            assert resized.status_code == 200, resized.text
            assert resized.json() == {"session_name": name, "status": "ok"}
            assert stty_size(term) == "40x120"
            again = bare.get(f"/pty/{name}", headers=token).json()
            assert (again["created"], again["attached"]) == (False, True)

        # the same session as the devbox-scoped form with the same name
        scoped = open_pty(http, module_devbox, name)
        assert scoped["created"] is False
        with terminal(server, scoped["connect_url"]) as term:
            term.run('echo "K-$KEEP-$((1+6))"', "K-tun-7")

        closed = bare.post(f"/pty/{name}/control", json={"action": "close"}, headers=token)
        assert closed.status_code == 200, closed.text
        assert closed.json()["status"] == "closed"
        assert bare.post(f"/pty/{name}/control", json={"action": "close"}, headers=token).status_code == 404


# ----- the devbox lifecycle ---------------------------------------------------------------------------------


def test_suspend_resume_gives_a_fresh_shell(server, http, own_devbox):
    name = unique()
    view = open_pty(http, own_devbox, name)
    assert view["created"] is True
    with terminal(server, view["connect_url"]) as term:
        term.run('export KEEP=yes; echo "M-$((7+1))"', "M-8")
        assert http.post(f"/v1/devboxes/{own_devbox}/suspend").status_code == 200
        assert term.wait_closed(timeout=60) == 1000  # the attached client is let go when the container stops
    assert wait_for(http, own_devbox, ["suspended", "failure", "shutdown"])["status"] == "suspended"

    assert http.get(pty_path(own_devbox, name)).status_code == 400
    assert refusal_code(server, socket_path(own_devbox, name), KEY_HEADERS) == 4404
    assert http.post(f"/v1/devboxes/{own_devbox}/create_pty_tunnel").status_code == 400

    assert http.post(f"/v1/devboxes/{own_devbox}/resume").status_code == 200
    assert wait_for(http, own_devbox, ["running", "failure", "shutdown"])["status"] == "running"
    assert_fresh_shell(server, http, own_devbox, name)


def test_shut_down_devbox_refuses_terminals(server, http, own_devbox):
    name = unique()
    open_pty(http, own_devbox, name)
    assert http.post(f"/v1/devboxes/{own_devbox}/shutdown").status_code == 200
    assert wait_for(http, own_devbox, ["shutdown", "failure"])["status"] == "shutdown"
    assert http.get(pty_path(own_devbox, name)).status_code == 400
    assert http.get(pty_path(own_devbox, unique())).status_code == 400
    assert refusal_code(server, socket_path(own_devbox, name), KEY_HEADERS) == 4404
    assert refusal_code(server, socket_path("dbx_nope", name), KEY_HEADERS) == 4404
    assert http.get(pty_path("dbx_nope", name)).status_code == 404


@contextmanager
def attached_before_idle(server: ServerProcess, http: httpx.Client, devbox_id: str) -> Iterator[Term]:
    """Attach a client; if the idle policy suspended the devbox first, resume it and try again."""
    for _ in range(5):
        response = http.get(pty_path(devbox_id, unique()))
        if response.status_code == 200:
            ws = connect(ws_url(server, response.json()["connect_url"]), additional_headers=KEY_HEADERS)
            term = Term(ws)
            try:
                term.run('echo "M-$((11+11))"', "M-22")
            except (websockets.ConnectionClosed, AssertionError):
                ws.close()
            else:
                try:
                    yield term
                finally:
                    ws.close()
                return
        status = wait_for(http, devbox_id, ["suspended", "running", "failure", "shutdown"])["status"]
        if status == "suspended":
            assert http.post(f"/v1/devboxes/{devbox_id}/resume").status_code == 200
            assert wait_for(http, devbox_id, ["running", "failure", "shutdown"])["status"] == "running"
    raise AssertionError("could not attach a terminal before the idle policy suspended the devbox")


def test_attached_client_keeps_an_idle_devbox_running(server, http):
    devbox_id = create_running(http, launch_parameters={"after_idle": {"idle_time_seconds": 3, "on_idle": "suspend"}})
    try:
        with attached_before_idle(server, http, devbox_id):
            until = time.monotonic() + 6  # twice the idle time, with no input at all
            while time.monotonic() < until:
                assert http.get(f"/v1/devboxes/{devbox_id}").json()["status"] == "running"
                time.sleep(0.5)
        # the client is gone: the idle policy applies again
        assert wait_for(http, devbox_id, ["suspended", "failure", "shutdown"])["status"] == "suspended"
    finally:
        http.post(f"/v1/devboxes/{devbox_id}/shutdown")
