"""Recovery: kill -9 of the server in the middle of executions, suspends, resumes and creates leaves every
devbox truthful after a restart; a container killed by the OOM killer fails its devbox as out_of_memory;
and a Docker engine restart under a running server is survived (503 on /health while the engine is away,
then recovery by itself). Kill -9 during a snapshot is covered in test_snapshots.py."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest

from app.drivers.base import LABEL_DEVBOX, LABEL_INSTANCE
from tests.api.test_restart import container_of, create_running, get, sh
from tests.conftest import ServerProcess, tracked_client, wait_for

SEQ_LINES = 2000
SEQ_OUTPUT = "".join(f"{i}\n" for i in range(1, SEQ_LINES + 1))
ENGINE_RESTART_OPT_IN = "DEVBOXD_TEST_RESTART_ENGINE"
ENGINE_LOCK = "/tmp/docker-engine-restart.lock"


@pytest.fixture
def client(restartable_server: ServerProcess) -> Iterator[httpx.Client]:
    with tracked_client(restartable_server) as http:
        yield http


def start_execution(http: httpx.Client, devbox_id: str, command: str) -> str:
    response = http.post(f"/v1/devboxes/{devbox_id}/execute_async", json={"command": command})
    assert response.status_code == 200, response.text
    return response.json()["execution_id"]  # type: ignore[no-any-return]


def wait_execution(http: httpx.Client, devbox_id: str, execution_id: str, statuses: list[str]) -> dict[str, Any]:
    url = f"/v1/devboxes/{devbox_id}/executions/{execution_id}/wait_for_status"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = http.post(url, json={"statuses": statuses, "timeout_seconds": 10})
        if response.status_code == 200:
            return response.json()  # type: ignore[no-any-return]
        assert response.status_code == 408, response.text
    raise AssertionError(f"execution {execution_id} never reached {statuses}")


def execution(http: httpx.Client, devbox_id: str, execution_id: str) -> dict[str, Any]:
    response = http.get(f"/v1/devboxes/{devbox_id}/executions/{execution_id}", params={"last_n": SEQ_LINES + 10})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def streamed_stdout(http: httpx.Client, devbox_id: str, execution_id: str) -> str:
    url = f"/v1/devboxes/{devbox_id}/executions/{execution_id}/stream_stdout_updates"
    with http.stream("GET", url, timeout=30) as response:
        assert response.status_code == 200, response.read()
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    return "".join(json.loads(line[len("data: ") :])["output"] for line in lines)


def suspend(http: httpx.Client, devbox_id: str) -> None:
    response = http.post(f"/v1/devboxes/{devbox_id}/suspend")
    assert response.status_code == 200, response.text


def resume_and_check(http: httpx.Client, devbox_id: str, path: str, content: str) -> None:
    response = http.post(f"/v1/devboxes/{devbox_id}/resume")
    assert response.status_code == 200, response.text
    assert wait_for(http, devbox_id, ["running", "failure", "shutdown"])["status"] == "running"
    assert sh(http, devbox_id, f"cat {path}")["stdout"] == content


def orphans(http: httpx.Client, docker_client: docker.DockerClient, instance: str) -> list[str]:
    """Containers labelled with this server's instance whose devbox is over or unknown."""
    found = []
    for container in docker_client.api.containers(all=True, filters={"label": f"{LABEL_INSTANCE}={instance}"}):
        response = http.get(f"/v1/devboxes/{container['Labels'].get(LABEL_DEVBOX, '')}")
        if response.status_code != 200 or response.json()["status"] in ("shutdown", "failure"):
            found.append(f"{container['Id'][:12]} ({container['Labels'].get(LABEL_DEVBOX)})")
    return found


def assert_no_orphans(http: httpx.Client, docker_client: docker.DockerClient, instance: str) -> None:
    """Allowing a few seconds: a devbox's container is removed just after the devbox ends."""
    deadline = time.monotonic() + 15
    while (left := orphans(http, docker_client, instance)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"orphan containers: {left}"


def process_gone(http: httpx.Client, devbox_id: str, pattern: str) -> bool:
    """Whether no process matches `pattern` (a regex that does not match itself), allowing a few seconds."""
    script = f"for i in $(seq 1 50); do pgrep -f '{pattern}' >/dev/null || {{ echo gone; exit 0; }}; sleep 0.2; done"
    return sh(http, devbox_id, script)["stdout"] == "gone\n"


# ----- kill -9 of the server ----------------------------------------------------------------------------------


def test_kill_during_executions_keeps_finished_output_and_ends_the_running_one(
    restartable_server, client, docker_client
):
    devbox = create_running(client, name="exec-kill")
    finished_id = start_execution(client, devbox["id"], f"seq 1 {SEQ_LINES}")
    finished = wait_execution(client, devbox["id"], finished_id, ["completed"])
    assert finished["exit_status"] == 0
    # The 61[2] spelling keeps pgrep from matching the shell that runs pgrep.
    running_id = start_execution(client, devbox["id"], "echo started; sleep 612")
    assert wait_execution(client, devbox["id"], running_id, ["running", "completed"])["status"] == "running"
    assert not process_gone(client, devbox["id"], "sleep 61[2]")

    restartable_server.restart(kill=True)

    after = get(client, devbox["id"])
    assert after["status"] == "running", after
    assert sh(client, devbox["id"], "echo still here")["stdout"] == "still here\n"
    kept = execution(client, devbox["id"], finished_id)
    assert (kept["status"], kept["exit_status"]) == ("completed", 0)
    assert kept["stdout"] == SEQ_OUTPUT
    assert kept["stderr"] == ""
    assert streamed_stdout(client, devbox["id"], finished_id) == SEQ_OUTPUT

    ended = execution(client, devbox["id"], running_id)
    assert (ended["status"], ended["exit_status"]) == ("completed", 137), ended
    assert "server restarted" in ended["stderr"], ended
    # The command agent ends what it ran once the server is gone: nothing keeps running unaccounted for.
    assert process_gone(client, devbox["id"], "sleep 61[2]")
    assert_no_orphans(client, docker_client, restartable_server.instance)


def test_kill_right_after_suspend_ends_suspended(restartable_server, client, docker_client):
    devbox = create_running(client, name="suspend-kill")
    sh(client, devbox["id"], "echo kept > ~/kept.txt")
    suspend(client, devbox["id"])
    restartable_server.restart(kill=True)

    after = get(client, devbox["id"])
    assert after["status"] == "suspended", after
    container = container_of(docker_client, devbox["id"])
    assert container is not None and container.status != "running"
    resume_and_check(client, devbox["id"], "~/kept.txt", "kept\n")
    assert_no_orphans(client, docker_client, restartable_server.instance)


@pytest.fixture(scope="module")
def slow_stop_server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    """A long grace period, so a container whose main process ignores SIGTERM stays `stopping` a while."""
    return server_factory(DEVBOX_STOP_TIMEOUT_SECONDS="10")


def test_kill_while_the_container_is_stopping_ends_suspended(slow_stop_server, docker_client):
    """The entrypoint notes SIGTERM and carries on; runuser (its parent) SIGKILLs it 2 s later, so the
    container stays running about 2 s after the suspend began: the server is killed inside that window."""
    with tracked_client(slow_stop_server) as http:
        devbox = create_running(
            http, entrypoint="trap 'echo got-term' TERM; echo entrypoint-up; while true; do sleep 0.1; done"
        )
        sh(http, devbox["id"], "echo kept > ~/kept.txt")
        container = container_of(docker_client, devbox["id"])
        assert container is not None
        # The trap is set only once the entrypoint runs: a SIGTERM during its login shell's start finds none.
        deadline = time.monotonic() + 20
        while b"entrypoint-up" not in container.logs() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert b"entrypoint-up" in container.logs(), container.logs()
        suspend(http, devbox["id"])
        deadline = time.monotonic() + 20
        while b"got-term" not in container.logs() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert b"got-term" in container.logs(), "the suspend never sent SIGTERM"
        slow_stop_server.stop(kill=True)
        container.reload()
        assert container.status == "running", "the kill was meant to land while the container was stopping"
        slow_stop_server.start()

        after = get(http, devbox["id"])
        assert after["status"] == "suspended", after
        container.reload()
        assert container.status != "running"
        resume_and_check(http, devbox["id"], "~/kept.txt", "kept\n")
        assert_no_orphans(http, docker_client, slow_stop_server.instance)


def test_kill_right_after_resume_ends_running(restartable_server, client, docker_client):
    devbox = create_running(client, name="resume-kill")
    sh(client, devbox["id"], "echo kept > ~/kept.txt")
    suspend(client, devbox["id"])
    assert wait_for(client, devbox["id"], ["suspended"])["status"] == "suspended"
    response = client.post(f"/v1/devboxes/{devbox['id']}/resume")
    assert response.status_code == 200, response.text
    restartable_server.restart(kill=True)

    after = wait_for(client, devbox["id"], ["running", "failure", "shutdown", "suspended"])
    assert after["status"] == "running", after
    assert sh(client, devbox["id"], "cat ~/kept.txt")["stdout"] == "kept\n"
    assert_no_orphans(client, docker_client, restartable_server.instance)


def test_kill_right_after_create_ends_running_or_failure(restartable_server, client, docker_client):
    response = client.post("/v1/devboxes", json={"name": "create-kill"})
    assert response.status_code == 200, response.text
    devbox_id = response.json()["id"]
    restartable_server.restart(kill=True)

    after = get(client, devbox_id)
    assert after["status"] in ("running", "failure"), after
    if after["status"] == "running":
        assert sh(client, devbox_id, "echo ok")["stdout"] == "ok\n"
    else:
        assert after["failure_reason"] == "execution_failed"
        assert container_of(docker_client, devbox_id) is None
    assert_no_orphans(client, docker_client, restartable_server.instance)
    # The server itself is fine: a new devbox comes up.
    assert sh(client, create_running(client)["id"], "echo fresh")["stdout"] == "fresh\n"


# ----- out of memory --------------------------------------------------------------------------------------------


def test_container_killed_by_the_oom_killer_fails_as_out_of_memory(client, docker_client):
    """The smallest size (1 GiB, no swap) and an entrypoint that fills 2 GiB: the kernel kills it, the
    container's main process ends with it, and the engine reports OOMKilled."""
    response = client.post(
        "/v1/devboxes",
        json={
            "entrypoint": "python3 -c 'import time; time.sleep(0.5); b = b\"x\" * (2 * 1024**3)'",
            "launch_parameters": {"resource_size_request": "X_SMALL"},
        },
    )
    assert response.status_code == 200, response.text
    devbox_id = response.json()["id"]
    ended = wait_for(client, devbox_id, ["failure", "shutdown"])
    assert ended["status"] == "failure", ended
    assert ended["failure_reason"] == "out_of_memory"
    assert ended["end_time_ms"] is not None
    logs = client.get(f"/v1/devboxes/{devbox_id}/logs").json()["logs"]
    assert any("out of memory" in (entry["message"] or "") for entry in logs), logs
    deadline = time.monotonic() + 10
    while container_of(docker_client, devbox_id) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert container_of(docker_client, devbox_id) is None


def test_a_command_killed_for_memory_does_not_brand_a_later_stop_as_out_of_memory(client, docker_client):
    """The OOM killer ends a command, not the devbox: it stays running. The engine's OOMKilled flag stays set
    afterwards, so a later stop for another reason must still read as that reason."""
    devbox = create_running(client, launch_parameters={"resource_size_request": "X_SMALL"})
    hog = sh(client, devbox["id"], "python3 -c 'b = b\"x\" * (2 * 1024**3)'")
    assert hog["exit_status"] == 137, hog
    assert get(client, devbox["id"])["status"] == "running"
    assert sh(client, devbox["id"], "echo fine")["stdout"] == "fine\n"
    container = container_of(docker_client, devbox["id"])
    assert container is not None
    container.stop(timeout=1)
    ended = wait_for(client, devbox["id"], ["failure", "shutdown"], seconds=30)
    assert (ended["status"], ended["failure_reason"]) == ("failure", "execution_failed"), ended


# ----- the engine going away and coming back ---------------------------------------------------------------------


class EngineProxy:
    """A unix socket forwarding to the real engine's that can be cut and restored: to the server behind it,
    the engine goes away (connections drop, new ones are refused) and comes back, while the engine itself
    and everyone else using it carry on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        assert host.startswith("unix://"), f"the proxy forwards to a unix socket, not {host}"
        self._target = host[len("unix://") :]
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def docker_host(self) -> str:
        return f"unix://{self.path}"

    def start(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        self.path.unlink(missing_ok=True)
        with self._lock:
            doomed, self._open = self._open, set()
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self._target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)  # pass a half-close on (an exec's stdin EOF)
        except OSError:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def assert_health_unavailable(server: ServerProcess) -> None:
    """Every /health answers 503 at once (an 8 s client timeout would fail the test)."""
    for _ in range(3):
        health = httpx.get(f"{server.base_url}/health", timeout=8)
        assert health.status_code == 503, health.text
        assert health.json()["docker"] == "unavailable", health.json()


@pytest.fixture
def engine_proxy() -> Iterator[EngineProxy]:
    # Not under pytest's tmp_path: unix socket paths are limited to about 100 bytes.
    with tempfile.TemporaryDirectory(prefix="dbx-proxy-") as where:
        proxy = EngineProxy(Path(where) / "docker.sock")
        proxy.start()
        yield proxy
        proxy.cut()


def test_engine_away_and_back_is_survived(server_factory, engine_proxy, docker_client):
    """The server's way to the engine is cut and restored: /health is 503 meanwhile and every call fails
    fast; once back, the server reconnects by itself, and what happened meanwhile is reconciled."""
    server = server_factory(DOCKER_HOST=engine_proxy.docker_host)
    with tracked_client(server) as http:
        survivor = create_running(http, name="away-survivor")
        sh(http, survivor["id"], "echo kept > ~/kept.txt")
        victim = create_running(http, name="away-victim")
        resting = create_running(http, name="away-resting")
        suspend(http, resting["id"])
        assert wait_for(http, resting["id"], ["suspended"])["status"] == "suspended"

        engine_proxy.cut()
        assert_health_unavailable(server)
        # Commands reach a running devbox's agent over its socket, not through the engine: they still run.
        # Anything that needs the engine fails at once, with a 503 or an execution that could not run.
        ran = http.post(f"/v1/devboxes/{survivor['id']}/execute_sync", json={"command": "echo still"}, timeout=30)
        assert ran.status_code in (200, 503), ran.text
        if ran.status_code == 200 and ran.json()["exit_status"] != 0:
            assert ran.json()["exit_status"] == 137 and "unavailable" in ran.json()["stderr"], ran.json()
        # Behind the server's back, unseen: one container stops, one vanishes.
        victim_container = container_of(docker_client, victim["id"])
        resting_container = container_of(docker_client, resting["id"])
        assert victim_container is not None and resting_container is not None
        victim_container.stop(timeout=1)
        resting_container.remove(force=True)
        engine_proxy.start()

        _wait(lambda: httpx.get(f"{server.base_url}/health", timeout=8).status_code == 200, 30, "/health 200")
        for lost in (victim, resting):
            ended = wait_for(http, lost["id"], ["failure", "shutdown"], seconds=30)
            assert (ended["status"], ended["failure_reason"]) == ("failure", "execution_failed"), ended
            logs = http.get(f"/v1/devboxes/{lost['id']}/logs").json()["logs"]
            assert any("Docker engine was unreachable" in (e["message"] or "") for e in logs), logs
        _wait(lambda: container_of(docker_client, victim["id"]) is None, 20, "the failed devbox's container to go")
        assert get(http, survivor["id"])["status"] == "running"
        assert sh(http, survivor["id"], "cat ~/kept.txt")["stdout"] == "kept\n"
        fresh = create_running(http, name="away-fresh")
        assert sh(http, fresh["id"], "echo fresh")["stdout"] == "fresh\n"
        # The event follower is back: a container stopped now is seen as it happens.
        fresh_container = container_of(docker_client, fresh["id"])
        assert fresh_container is not None
        fresh_container.stop(timeout=1)
        stopped = wait_for(http, fresh["id"], ["failure", "shutdown"], seconds=30)
        assert stopped["status"] == "failure", stopped
        assert_no_orphans(http, docker_client, server.instance)


# ----- Docker engine restart ------------------------------------------------------------------------------------


def _dockerd_pid() -> int:
    """The engine's pid, if it is a plain `dockerd` this user can signal and start again the same way."""
    candidates = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")[:-1]
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"dockerd":
            candidates.append((int(proc.name), argv))
    if len(candidates) != 1:
        pytest.skip(f"needs exactly one dockerd process, found {len(candidates)}")
    pid, argv = candidates[0]
    if argv != [b"dockerd"]:
        pytest.skip(f"dockerd runs as {argv!r}, not as a plain `dockerd` this test can start again")
    try:
        os.kill(pid, 0)
    except PermissionError:
        pytest.skip("this user cannot signal dockerd")
    return pid


def _engine_answers() -> bool:
    try:
        client = docker.from_env(timeout=3)
    except docker.errors.DockerException:
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


def _start_dockerd() -> None:
    """As scripts/ensure-docker.sh does, in its own session so this test's signals never reach it."""
    subprocess.run("nohup dockerd >>/var/log/dockerd.log 2>&1 &", shell=True, check=True, start_new_session=True)


def _wait(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(
    os.environ.get(ENGINE_RESTART_OPT_IN) != "1",
    reason=f"restarts the shared Docker engine (breaking others' runs): set {ENGINE_RESTART_OPT_IN}=1 "
    f"and run under `flock {ENGINE_LOCK}`",
)
def test_docker_engine_restart_is_survived(server_factory, docker_client):
    pid = _dockerd_pid()
    server = server_factory()
    with tracked_client(server) as http:
        running = create_running(http, name="engine-victim")
        resting = create_running(http, name="engine-sleeper")
        sh(http, resting["id"], "echo kept > ~/kept.txt")
        suspend(http, resting["id"])
        assert wait_for(http, resting["id"], ["suspended"])["status"] == "suspended"

        restarted = False
        try:
            os.kill(pid, signal.SIGTERM)
            # dockerd answers its API until it has stopped every container and exits.
            _wait(lambda: not _pid_alive(pid), 90, "the old dockerd to exit")
            assert not _engine_answers()
            assert_health_unavailable(server)
            _start_dockerd()
            restarted = True
            _wait(_engine_answers, 90, "the engine to answer again")
        finally:
            if not restarted:  # whatever failed above, the engine must come back for everyone else
                _wait(lambda: not _pid_alive(pid), 90, "the old dockerd to exit (cleanup)")
                _start_dockerd()
                _wait(_engine_answers, 90, "the engine to answer again (cleanup)")

        _wait(lambda: httpx.get(f"{server.base_url}/health", timeout=8).status_code == 200, 60, "/health 200")
        # The engine stopped every container: the running devbox must not pass for running.
        ended = wait_for(http, running["id"], ["failure", "shutdown"])
        assert ended["status"] == "failure", ended
        assert ended["failure_reason"] == "execution_failed"
        # Seen either live (dockerd reports the stops before it exits) or on reconnecting.
        logs = http.get(f"/v1/devboxes/{running['id']}/logs").json()["logs"]
        why = ("Docker engine", "container stopped")
        assert any(any(w in (entry["message"] or "") for w in why) for entry in logs), logs
        _wait(lambda: container_of(docker_client, running["id"]) is None, 20, "the failed devbox's container to go")
        # A suspended devbox was stopped anyway: it stays suspended and resumes with its files.
        assert get(http, resting["id"])["status"] == "suspended"
        resume_and_check(http, resting["id"], "~/kept.txt", "kept\n")
        # New creates work, and the event follower is back: a container stopped behind our back is seen.
        fresh = create_running(http, name="after-engine-restart")
        assert sh(http, fresh["id"], "echo fresh")["stdout"] == "fresh\n"
        container = container_of(docker_client, fresh["id"])
        assert container is not None
        container.stop(timeout=1)
        stopped = wait_for(http, fresh["id"], ["failure", "shutdown"], seconds=30)
        assert stopped["status"] == "failure", stopped
        assert_no_orphans(http, docker_client, server.instance)
