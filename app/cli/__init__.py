"""`devboxd`: the server's command line. `serve` runs the API; the rest are operator commands (see
operator_commands.py) and the default image's build. Tables for people, `--json` for scripts."""

from __future__ import annotations

import argparse
import json
import sys

from app.cli.operator_commands import add_operator_commands
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
    import time

    import docker

    from app.drivers.docker_image import ensure_default_image

    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[image {time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    quiet = args.quiet or args.json
    tag = ensure_default_image(docker.from_env(), None if quiet else progress)
    print(json.dumps({"image": tag}) if args.json else tag)
    return 0


def _image_tag(settings: Settings, args: argparse.Namespace) -> int:
    from app.drivers.docker_image import default_image_tag

    tag = settings.default_image or default_image_tag()
    print(json.dumps({"image": tag}) if args.json else tag)
    return 0


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    root = argparse.ArgumentParser(prog="devboxd", description="Self-hosted Devbox control plane.")
    sub = root.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the API server (settings from DEVBOX_* env vars)").set_defaults(fn=_serve)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(fn=_migrate)
    image = sub.add_parser("image", help="the default devbox image").add_subparsers(dest="image_command", required=True)
    build = image.add_parser("build", parents=[common], help="build the default image if this engine lacks it")
    build.add_argument("--quiet", action="store_true", help="no progress, print only the tag")
    build.set_defaults(fn=_image_build)
    image.add_parser("tag", parents=[common], help="print the default image's tag").set_defaults(fn=_image_tag)
    add_operator_commands(sub, common)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.fn(Settings(), args))


if __name__ == "__main__":
    sys.exit(main())
