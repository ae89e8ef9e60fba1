"""`devboxd`: the server's command line."""

from __future__ import annotations

import argparse
import json
import sys

from app.config import Settings


def _serve(settings: Settings, _: argparse.Namespace) -> int:
    from app.server import serve

    serve(settings)
    return 0


def _migrate(settings: Settings, _: argparse.Namespace) -> int:
    from app.store.database import migrate

    migrate(settings.resolved_database_url)
    return 0


def _image_build(settings: Settings, args: argparse.Namespace) -> int:
    import docker

    from app.drivers.docker_image import ensure_default_image

    quiet = args.quiet
    tag = ensure_default_image(docker.from_env(), None if quiet else (lambda m: print(f"[image] {m}", flush=True)))
    print(json.dumps({"image": tag}) if args.json else tag)
    return 0


def _image_tag(settings: Settings, _: argparse.Namespace) -> int:
    from app.drivers.docker_image import default_image_tag

    print(settings.default_image or default_image_tag())
    return 0


def _snapshot_publish(settings: Settings, args: argparse.Namespace) -> int:
    """Mark a snapshot public (or private again): public snapshots are listed for every API key."""
    import asyncio

    from app.store.database import create_engine_for
    from app.store.snapshots import SnapshotStore

    async def run() -> bool:
        engine = create_engine_for(settings.resolved_database_url)
        try:
            return await SnapshotStore(engine).set_public(args.snapshot_id, args.public)
        finally:
            await engine.dispose()

    if not asyncio.run(run()):
        print(f"devboxd: no snapshot {args.snapshot_id}", file=sys.stderr)
        return 1
    print(f"{args.snapshot_id}: {'public' if args.public else 'private'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devboxd", description="Self-hosted Devbox control plane.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the API server (settings from DEVBOX_* env vars)").set_defaults(fn=_serve)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(fn=_migrate)
    image = sub.add_parser("image", help="the default devbox image").add_subparsers(dest="image_command", required=True)
    build = image.add_parser("build", help="build the default image if this engine lacks it")
    build.add_argument("--quiet", action="store_true", help="print only the tag")
    build.add_argument("--json", action="store_true", help="print the tag as JSON")
    build.set_defaults(fn=_image_build)
    image.add_parser("tag", help="print the default image's tag").set_defaults(fn=_image_tag)
    snapshot = sub.add_parser("snapshot", help="operator actions on disk snapshots").add_subparsers(
        dest="snapshot_command", required=True
    )
    for action, public in (("publish", True), ("unpublish", False)):
        verb = "list it for every API key" if public else "make it private to its owner again"
        cmd = snapshot.add_parser(action, help=f"{action} a snapshot: {verb}")
        cmd.add_argument("snapshot_id")
        cmd.set_defaults(fn=_snapshot_publish, public=public)
    args = parser.parse_args(argv)
    return int(args.fn(Settings(), args))


if __name__ == "__main__":
    sys.exit(main())
