"""`devboxd devboxes|logs|keys|snapshot ...`: operator commands, run beside (or without) a server on the
same database and Docker engine. Each opens the store, does one thing, and closes it."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from app.cli.tables import emit, when
from app.config import Settings
from app.domain.devbox import now_ms
from app.domain.errors import DomainError
from app.domain.statuses import DevboxStatus
from app.services.auth import key_digest, new_key
from app.store.api_keys import ApiKeyStore
from app.store.database import Database, migrate
from app.store.devboxes import DevboxStore
from app.store.logs import LogStore
from app.store.snapshots import SnapshotStore

T = TypeVar("T")


def _run(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    async def main() -> T:
        await asyncio.to_thread(migrate, settings.resolved_database_url)  # no-op when at head
        db = Database(settings.resolved_database_url)
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(main())


def _fail(message: str) -> int:
    print(f"devboxd: {message}", file=sys.stderr)
    return 1


# ----- devboxes ----------------------------------------------------------------------------------------


def devboxes_list(settings: Settings, args: argparse.Namespace) -> int:
    status = DevboxStatus(args.status) if args.status else None
    devboxes = _run(settings, lambda db: DevboxStore(db).list_all(status, args.limit))
    rows = [
        {
            "id": d.id,
            "tenant": d.owner,
            "status": d.status.value,
            "name": d.name,
            "created": when(d.create_time_ms) if not args.json else d.create_time_ms,
            "cpus": d.cpus,
            "memory_gb": round(d.memory_bytes / 2**30, 1),
            "image": d.image,
        }
        for d in devboxes
    ]
    emit(rows, ["id", "tenant", "status", "name", "created", "cpus", "memory_gb"], args.json)
    return 0


def devboxes_shutdown(settings: Settings, args: argparse.Namespace) -> int:
    from app.drivers.docker_driver import DockerDriver
    from app.services.operator import OperatorActions
    from app.services.private_dirs import PrivateDirs

    async def shutdown(db: Database) -> Any:
        driver = DockerDriver(threads=2)
        try:
            actions = OperatorActions(
                DevboxStore(db), LogStore(db), driver, PrivateDirs(settings.data_dir / "devbox-env")
            )
            return await actions.shutdown(args.devbox_id)
        finally:
            driver.close()

    try:
        devbox = _run(settings, shutdown)
    except DomainError as exc:
        return _fail(exc.message)
    emit([{"id": devbox.id, "status": devbox.status.value}], ["id", "status"], args.json)
    return 0


def devboxes_logs(settings: Settings, args: argparse.Namespace) -> int:
    async def entries(db: Database) -> Any:
        if await DevboxStore(db).get(args.devbox_id, with_transitions=False) is None:
            return None
        return await LogStore(db).list_entries(args.devbox_id)

    found = _run(settings, entries)
    if found is None:
        return _fail(f"devbox {args.devbox_id} not found")
    if args.json:
        emit([vars(e) for e in found], [], True)
        return 0
    for e in found:
        command = f" $ {e.cmd}" if e.cmd else ""
        status = f" (exit {e.exit_code})" if e.exit_code is not None else ""
        print(f"{when(e.timestamp_ms)} {e.source:<14} {e.level:<5}{command}{status} {e.message}".rstrip())
    return 0


# ----- API keys --------------------------------------------------------------------------------------


def keys_create(settings: Settings, args: argparse.Namespace) -> int:
    key = new_key()
    digest = key_digest(key)
    _run(settings, lambda db: ApiKeyStore(db).add(digest, args.name, now_ms()))
    row = {"name": args.name, "tenant": digest[:32], "api_key": key}
    if args.json:
        emit([row], [], True)
    else:
        print(f"API key for {args.name!r} (tenant {digest[:32]}); shown once, only its digest is kept:\n{key}")
    return 0


def keys_list(settings: Settings, args: argparse.Namespace) -> int:
    keys = _run(settings, lambda db: ApiKeyStore(db).list_keys())
    rows = [
        {
            "name": k.name,
            "tenant": k.digest[:32],
            "created": k.create_time_ms if args.json else when(k.create_time_ms),
            "revoked": k.revoked_time_ms if args.json else when(k.revoked_time_ms) if k.revoked_time_ms else "",
        }
        for k in keys
    ]
    emit(rows, ["name", "tenant", "created", "revoked"], args.json)
    return 0


def keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    count = _run(settings, lambda db: ApiKeyStore(db).revoke(args.name_or_tenant, now_ms()))
    if not count:
        return _fail(f"no active key named or of tenant {args.name_or_tenant!r}")
    print(f"revoked {count} key(s); servers stop accepting them within seconds")
    return 0


# ----- snapshots -------------------------------------------------------------------------------------


def snapshot_publish(settings: Settings, args: argparse.Namespace) -> int:
    """Mark a snapshot public (or private again): public snapshots are listed for every API key."""
    if not _run(settings, lambda db: SnapshotStore(db).set_public(args.snapshot_id, args.public)):
        return _fail(f"no snapshot {args.snapshot_id}")
    print(f"{args.snapshot_id}: {'public' if args.public else 'private'}")
    return 0


def add_operator_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    devboxes = sub.add_parser("devboxes", help="devboxes of every tenant").add_subparsers(
        dest="devboxes_command", required=True
    )
    listing = devboxes.add_parser("list", parents=[common], help="list devboxes, newest first")
    listing.add_argument("--status", choices=[s.value for s in DevboxStatus])
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(fn=devboxes_list)
    shutdown = devboxes.add_parser("shutdown", parents=[common], help="shut a devbox down and remove its container")
    shutdown.add_argument("devbox_id")
    shutdown.set_defaults(fn=devboxes_shutdown)
    logs = devboxes.add_parser("logs", parents=[common], help="a devbox's log: set-up, entrypoint and command entries")
    logs.add_argument("devbox_id")
    logs.set_defaults(fn=devboxes_logs)

    keys = sub.add_parser("keys", help="API keys (each key is a tenant)").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", parents=[common], help="make a new API key and print it once")
    create.add_argument("--name", required=True, help="who or what the key is for")
    create.set_defaults(fn=keys_create)
    keys.add_parser(
        "list", parents=[common], help="keys made with `keys create` (never the keys themselves)"
    ).set_defaults(fn=keys_list)
    revoke = keys.add_parser("revoke", parents=[common], help="stop accepting a key, by name or tenant id")
    revoke.add_argument("name_or_tenant")
    revoke.set_defaults(fn=keys_revoke)

    snapshot = sub.add_parser("snapshot", help="operator actions on disk snapshots").add_subparsers(
        dest="snapshot_command", required=True
    )
    for action, public in (("publish", True), ("unpublish", False)):
        verb = "list it for every API key" if public else "make it private to its owner again"
        cmd = snapshot.add_parser(action, parents=[common], help=f"{action} a snapshot: {verb}")
        cmd.add_argument("snapshot_id")
        cmd.set_defaults(fn=snapshot_publish, public=public)
