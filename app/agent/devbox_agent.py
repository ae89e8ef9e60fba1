"""The in-devbox command agent: one process per devbox, running as root. Normally the container's own
command (`--listen`): the server connects over a unix socket in the devbox's private mount, no engine
call in between. Otherwise (containers made before that) started over a `docker exec` whose
stdin/stdout carry the frames. Each command the server sends becomes a child process with
its own pipes and process group, so a command costs a fork instead of a `docker exec` (55-70 ms).

Standard library only, and nothing outside this file: it runs under the devbox image's python3.

Frames, both ways: 4-byte header length, 4-byte body length (big-endian), JSON header, raw body.
Server -> agent ops: hello, run, stdin (body), eof, signal.
Agent -> server events: hello, out (body, fd 1 or 2), exit.

Named shells keep their state (cwd, exported environment, other variables and arrays, functions,
aliases, umask) in files written by an EXIT trap of every command, so `exit 3` ends the command with
status 3 and the shell lives on. A killed command (no trap runs) leaves the state as it was before it.
The files live in the devbox's private mount, so a shell survives an agent restart and a
suspend/resume, and never travels into a snapshot (its saved environment holds the devbox's secrets).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import termios
from typing import IO, Any

VERSION = 1
with open(__file__, "rb") as _self:  # which agent this is: a server with another one asks it to re-exec
    SOURCE_DIGEST = hashlib.sha256(_self.read()).hexdigest()
HEADER = struct.Struct(">II")
READ_CHUNK = 256 * 1024
# The devbox's private mount (see private_dirs.py): never part of a snapshot.
SHELLS_DIR = "/run/devboxd-env/shells"
DEVBOX_ENV_FILE = "/run/devboxd-env/env"
STATE_FILES = ("cwd", "env", "functions")
DROPPED_ENV = {"PWD", "SHLVL", "_"}
# A plain command normally costs a bash start plus a login (/etc/profile forks `id`, ~/.profile): ~3-4 ms.
# So the agent keeps SPARES "spare" login bashes started ahead, as the user, that have read their profile
# and wait for a command on a pipe; a command then costs writing it there (two, so that back-to-back
# commands find one that finished its login while the other was used). A spare is used only while
# nothing it read can have changed: same user and environment, and the same profile files.
SPARE_SCRIPT = (
    '__devboxd_fd=$1; set --; IFS= read -r -d "" -u "$__devboxd_fd" __devboxd_cmd; '
    'exec {__devboxd_fd}<&-; unset -v __devboxd_fd; eval "unset -v __devboxd_cmd; $__devboxd_cmd"'
)
SPARES = 2
SPARE_COMMAND_MAX = 16 * 1024  # bash reads the pipe a byte at a time: long commands go the usual way
PROFILE_FILES = ("/etc/profile", "/etc/bash.bashrc", ".bash_profile", ".bash_login", ".profile", ".bashrc")
PROFILE_DIR = "/etc/profile.d"

# Runs every named-shell command: restores functions and aliases, runs the command in this shell, and
# saves the state on exit whatever the exit path (`exit N`, a failing `set -e`, the end of the script).
# Builtins only, no extra process: this runs on every command. The agent moves the
# *.new files into place once the command exited, so a command killed mid-save keeps the old state.
SHELL_WRAPPER = r"""
__devboxd_state=$1
__devboxd_cmd=$2
set --
if [ -r "$__devboxd_state/functions" ]; then shopt -s expand_aliases; . "$__devboxd_state/functions"; fi
__devboxd_save() {
  __devboxd_rc=$?
  {
    builtin pwd > "$__devboxd_state/cwd.new"
    compgen -v > "$__devboxd_state/vars"  # a file, not $(...): no subshell to fork
    mapfile -t __devboxd_vars < "$__devboxd_state/vars"
    for __devboxd_v in "${__devboxd_vars[@]}"; do
      case ${!__devboxd_v@a} in *x*) printf '%s=%s\0' "$__devboxd_v" "${!__devboxd_v}" ;; esac
    done > "$__devboxd_state/env.new"
    {
      declare -f; alias -p; umask -p
      for __devboxd_v in "${__devboxd_vars[@]}"; do
        case $__devboxd_v in
          BASH*|FUNCNAME|GROUPS|DIRSTACK|RANDOM|SRANDOM|SECONDS|LINENO|HISTCMD|OPTIND|OPTARG|OPTERR) continue ;;
          PIPESTATUS|EPOCH*|COLUMNS|LINES|IFS|PS[0-9]|_|__devboxd_*|COMP_*|SHLVL|HOSTNAME|HOSTTYPE) continue ;;
          MACHTYPE|OSTYPE|SHELLOPTS|UID|EUID|PPID) continue ;;
        esac
        case ${!__devboxd_v@a} in *[xr]*) ;; *) declare -p "$__devboxd_v" ;; esac
      done
    } > "$__devboxd_state/functions.new"
  } 2>/dev/null
  exit $__devboxd_rc
}
trap __devboxd_save EXIT
unset -v __devboxd_rc
eval "$__devboxd_cmd"
"""


def read_devbox_env() -> dict[str, str]:
    try:
        with open(DEVBOX_ENV_FILE, "rb") as f:
            items = f.read().split(b"\0")
    except FileNotFoundError:
        return {}
    env = {}
    for item in items:
        key, sep, value = item.partition(b"=")
        if sep:
            env[os.fsdecode(key)] = os.fsdecode(value)
    return env


def set_winsize(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def take_controlling_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def set_nonblocking(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


class Output:
    """Frames to the server. Blocking writes: a server that reads slowly slows the commands (back-pressure)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def send(self, header: dict[str, Any], body: bytes = b"") -> None:
        head = json.dumps(header, separators=(",", ":")).encode()
        data = memoryview(HEADER.pack(len(head), len(body)) + head + body)
        while data:
            try:
                written = os.write(self._fd, data)
            except BlockingIOError:
                select.select([], [self._fd], [])
                continue
            data = data[written:]


class Command:
    """A running command: its process, where its output comes from (stream number per file), and its
    input. A terminal session is a command whose one pty master is both (input through a dup of it)."""

    def __init__(
        self, command_id: str, proc: subprocess.Popen[bytes], outputs: dict[int, IO[bytes]], stdin: IO[bytes] | None
    ) -> None:
        self.id = command_id
        self.proc = proc
        self.pending_stdin = bytearray()
        self.eof_requested = False
        self.stdin = stdin
        self.stdin_fd = stdin.fileno() if stdin is not None else None
        self.output_fds = {f.fileno(): stream for stream, f in outputs.items()}
        self.pipes = {f.fileno(): f for f in outputs.values()}
        self.finished = False
        self.shell_state: str | None = None
        self.pty: int | None = None  # the pty master, for resizes and the foreground process group


def profile_stamp(home: str) -> tuple[Any, ...]:
    """What a login bash reads, as (mtime, size, inode) per file: any change means a new login."""
    paths = [os.path.join(home, name) for name in PROFILE_FILES]  # absolute names stay as they are
    with contextlib.suppress(OSError):
        paths += sorted(entry.path for entry in os.scandir(PROFILE_DIR))
    stamps: list[Any] = []
    for path in paths:
        try:
            st = os.stat(path)
            stamps.append((path, st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            stamps.append((path, None))
    return tuple(stamps)


class Spare:
    """A login bash waiting for its command on `command_w` (see SPARE_SCRIPT)."""

    def __init__(self, proc: subprocess.Popen[bytes], command_w: int, user: str, env_version: int, stamp: Any) -> None:
        self.proc = proc
        self.command_w = command_w
        self.user = user
        self.env_version = env_version
        self.stamp = stamp

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.command_w)
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


class ReExec(Exception):
    """The server brought a newer agent: replace this process with it (listening mode)."""


class Agent:
    def __init__(self, control_fd: int, out_fd: int) -> None:
        self.control_fd = control_fd
        self.out = Output(out_fd)
        self.selector = selectors.DefaultSelector()
        self.commands: dict[str, Command] = {}
        self.inbuf = bytearray()
        self.base_env: dict[str, str] = {}
        self.env_version = 0
        self.spares: list[Spare] = []  # oldest (most likely done with its login) first
        self.spare_user: str | None = None  # the user of the last plain command: the next is likely the same
        self.load_env()

    def load_env(self) -> None:
        """At start, and again when a warm-pool devbox is claimed and its env file rewritten."""
        self.base_env = dict(os.environ)
        self.base_env.update(read_devbox_env())
        self.env_version += 1
        self.discard_spares()  # they started with the old environment

    def run_forever(self) -> None:
        """Until the server hangs up; then what it started is ended (it ends its executions too)."""
        wake_r, wake_w = os.pipe()
        set_nonblocking(wake_r)
        set_nonblocking(wake_w)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        control_fd = self.control_fd
        set_nonblocking(control_fd)
        self.selector.register(wake_r, selectors.EVENT_READ, lambda: self.drain_wakeups(wake_r))
        self.selector.register(control_fd, selectors.EVENT_READ, lambda: self.read_control(control_fd))
        try:
            while control_fd in self.selector.get_map():
                for key, _ in self.selector.select(timeout=1.0):
                    key.data()
                self.reap()
        finally:
            self.shut_down()
            signal.set_wakeup_fd(-1)
            self.selector.close()
            os.close(wake_r)
            os.close(wake_w)

    @staticmethod
    def drain_wakeups(fd: int) -> None:
        try:
            while os.read(fd, 4096):
                pass
        except BlockingIOError:
            pass

    def shut_down(self) -> None:
        """The server went away: it ends its executions on its side, so end the processes too."""
        for command in self.commands.values():
            with contextlib.suppress(OSError):
                os.killpg(command.proc.pid, signal.SIGKILL)
        self.discard_spares()

    # --- control messages ---------------------------------------------------------------------------------

    def read_control(self, fd: int) -> None:
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:  # the server's connection broke: as good as a hang-up
            data = b""
        if not data:
            self.selector.unregister(fd)
            return
        self.inbuf += data
        while len(self.inbuf) >= HEADER.size:
            head_len, body_len = HEADER.unpack_from(self.inbuf)
            end = HEADER.size + head_len + body_len
            if len(self.inbuf) < end:
                break
            header = json.loads(bytes(self.inbuf[HEADER.size : HEADER.size + head_len]))
            body = bytes(self.inbuf[HEADER.size + head_len : end])
            del self.inbuf[:end]
            self.handle(header, body)

    def handle(self, header: dict[str, Any], body: bytes) -> None:
        op = header.get("op")
        if op == "hello":
            self.out.send({"ev": "hello", "version": VERSION, "pid": os.getpid(), "digest": SOURCE_DIGEST})
            return
        if op == "reexec":
            raise ReExec
        if op == "run":
            self.run(header)
            return
        if op == "env":
            self.load_env()
            self.spare_user = self.spare_user or "user"  # a claimed warm devbox: the default user, likely
            self.prepare_spare()
            return
        command = self.commands.get(header.get("id", ""))
        if command is None:
            return
        if op in ("stdin", "eof"):
            command.pending_stdin += body
            command.eof_requested = command.eof_requested or op == "eof"
            self.flush_stdin(command)
        elif op == "signal":
            with contextlib.suppress(OSError):
                if header.get("foreground") and command.pty is not None:
                    os.killpg(os.tcgetpgrp(command.pty), int(header["signal"]))
                elif header.get("group"):
                    os.killpg(command.proc.pid, int(header["signal"]))
                else:
                    os.kill(command.proc.pid, int(header["signal"]))
        elif op == "resize" and command.pty is not None:
            with contextlib.suppress(OSError):  # the kernel sends SIGWINCH to the foreground process group
                set_winsize(command.pty, int(header["cols"]), int(header["rows"]))

    # --- commands -----------------------------------------------------------------------------------------

    def user_env(self, user: pwd.struct_passwd) -> dict[str, str]:
        env = dict(self.base_env)
        env.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name, SHELL=user.pw_shell or "/bin/bash")
        env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        return env

    def shell_plan(
        self, name: str, command: str, user: pwd.struct_passwd
    ) -> tuple[str, list[str], str, dict[str, str]]:
        """State dir, argv, cwd and environment for a command on a named shell, from its saved state."""
        state = os.path.join(SHELLS_DIR, hashlib.sha256(name.encode()).hexdigest()[:32])
        if not os.path.isdir(state):
            os.makedirs(state, mode=0o700)
            os.chown(state, user.pw_uid, user.pw_gid)
        try:
            with open(os.path.join(state, "env"), "rb") as f:
                saved = f.read().split(b"\0")
            with open(os.path.join(state, "cwd"), "rb") as f:
                saved_cwd = os.fsdecode(f.read().rstrip(b"\n"))
        except FileNotFoundError:  # the shell's first command: a login shell, like unnamed commands
            argv = ["bash", "-l", "-c", SHELL_WRAPPER, "devboxd-shell", state, command]
            return state, argv, user.pw_dir, self.user_env(user)
        env = {}
        for item in saved:
            key, sep, value = item.partition(b"=")
            if sep and os.fsdecode(key) not in DROPPED_ENV:
                env[os.fsdecode(key)] = os.fsdecode(value)
        cwd = saved_cwd if os.path.isdir(saved_cwd) else user.pw_dir
        return state, ["bash", "-c", SHELL_WRAPPER, "devboxd-shell", state, command], cwd, env

    def run(self, header: dict[str, Any]) -> None:
        command_id: str = header["id"]
        try:
            user = pwd.getpwnam(header["user"])
            command = self.spawn_terminal(command_id, user, header) if header.get("pty") else self.spawn(header, user)
        except Exception as exc:  # the command never started: report it the way a shell would
            self.out.send({"ev": "out", "id": command_id, "fd": 2}, f"devboxd agent: cannot start: {exc}\n".encode())
            self.out.send({"ev": "exit", "id": command_id, "code": 127})
            return
        self.commands[command_id] = command
        for fd in command.output_fds:
            set_nonblocking(fd)
            self.selector.register(fd, selectors.EVENT_READ, lambda fd=fd, c=command: self.read_output(c, fd))
        if command.stdin_fd is not None:
            set_nonblocking(command.stdin_fd)

    def discard_spares(self) -> None:
        for spare in self.spares:
            spare.discard()
        self.spares.clear()

    def prepare_spare(self) -> None:
        """Top the spare login bashes up for the likely next plain commands."""
        while len(self.spares) < SPARES and self.spare_user is not None:
            if not self.start_spare(self.spare_user):
                return

    def start_spare(self, user_name: str) -> bool:
        try:
            user = pwd.getpwnam(user_name)
            stamp = profile_stamp(user.pw_dir)  # before the login reads the files: a change after shows
            command_r, command_w = os.pipe()
            try:
                proc = subprocess.Popen(
                    ["bash", "-l", "-c", SPARE_SCRIPT, "bash", str(command_r)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    pass_fds=(command_r,),
                    cwd=user.pw_dir if os.path.isdir(user.pw_dir) else "/",
                    env=self.user_env(user),
                    user=user.pw_uid,
                    group=user.pw_gid,
                    extra_groups=os.getgrouplist(user.pw_name, user.pw_gid),
                    start_new_session=True,
                    close_fds=True,
                )
            finally:
                os.close(command_r)
        except Exception:  # no such user, no bash, out of processes: commands start the usual way
            return False
        self.spares.append(Spare(proc, command_w, user.pw_name, self.env_version, stamp))
        return True

    def take_spare(self, header: dict[str, Any], user: pwd.struct_passwd) -> Command | None:
        """A spare as this command, when it is certain to behave as a fresh `bash -lc` would."""
        if self.spare_user != user.pw_name:
            self.discard_spares()
            self.spare_user = user.pw_name
        command = header["command"].encode()
        if not self.spares or len(command) > SPARE_COMMAND_MAX or b"\0" in command:
            return None
        if self.spares[0].stamp != profile_stamp(user.pw_dir):  # all started before the profile changed
            self.discard_spares()
            return None
        spare = self.spares.pop(0)
        if spare.env_version != self.env_version or spare.proc.poll() is not None:
            spare.discard()
            return None
        proc = spare.proc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        try:
            os.write(spare.command_w, command + b"\0")  # fits the pipe: SPARE_COMMAND_MAX
        except OSError:
            spare.discard()
            return None
        os.close(spare.command_w)
        stdin: IO[bytes] | None = proc.stdin
        if not header.get("stdin"):
            proc.stdin.close()  # as good as /dev/null: reads see end of file
            stdin = None
        return Command(header["id"], proc, {1: proc.stdout, 2: proc.stderr}, stdin)

    def spawn(self, header: dict[str, Any], user: pwd.struct_passwd) -> Command:
        state = None
        if not header.get("shell") and not header.get("argv"):
            prepared = self.take_spare(header, user)
            if prepared is not None:
                return prepared
        if header.get("argv"):  # a program as is, no login shell: the server's own file tools
            argv, cwd, env = [str(a) for a in header["argv"]], header.get("cwd") or user.pw_dir, self.user_env(user)
        elif header.get("shell"):
            state, argv, cwd, env = self.shell_plan(header["shell"], header["command"], user)
        else:
            argv, cwd, env = ["bash", "-lc", header["command"]], user.pw_dir, self.user_env(user)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if header.get("stdin") else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd if os.path.isdir(cwd) else "/",
            env=env,
            user=user.pw_uid,
            group=user.pw_gid,
            extra_groups=os.getgrouplist(user.pw_name, user.pw_gid),
            start_new_session=True,  # its own process group: kill and interrupt reach its children
            close_fds=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        command = Command(header["id"], proc, {1: proc.stdout, 2: proc.stderr}, proc.stdin)
        command.shell_state = state
        return command

    def spawn_terminal(self, command_id: str, user: pwd.struct_passwd, header: dict[str, Any]) -> Command:
        """A login bash on a new pty, as the user, with the pty as its controlling terminal: interactive, or
        running `command` when the header has one (`ssh -t devbox cmd`)."""
        master, slave = os.openpty()
        try:
            os.fchown(slave, user.pw_uid, -1)  # the user's programs may reopen their terminal (/dev/tty)
            set_winsize(master, int(header.get("cols") or 80), int(header.get("rows") or 24))
            env = self.user_env(user)
            env["TERM"] = header.get("term") or env.get("TERM") or "xterm-256color"
            program = header.get("command")
            proc = subprocess.Popen(
                ["bash", "-lc", program] if program else ["bash", "-l", "-i"],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=user.pw_dir if os.path.isdir(user.pw_dir) else "/",
                env=env,
                user=user.pw_uid,
                group=user.pw_gid,
                extra_groups=os.getgrouplist(user.pw_name, user.pw_gid),
                start_new_session=True,
                preexec_fn=take_controlling_terminal,  # safe here: the agent has a single thread
                close_fds=True,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        command = Command(
            command_id, proc, {1: os.fdopen(master, "rb", buffering=0)}, os.fdopen(os.dup(master), "wb", buffering=0)
        )
        command.pty = master
        return command

    def flush_stdin(self, command: Command) -> None:
        fd = command.stdin_fd
        if fd is None:
            return
        try:
            while command.pending_stdin:
                del command.pending_stdin[: os.write(fd, command.pending_stdin)]
        except BlockingIOError:
            pass
        except OSError:  # the command closed its stdin or exited: nothing more can be delivered
            command.pending_stdin.clear()
            command.eof_requested = True
        registered = fd in self.selector.get_map()
        if command.pending_stdin and not registered:
            self.selector.register(fd, selectors.EVENT_WRITE, lambda: self.flush_stdin(command))
        elif not command.pending_stdin:
            if registered:
                self.selector.unregister(fd)
            if command.eof_requested:
                self.close_stdin(command)

    def close_stdin(self, command: Command) -> None:
        if command.stdin_fd is None:
            return
        if command.stdin_fd in self.selector.get_map():
            self.selector.unregister(command.stdin_fd)
        if command.stdin is not None:
            with contextlib.suppress(OSError):
                command.stdin.close()
        command.stdin_fd = None

    def read_output(self, command: Command, fd: int, drain: bool = False) -> None:
        """Forward what the pipe holds: one read per wake-up (fair between commands), or everything there
        when the command has exited. Once the command finished, output (of its background jobs) is dropped."""
        budget = 16 << 20 if drain else 1
        while budget > 0:
            try:
                data = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                return
            except OSError:  # EIO: a pty whose every process has gone
                data = b""
            if not data:
                self.selector.unregister(fd)
                command.pipes.pop(fd).close()
                del command.output_fds[fd]
                return
            budget -= len(data) if drain else 1
            if not command.finished:
                self.out.send({"ev": "out", "id": command.id, "fd": command.output_fds[fd]}, data)

    def reap(self) -> None:
        for command in list(self.commands.values()):
            code = command.proc.poll()
            if code is None:
                continue
            for fd in list(command.output_fds):
                self.read_output(command, fd, drain=True)
            command.finished = True
            self.close_stdin(command)
            if command.shell_state is not None:
                self.keep_shell_state(command.shell_state)
            del self.commands[command.id]
            self.out.send({"ev": "exit", "id": command.id, "code": code if code >= 0 else 128 - code})
            self.prepare_spare()  # after the exit went out: off that command's path

    @staticmethod
    def keep_shell_state(state: str) -> None:
        """Adopt what the command's exit trap saved, all three files or none (a killed command saved none)."""
        fresh = [os.path.join(state, f"{name}.new") for name in STATE_FILES]
        if all(os.path.exists(path) for path in fresh):
            for path in fresh:
                os.replace(path, path[: -len(".new")])
        else:
            for path in fresh:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)


def listen(path: str) -> None:
    """The container's own agent (started with it, not by an exec): the server connects over a unix
    socket in the private mount, one connection at a time; a new one replaces the old (server restart)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # root only: the devbox user must not drive the agent
    try:
        server.bind(path)
    finally:
        os.umask(old_umask)
    server.listen(4)
    while True:
        conn, _ = server.accept()
        agent = Agent(conn.fileno(), conn.fileno())
        try:
            agent.run_forever()
        except ReExec:
            conn.close()
            os.unlink(path)  # until the new agent listens, connecting fails rather than waiting on this one
            server.close()
            os.execv(sys.executable, [sys.executable, "-I", "-S", os.path.abspath(__file__), "--listen", path])
        except OSError:
            pass  # the connection broke mid-frame: wait for the next one
        conn.close()


def main() -> None:
    os.makedirs(SHELLS_DIR, mode=0o755, exist_ok=True)
    if len(sys.argv) == 3 and sys.argv[1] == "--listen":
        listen(sys.argv[2])
    else:
        Agent(sys.stdin.fileno(), sys.stdout.fileno()).run_forever()


if __name__ == "__main__":
    main()
