"""SSH into devboxes through one SSH server inside devboxd, so a stock OpenSSH client (ssh, scp, sftp)
reaches any devbox without sshd in its image or a port per devbox.

create_ssh_key issues a fresh key pair per call and keeps only the public half. A login is accepted when
its key is one issued for a devbox and the user name is that devbox's Linux user; the key alone decides
the devbox, so a key for one devbox never opens another. Sessions then run in the devbox through its
command agent (app/services/ssh_sessions.py)."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from app.domain.devbox import now_ms
from app.domain.errors import DomainError, InvalidState, Unsupported
from app.domain.statuses import TERMINAL
from app.services.agent_channel import AgentChannels
from app.services.background import BackgroundTasks
from app.services.devboxes import DevboxService
from app.services.ssh_sessions import DevboxSshSession, SessionOwner
from app.store.ssh_keys import SshKeyStore

log = logging.getLogger(__name__)
logging.getLogger("asyncssh").setLevel(logging.WARNING)  # it logs every connection and channel at INFO

KEY_TYPE = "ssh-ed25519"
HOST_KEY_FILE = "ssh_host_ed25519_key"
LOGIN_GRACE_SECONDS = 30


@dataclass(frozen=True)
class SshAccess:
    devbox_id: str
    url: str  # host:port of the gateway
    ssh_private_key: str
    ssh_user: str


class SshGateway:
    def __init__(
        self,
        devboxes: DevboxService,
        keys: SshKeyStore,
        channels: AgentChannels,
        tasks: BackgroundTasks,
        data_dir: Path,
        listen_host: str,
        listen_port: int,
        public_host: str,
    ) -> None:
        self._devboxes = devboxes
        self._keys = keys
        self._channels = channels
        self._tasks = tasks
        self._host_key_path = data_dir / HOST_KEY_FILE
        self._listen = (listen_host, listen_port)
        self._public_host = public_host
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._problem = "the SSH gateway has not started"
        self._sessions: set[DevboxSshSession] = set()
        self.port: int | None = None

    async def start(self) -> None:
        """Listen; a port that is taken leaves SSH off (create_ssh_key says why), not the whole server down."""
        host, port = self._listen
        try:
            host_key = await asyncio.to_thread(self._load_or_create_host_key)
            self._acceptor = await asyncssh.listen(
                host,
                port,
                server_factory=lambda: _Login(self),
                server_host_keys=[host_key],
                line_editor=False,  # bytes go to the devbox's own pty untouched
                login_timeout=LOGIN_GRACE_SECONDS,
                keepalive_interval=30,
            )
        except (OSError, asyncssh.Error) as exc:
            self._problem = f"the SSH gateway could not listen on {host}:{port}: {exc}"
            log.error("%s", self._problem)
            return
        self.port = self._acceptor.get_port()
        log.info("SSH gateway listening on %s:%s", host, self.port)

    async def close(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None

    def _load_or_create_host_key(self) -> asyncssh.SSHKey:
        """Kept in the data dir, so clients' known_hosts stay valid across restarts."""
        if self._host_key_path.exists():
            return asyncssh.read_private_key(self._host_key_path)
        key = asyncssh.generate_private_key(KEY_TYPE)
        self._host_key_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._host_key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.export_private_key("openssh"))
        return key

    async def issue_key(self, owner: str, devbox_id: str) -> SshAccess:
        devbox = await self._devboxes.get(owner, devbox_id, with_transitions=False)
        if devbox.status in TERMINAL:
            raise InvalidState(f"devbox {devbox_id} is {devbox.status.value}; SSH keys are for live devboxes")
        if self.port is None:
            raise Unsupported(self._problem)
        key = asyncssh.generate_private_key(KEY_TYPE, comment=f"devboxd {devbox_id}")
        await self._keys.add(
            devbox_id, key.get_fingerprint("sha256"), key.export_public_key("openssh").decode(), now_ms()
        )
        return SshAccess(
            devbox_id=devbox_id,
            url=f"{self._public_host}:{self.port}",
            ssh_private_key=key.export_private_key("openssh").decode(),
            ssh_user=devbox.username,
        )

    async def owner_of_key(self, username: str, key: asyncssh.SSHKey) -> SessionOwner | None:
        devbox_id = await self._keys.devbox_for(key.get_fingerprint("sha256"))
        if devbox_id is None:
            return None
        devbox = await self._devboxes.get_for_credential(devbox_id)
        if devbox is None or devbox.status in TERMINAL or devbox.username != username:
            return None
        return SessionOwner(tenant=devbox.owner, devbox_id=devbox_id, user=devbox.username)

    def open_session(self, owner: SessionOwner) -> DevboxSshSession:
        return DevboxSshSession(
            owner, self._devboxes, self._channels, self._tasks, self._sessions.add, self._sessions.discard
        )

    def busy_devboxes(self) -> set[str]:
        """Devboxes with an open SSH session: not idle, whatever their commands do."""
        return {session.owner.devbox_id for session in self._sessions}


class _Login(asyncssh.SSHServer):
    """One client connection: public-key login only, then sessions in the devbox the key belongs to."""

    def __init__(self, gateway: SshGateway) -> None:
        self._gateway = gateway
        self._conn: asyncssh.SSHServerConnection | None = None
        self._owner: SessionOwner | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        try:
            owner = await self._gateway.owner_of_key(username, key)
        except DomainError:
            return False
        if owner is not None:
            self._owner = owner
        return owner is not None

    def session_requested(self) -> tuple[asyncssh.SSHServerChannel[bytes], DevboxSshSession] | bool:
        if self._conn is None or self._owner is None:
            return False
        channel = self._conn.create_server_channel(encoding=None)
        return channel, self._gateway.open_session(self._owner)
