"""SSH into devboxes (app/services/ssh_gateway.py, ssh_sessions.py) with Debian's OpenSSH client: create_ssh_key
through the real Runloop SDK, then `ssh -i key -p PORT user@host cmd`, an interactive shell on a pty, stdin,
scp (sftp and legacy protocol) and sftp; keys per devbox, refusals, disconnects, idle policies, restarts.
Terminal resize and signals go through asyncssh's client, which can send them from a script."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncssh
import httpx
import pytest
from runloop_api_client import Runloop

from tests.conftest import API_KEY, OTHER_API_KEY, ServerProcess, wait_for

pytestmark = pytest.mark.skipif(shutil.which("ssh") is None, reason="OpenSSH client not installed")


class Access:
    """One create_ssh_key answer, with the key written where ssh can read it."""

    def __init__(self, answer: dict[str, Any], directory: Path) -> None:
        self.user = answer["ssh_user"]
        self.host, port = answer["url"].rsplit(":", 1)
        self.port = int(port)
        self.private_key = answer["ssh_private_key"]
        self.key_file = directory / f"key-{answer['id']}-{time.monotonic_ns()}"
        self.key_file.write_text(self.private_key)
        self.key_file.chmod(0o600)
        self.known_hosts = directory / "known_hosts"

    def options(self, port_flag: str = "-p") -> list[str]:
        return [
            "-i",
            str(self.key_file),
            port_flag,
            str(self.port),
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "LogLevel=ERROR",
        ]

    def ssh(
        self, *command: str, user: str | None = None, tty: bool = False, **kwargs: Any
    ) -> subprocess.CompletedProcess[bytes]:
        argv = ["ssh", *self.options(), *(["-tt"] if tty else []), f"{user or self.user}@{self.host}", *command]
        kwargs.setdefault("timeout", 60)
        kwargs.setdefault("capture_output", True)
        return subprocess.run(argv, **kwargs)

    def target(self, path: str) -> str:
        return f"{self.user}@{self.host}:{path}"


@pytest.fixture
def access(http: httpx.Client, tmp_path: Path) -> Callable[[str], Access]:
    def make(devbox_id: str) -> Access:
        response = http.post(f"/v1/devboxes/{devbox_id}/create_ssh_key")
        assert response.status_code == 200, response.text
        return Access(response.json(), tmp_path)

    return make


@pytest.fixture(scope="module")
def devbox(module_devbox: str) -> str:
    return module_devbox


def test_create_ssh_key_through_the_sdk(sdk: Runloop, devbox: str, tmp_path: Path) -> None:
    view = sdk.devboxes.create_ssh_key(devbox)
    assert view.id == devbox
    assert view.ssh_user == "user"
    host, port = view.url.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    assert view.ssh_private_key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    again = sdk.devboxes.create_ssh_key(devbox)
    assert again.ssh_private_key != view.ssh_private_key  # a fresh pair each time
    both = [Access(v.model_dump(), tmp_path) for v in (view, again)]
    for each in both:
        assert each.ssh("whoami").stdout == b"user\n"


def test_command_output_stderr_and_exit_status(access: Callable[[str], Access], devbox: str) -> None:
    result = access(devbox).ssh("echo out-$((40+2)); echo err >&2; pwd; exit 7")
    assert result.returncode == 7
    assert result.stdout == b"out-42\n/home/user\n"
    assert result.stderr == b"err\n"


def test_stdin_reaches_the_command_byte_for_byte(access: Callable[[str], Access], devbox: str) -> None:
    payload = os.urandom(3 * 1024 * 1024)
    result = access(devbox).ssh("sha256sum", input=payload)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0].decode() == hashlib.sha256(payload).hexdigest()


def test_shell_without_a_pty_reads_commands_from_stdin(access: Callable[[str], Access], devbox: str) -> None:
    result = access(devbox).ssh(input=b"echo from-$((1+1)); tty; exit 4\n")
    assert result.returncode == 4
    assert result.stdout == b"from-2\nnot a tty\n"


def test_interactive_shell_on_a_pty(access: Callable[[str], Access], devbox: str) -> None:
    """`ssh -tt`: a login bash on a pty that echoes what is typed; `exit 5` ends the session with 5."""
    script = b"echo hi-$((40+2)); tty; stty size\nexit 5\n"
    result = access(devbox).ssh(tty=True, input=script)
    output = result.stdout.decode(errors="replace")
    assert result.returncode == 5, output
    assert "hi-42" in output
    assert "/dev/pts/" in output


def test_command_on_a_pty(access: Callable[[str], Access], devbox: str) -> None:
    result = access(devbox).ssh("tty; echo TERM=$TERM", tty=True)
    assert result.returncode == 0
    assert b"/dev/pts/" in result.stdout


def test_scp_both_ways_and_legacy_protocol(access: Callable[[str], Access], devbox: str, tmp_path: Path) -> None:
    box = access(devbox)
    source = tmp_path / "blob"
    source.write_bytes(os.urandom(2 * 1024 * 1024 + 17))
    for mode in ([], ["-O"]):  # OpenSSH's scp speaks sftp by default; -O is the old scp protocol
        remote = f"/home/user/scp-{len(mode)}.bin"
        back = tmp_path / f"back-{len(mode)}"
        up = subprocess.run(["scp", *mode, *box.options("-P"), str(source), box.target(remote)], capture_output=True)
        assert up.returncode == 0, up.stderr
        down = subprocess.run(["scp", *mode, *box.options("-P"), box.target(remote), str(back)], capture_output=True)
        assert down.returncode == 0, down.stderr
        assert back.read_bytes() == source.read_bytes()
    assert box.ssh("stat -c %U:%s /home/user/scp-0.bin").stdout == f"user:{source.stat().st_size}\n".encode()


def test_sftp_batch(access: Callable[[str], Access], devbox: str, tmp_path: Path) -> None:
    box = access(devbox)
    local = tmp_path / "notes.txt"
    local.write_text("sftp works\n")
    copy = tmp_path / "copy.txt"
    batch = f"mkdir sftp-dir\nput {local} sftp-dir/notes.txt\nls sftp-dir\nget sftp-dir/notes.txt {copy}\nbye\n"
    result = subprocess.run(
        ["sftp", "-b", "-", *box.options("-P"), f"{box.user}@{box.host}"], input=batch.encode(), capture_output=True
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "copy.txt").read_text() == "sftp works\n"
    assert box.ssh("cat sftp-dir/notes.txt").stdout == b"sftp works\n"


def test_a_key_opens_only_its_own_devbox(
    access: Callable[[str], Access], devbox_factory: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    first, second = devbox_factory(), devbox_factory()
    first_key, second_key = access(first["id"]), access(second["id"])
    mark = "echo $(hostname)"
    assert first_key.ssh(mark).stdout != second_key.ssh(mark).stdout
    first_key.ssh("touch /home/user/only-in-first")
    assert second_key.ssh("test -e /home/user/only-in-first").returncode == 1
    assert first_key.ssh("test -e /home/user/only-in-first").returncode == 0
    # A key of our own making, and the devbox's key with another user name, are refused.
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    stranger_only = [*first_key.options()]
    stranger_only[1] = str(stranger)
    refused = subprocess.run(["ssh", *stranger_only, f"user@{first_key.host}", "true"], capture_output=True)
    assert refused.returncode == 255 and b"Permission denied" in refused.stderr
    wrong_user = first_key.ssh("true", user="root")
    assert wrong_user.returncode == 255 and b"Permission denied" in wrong_user.stderr


def test_a_key_stops_working_when_its_devbox_shuts_down(
    access: Callable[[str], Access], devbox_factory: Callable[..., dict[str, Any]], http: httpx.Client
) -> None:
    devbox_id = devbox_factory()["id"]
    box = access(devbox_id)
    assert box.ssh("true").returncode == 0
    assert http.post(f"/v1/devboxes/{devbox_id}/shutdown").status_code == 200
    result = box.ssh("true")
    assert result.returncode == 255 and b"Permission denied" in result.stderr
    late = http.post(f"/v1/devboxes/{devbox_id}/create_ssh_key")
    assert late.status_code == 400, late.text
    assert "shutdown" in late.json()["detail"]


def test_suspended_devbox_says_to_resume_it(
    access: Callable[[str], Access], devbox_factory: Callable[..., dict[str, Any]], http: httpx.Client
) -> None:
    devbox_id = devbox_factory()["id"]
    box = access(devbox_id)
    assert http.post(f"/v1/devboxes/{devbox_id}/suspend").status_code == 200
    wait_for(http, devbox_id, ["suspended"])
    result = box.ssh("true")
    assert result.returncode == 255
    assert b"suspended" in result.stderr and b"resume" in result.stderr
    assert http.post(f"/v1/devboxes/{devbox_id}/resume").status_code == 200
    wait_for(http, devbox_id, ["running"])
    assert box.ssh("echo back").stdout == b"back\n"  # the same key works again after resume


def test_unknown_and_foreign_devboxes_are_404(server: ServerProcess, http: httpx.Client, devbox: str) -> None:
    assert http.post("/v1/devboxes/dbx_nope/create_ssh_key").status_code == 404
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {OTHER_API_KEY}"}) as other:
        response = other.post(f"/v1/devboxes/{devbox}/create_ssh_key")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert httpx.post(f"{server.base_url}/v1/devboxes/{devbox}/create_ssh_key").status_code == 401


def test_disconnect_ends_the_remote_command(access: Callable[[str], Access], devbox: str, http: httpx.Client) -> None:
    box = access(devbox)
    marker = f"sleep 4{time.monotonic_ns() % 100000}"
    argv = ["ssh", *box.options(), f"{box.user}@{box.host}", f"{marker} ; true"]
    client = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    count = f"pgrep -fc '^{marker}' || true"

    def remote_count() -> str:
        response = http.post(f"/v1/devboxes/{devbox}/execute_sync", json={"command": count})
        return str(response.json()["stdout"]).strip()

    deadline = time.monotonic() + 30
    while remote_count() != "1":
        assert time.monotonic() < deadline, "the remote command never started"
        time.sleep(0.2)
    client.kill()
    client.wait()
    deadline = time.monotonic() + 30
    while remote_count() != "0":
        assert time.monotonic() < deadline, "the remote command outlived its SSH client"
        time.sleep(0.2)


def test_resize_and_signal_from_an_ssh_client(access: Callable[[str], Access], devbox: str) -> None:
    """asyncssh as the client: it can change the terminal size and send a signal mid-session."""
    box = access(devbox)

    async def scenario() -> str:
        key = asyncssh.import_private_key(box.private_key)
        async with asyncssh.connect(box.host, box.port, username=box.user, client_keys=[key], known_hosts=None) as conn:
            process = await conn.create_process(term_type="xterm", term_size=(100, 30), encoding=None)
            output = bytearray()

            async def until(marker: bytes) -> None:
                while marker not in output:
                    output.extend(await asyncio.wait_for(process.stdout.read(4096), 15))

            process.stdin.write(b"echo size-$((1)); stty size\n")
            await until(b"30 100")
            process.change_terminal_size(120, 40)
            process.stdin.write(b"stty size\n")
            await until(b"40 120")
            process.stdin.write(b"sleep 3001\n")
            for _ in range(150):  # until it is the terminal's foreground job, asked on a second channel
                probe = await conn.run("pgrep -fx 'sleep 3001'")
                if probe.exit_status == 0:
                    break
                await asyncio.sleep(0.1)
            process.send_signal("INT")  # to the foreground job, as Ctrl-C would
            process.stdin.write(b"echo after-$((2+3)) status-$?\n")  # typed ahead, read once sleep is gone
            await until(b"after-5 status-130")
            process.stdin.write(b"exit 0\n")
            await asyncio.wait_for(process.wait_closed(), 15)
            return output.decode(errors="replace")

    text = asyncio.run(scenario())
    assert "30 100" in text and "40 120" in text


def test_ssh_session_keeps_an_idle_devbox_awake(server_factory: Callable[..., ServerProcess], tmp_path: Path) -> None:
    quick = server_factory(DEVBOX_TIMER_TICK_SECONDS="0.2")
    with httpx.Client(base_url=quick.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as http:
        body = {"launch_parameters": {"after_idle": {"idle_time_seconds": 2, "on_idle": "suspend"}}}
        devbox_id = http.post("/v1/devboxes", json=body).json()["id"]
        try:
            wait_for(http, devbox_id, ["running"])
            box = Access(http.post(f"/v1/devboxes/{devbox_id}/create_ssh_key").json(), tmp_path)
            # Silent for twice the idle time, but the session is open: no suspend under it.
            result = box.ssh("sleep 5; echo still-here")
            assert result.stdout == b"still-here\n", result.stderr
            assert http.get(f"/v1/devboxes/{devbox_id}").json()["status"] == "running"
            # With the session gone, the idle policy applies again.
            assert wait_for(http, devbox_id, ["suspended"], seconds=30)["status"] == "suspended"
        finally:
            http.post(f"/v1/devboxes/{devbox_id}/shutdown")


def test_host_key_and_client_keys_survive_a_restart(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    restartable = server_factory()
    with httpx.Client(
        base_url=restartable.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60
    ) as http:
        devbox_id = http.post("/v1/devboxes", json={}).json()["id"]
        try:
            wait_for(http, devbox_id, ["running"])
            box = Access(http.post(f"/v1/devboxes/{devbox_id}/create_ssh_key").json(), tmp_path)
            assert box.ssh("true").returncode == 0  # records the host key in known_hosts
            restartable.env_extra["DEVBOX_SSH_PORT"] = str(box.port)  # same port after the restart
            restartable.restart()
            # StrictHostKeyChecking would refuse a changed host key; the stored one is served again.
            result = box.ssh("echo again")
            assert result.returncode == 0, result.stderr
            assert result.stdout == b"again\n"
        finally:
            http.post(f"/v1/devboxes/{devbox_id}/shutdown")
