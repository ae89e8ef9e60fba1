"""Builds the default devbox image locally: debootstrap -> docker import -> docker build.

No image registry is reachable where this server runs, so the base layer is made from Debian's packages
with debootstrap and imported; the Dockerfile beside this module adds the tools and the `user` account.
Both images are tagged by a hash of their recipe, so a machine builds each one once.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors

RECIPE_DIR = Path(__file__).parent / "image"
# CA certificates added on the host (e.g. for a TLS-intercepting proxy) are trusted inside devboxes too;
# otherwise pip, npm and git over https fail in them on such hosts.
HOST_EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
SUITE = "bookworm"
DEBOOTSTRAP_ARGS = ("--variant=minbase", "--include=ca-certificates", SUITE)
BASE_REPOSITORY = "devbox-base"
DEFAULT_REPOSITORY = "devbox-default"

Progress = Callable[[str], None]


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()[:12]


def base_image_tag() -> str:
    """Tag of the debootstrapped base, named by the debootstrap arguments that make it."""
    return f"{BASE_REPOSITORY}:{SUITE}-{_digest(' '.join(DEBOOTSTRAP_ARGS).encode())}"


def _host_cas() -> list[Path]:
    return sorted(HOST_EXTRA_CA_DIR.glob("*.crt")) if HOST_EXTRA_CA_DIR.is_dir() else []


def default_image_tag() -> str:
    """Tag of the default devbox image: changes whenever the base, a recipe file or a host CA changes."""
    files = sorted(p for p in RECIPE_DIR.iterdir() if p.is_file()) + _host_cas()
    parts = [base_image_tag().encode()] + [p.name.encode() + b"\0" + p.read_bytes() for p in files]
    return f"{DEFAULT_REPOSITORY}:{_digest(*parts)}"


def _image_exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def _build_base(client: docker.DockerClient, tag: str, progress: Progress) -> None:
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed: apt-get install -y debootstrap")
    repository, _, version = tag.partition(":")
    with tempfile.TemporaryDirectory(prefix="devbox-rootfs-") as work:
        rootfs = Path(work) / "rootfs"
        progress(f"debootstrap {' '.join(DEBOOTSTRAP_ARGS)} (a few minutes)")
        subprocess.run(
            ["debootstrap", *DEBOOTSTRAP_ARGS, str(rootfs)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        tarball = Path(work) / "rootfs.tar"
        progress("packing the root file system")
        subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."], check=True)
        progress(f"docker import -> {tag}")
        client.api.import_image_from_file(str(tarball), repository=repository, tag=version)


def _build_default(client: docker.DockerClient, tag: str, base: str, progress: Progress) -> None:
    progress(f"docker build -> {tag}")
    with tempfile.TemporaryDirectory(prefix="devbox-image-") as context:
        shutil.copytree(RECIPE_DIR, context, dirs_exist_ok=True)
        cas = Path(context) / "extra-ca"
        cas.mkdir()
        (cas / "README").write_text("CA certificates copied from the build host\n")
        for cert in _host_cas():
            shutil.copy(cert, cas / cert.name)
        stream = client.api.build(
            path=context, tag=tag, rm=True, forcerm=True, buildargs={"BASE_IMAGE": base}, decode=True
        )
        for chunk in stream:
            if "error" in chunk:
                raise RuntimeError(f"docker build failed: {chunk['error'].strip()}")
            line = str(chunk.get("stream", "")).strip()
            if line.startswith("Step "):
                progress(line)
    if not _image_exists(client, tag):
        raise RuntimeError(f"docker build finished without producing {tag}")


def ensure_default_image(client: docker.DockerClient, progress: Progress | None = None) -> str:
    """Return the default image's tag, building the base and the image first if this engine lacks them."""
    say = progress or (lambda _msg: None)
    tag = default_image_tag()
    if _image_exists(client, tag):
        return tag
    base = base_image_tag()
    if not _image_exists(client, base):
        _build_base(client, base, say)
    _build_default(client, tag, base, say)
    say(f"ready: {tag}")
    return tag


def main() -> None:
    """`python -m app.drivers.docker_image`: build the image, print progress, then its tag as JSON."""
    client = docker.from_env()
    tag = ensure_default_image(client, lambda msg: print(f"[image] {msg}", flush=True))
    print(json.dumps({"image": tag}))


if __name__ == "__main__":
    main()
