"""HTTP tunnels: reach any port inside a devbox through the server, by an unguessable tunnel key.

The proxying itself is HTTP plumbing (app/api/tunnel_proxy.py); this module holds the rules: one
tunnel per devbox, who may pass (open, or a bearer token that is not the API key), activity for idle
policies, waking a suspended devbox, and where a devbox's port is."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from app.domain.devbox import Devbox, container_name, now_ms
from app.domain.errors import BackendUnavailable, InvalidRequest, InvalidState, NotFound, Unauthorized, WaitTimeout
from app.domain.statuses import TERMINAL, DevboxStatus
from app.drivers.base import SandboxDriver
from app.services.devboxes import DevboxService
from app.store.devboxes import DevboxStore

WAKE_SECONDS = 60.0
_SETTLED = ["running", "suspended", "shutdown", "failure"]
_KEY_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"  # host names are case-insensitive


@dataclass(frozen=True)
class TunnelTarget:
    devbox_id: str
    host: str
    port: int
    strip_authorization: bool  # the tunnel's own token is not for the service behind it
    woke: bool = False  # the devbox was just resumed for this request: its services may still be starting


def new_tunnel(auth_mode: str | None, http_keep_alive: bool | None, wake_on_http: bool | None) -> dict[str, Any]:
    mode = auth_mode or "open"
    if mode not in ("open", "authenticated"):
        raise InvalidRequest(f"auth_mode must be open or authenticated, got {mode!r}")
    return {
        "tunnel_key": "".join(secrets.choice(_KEY_ALPHABET) for _ in range(26)),
        "auth_mode": mode,
        "auth_token": secrets.token_urlsafe(32) if mode == "authenticated" else None,
        "create_time_ms": now_ms(),
        "http_keep_alive": True if http_keep_alive is None else http_keep_alive,
        "wake_on_http": bool(wake_on_http),
    }


class TunnelService:
    def __init__(self, devboxes: DevboxService, store: DevboxStore, driver: SandboxDriver) -> None:
        self._devboxes = devboxes
        self._store = store
        self._driver = driver
        self._addresses: dict[str, str] = {}
        devboxes.started_listeners.append(self._forget_address)

    def _forget_address(self, devbox_id: str) -> None:
        """A (re)started container may have a new address."""
        self._addresses.pop(devbox_id, None)

    async def enable(
        self, owner: str, devbox_id: str, auth_mode: str | None, http_keep_alive: bool | None, wake: bool | None
    ) -> Devbox:
        devbox = await self._devboxes.get(owner, devbox_id)
        if devbox.status in TERMINAL:
            raise InvalidState(f"devbox {devbox_id} is {devbox.status.value}; tunnels need a live devbox")
        if devbox.tunnel:
            raise InvalidRequest(f"devbox {devbox_id} already has a tunnel (one per devbox); remove_tunnel first")
        tunnel = new_tunnel(auth_mode, http_keep_alive, wake)
        await self._store.update_fields(devbox_id, tunnel_key=tunnel["tunnel_key"], tunnel=tunnel)
        return await self._devboxes.get(owner, devbox_id)

    async def remove(self, owner: str, devbox_id: str) -> None:
        devbox = await self._devboxes.get(owner, devbox_id)
        if not devbox.tunnel:
            raise InvalidRequest(f"devbox {devbox_id} has no tunnel")
        await self._store.update_fields(devbox_id, tunnel_key=None, tunnel=None)

    async def resolve(self, tunnel_key: str, port: int, authorization: str | None) -> TunnelTarget:
        """Where a proxied request goes, after the tunnel's checks; wakes a suspended devbox if allowed."""
        if not 1 <= port <= 65535:
            raise InvalidRequest(f"port must be 1..65535, got {port}")
        devbox = await self._store.by_tunnel_key(tunnel_key.lower())
        if devbox is None or not devbox.tunnel:
            raise NotFound("no such tunnel")
        tunnel = devbox.tunnel
        if tunnel["auth_mode"] == "authenticated":
            scheme, _, token = (authorization or "").partition(" ")
            expected = str(tunnel["auth_token"])
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
                raise Unauthorized("this tunnel needs 'Authorization: Bearer <tunnel auth_token>'")
        woke = devbox.status in (DevboxStatus.SUSPENDED, DevboxStatus.SUSPENDING, DevboxStatus.RESUMING)
        if woke:
            devbox = await self._wake(devbox)
        if devbox.status != DevboxStatus.RUNNING:
            raise BackendUnavailable(f"devbox {devbox.id} is {devbox.status.value}")
        if tunnel.get("http_keep_alive", True):
            await self._devboxes.touch(devbox.id)
        address = await self._address(devbox.id)
        return TunnelTarget(devbox.id, address, port, tunnel["auth_mode"] == "authenticated", woke)

    async def _wake(self, devbox: Devbox) -> Devbox:
        assert devbox.tunnel is not None
        triggers = (devbox.launch_parameters.get("lifecycle") or {}).get("resume_triggers") or {}
        if not triggers.get("http", devbox.tunnel.get("wake_on_http")):
            raise BackendUnavailable(f"devbox {devbox.id} is {devbox.status.value} and the tunnel does not wake it")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAKE_SECONDS
        while True:
            if devbox.status == DevboxStatus.SUSPENDED:
                with contextlib.suppress(InvalidState):  # another request resumed it first
                    await self._devboxes.resume(devbox.owner, devbox.id)
            remaining = deadline - loop.time()
            if devbox.status == DevboxStatus.RUNNING or devbox.status in TERMINAL or remaining <= 0:
                return devbox
            with contextlib.suppress(WaitTimeout):
                await self._devboxes.wait_for_status(devbox.owner, devbox.id, _SETTLED, min(remaining, 10.0))
            devbox = await self._devboxes.get(devbox.owner, devbox.id)

    async def _address(self, devbox_id: str) -> str:
        address = self._addresses.get(devbox_id)
        if address is None:
            address = await self._driver.address(container_name(devbox_id))
            if address is None:
                raise BackendUnavailable(f"devbox {devbox_id} has no network address")
            self._addresses[devbox_id] = address
        return address
