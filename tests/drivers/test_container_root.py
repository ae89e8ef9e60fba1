"""Large uploads written from this host through the container's root (app/drivers/container_root.py).

The checks of open_created_file are what keeps a write as root from landing anywhere the devbox user could
not write: each one is tried here against real files, once on this host's own root (our own pid, a temp
folder) and once through a real container. The writer itself is driven end to end: bytes in, the same
bytes seen inside the container, the user's owner and mode kept."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import pytest

from app.domain.errors import BackendError
from app.drivers.container_root import HostFileWriter, open_created_file, open_regular_file, read_host_file
from app.drivers.docker_driver import DockerDriver
from app.drivers.docker_image import ensure_default_image

pytestmark = pytest.mark.docker
ME = os.getpid()


def created(folder: Path, name: str = "temp") -> tuple[str, str, int]:
    path = folder / name
    path.touch()
    return str(folder), name, path.stat().st_ino


def opens(folder: str, name: str, inode: int, uid: int | None = None, pid: int = ME) -> bool:
    fd = open_created_file(pid, folder, name, inode, os.getuid() if uid is None else uid)
    if fd is None:
        return False
    os.close(fd)
    return True


def test_the_users_new_empty_file_opens(tmp_path: Path) -> None:
    assert opens(*created(tmp_path))


@pytest.mark.parametrize(
    ("spoil", "why"),
    [
        (lambda path: path.write_bytes(b"x"), "not empty"),
        (
            lambda path: os.link(path, path.with_name("second-link")),
            "a second link: another name may be a file it is not",
        ),
        (lambda path: path.chmod(0o4755), "set-uid"),
        (lambda path: path.chmod(0o2755), "set-gid"),
    ],
    ids=["not-empty", "two-links", "setuid", "setgid"],
)
def test_a_file_that_is_not_the_users_new_empty_file_is_refused(
    tmp_path: Path, spoil: Callable[[Path], object], why: str
) -> None:
    folder, name, inode = created(tmp_path)
    spoil(tmp_path / name)
    assert not opens(folder, name, inode), why


def test_another_inode_or_owner_is_refused(tmp_path: Path) -> None:
    folder, name, inode = created(tmp_path)
    assert not opens(folder, name, inode + 1)
    assert not opens(folder, name, inode, uid=os.getuid() + 1)


def test_a_fifo_in_the_files_place_is_refused_without_hanging(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "temp")
    assert not opens(str(tmp_path), "temp", (tmp_path / "temp").stat().st_ino)


def test_no_symlink_is_followed_on_the_way(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    _, name, inode = created(real)
    (tmp_path / "link").symlink_to(real)
    assert not opens(str(tmp_path / "link"), name, inode)
    (real / "file-link").symlink_to(real / name)
    assert not opens(str(real), "file-link", inode)


@pytest.mark.parametrize(
    "folder_of",
    [
        lambda tmp: f"{tmp}/sub/..",
        lambda tmp: f"{tmp}/./",
        lambda tmp: os.path.relpath(tmp, "/"),
    ],
    ids=["dot-dot", "dot", "relative"],
)
def test_folders_that_are_not_plain_absolute_names_are_refused(
    tmp_path: Path, folder_of: Callable[[Path], str]
) -> None:
    (tmp_path / "sub").mkdir()
    _, name, inode = created(tmp_path)
    assert not opens(folder_of(tmp_path), name, inode)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "nul\0byte"])
def test_names_that_are_not_one_plain_name_are_refused(tmp_path: Path, name: str) -> None:
    assert not opens(str(tmp_path), name, 1)


def test_a_process_that_does_not_exist_gives_none(tmp_path: Path) -> None:
    folder, name, inode = created(tmp_path)
    assert not opens(folder, name, inode, pid=2**22 + 1)  # above the kernel's largest pid


# ----- through a real container ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def container() -> Iterator[str]:
    client = docker.from_env()
    image = ensure_default_image(client)
    made = client.containers.run(image, ["sleep", "infinity"], detach=True, init=True, user="root")
    try:
        yield str(made.id)
    finally:
        made.remove(force=True)
        client.close()


def in_box(container: str, *argv: str) -> str:
    client = docker.from_env()
    try:
        code, out = client.containers.get(container).exec_run(list(argv), user="user")
    finally:
        client.close()
    assert code == 0, out
    return out.decode()


def user_file(container: str, folder: str, name: str) -> tuple[int, int]:
    """The user makes an empty file, as the upload's prepare step does: its inode and the user's uid."""
    inode, uid = in_box(
        container, "sh", "-c", f'mkdir -p {folder} && : > {folder}/{name} && stat -c "%i %u" {folder}/{name}'
    ).split()
    return int(inode), int(uid)


def test_the_driver_writes_the_users_file_inside_the_container(container: str) -> None:
    inode, uid = user_file(container, "/home/user/up", "new.bin")
    data = os.urandom(9 * 1024 * 1024 + 5)

    async def main() -> None:
        driver = DockerDriver(threads=4)
        try:
            sink = await driver.open_created_file(container, "/home/user/up", "new.bin", inode, uid)
            assert isinstance(sink, HostFileWriter)
            for start in range(0, len(data), 256 * 1024):
                await sink.write(memoryview(data)[start : start + 256 * 1024])
            await sink.close()
        finally:
            driver.close()

    asyncio.run(main())
    assert in_box(container, "stat", "-c", "%s %U %a", "/home/user/up/new.bin") == f"{len(data)} user 644\n"
    assert in_box(container, "sha256sum", "/home/user/up/new.bin").split()[0] == hashlib.sha256(data).hexdigest()


def test_the_driver_gives_none_for_a_file_the_container_does_not_have_or_when_turned_off(container: str) -> None:
    inode, uid = user_file(container, "/home/user/up", "off.bin")

    async def main() -> None:
        off = DockerDriver(threads=2, host_file_access=False)
        on = DockerDriver(threads=2)
        try:
            assert await off.open_created_file(container, "/home/user/up", "off.bin", inode, uid) is None
            assert await on.open_created_file(container, "/home/user/up", "missing.bin", inode, uid) is None
            # a symlinked folder inside the container: its target is the container's, but it is not followed
            in_box(container, "ln", "-sfn", "/home/user/up", "/home/user/up-link")
            assert await on.open_created_file(container, "/home/user/up-link", "off.bin", inode, uid) is None
            assert await on.open_created_file("no-such-container", "/home/user/up", "off.bin", inode, uid) is None
        finally:
            off.close()
            on.close()

    asyncio.run(main())


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB file system: writes past it fail with ENOSPC, as on a full disk."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def write_through_host(folder: Path, write: Callable[[HostFileWriter], Awaitable[None]]) -> tuple[Path, int]:
    """An empty file made in `folder`, opened as an upload opens it, and `write` run on its writer: the
    file's path and descriptor."""
    folder_name, name, inode = created(folder)
    fd = open_created_file(ME, folder_name, name, inode, os.getuid())
    assert fd is not None

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            await asyncio.wait_for(write(HostFileWriter(fd, pool)), 10)

    asyncio.run(main())
    return folder / name, fd


def test_a_full_disk_is_the_callers_error_and_the_file_is_closed(small_disk: Path) -> None:
    async def fill(writer: HostFileWriter) -> None:
        with pytest.raises(BackendError, match="writing the file failed: No space left"):
            for _ in range(3):
                await writer.write(b"x" * (4 * 1024 * 1024))
            await writer.close()
        await writer.abort()  # what the caller does next: nothing left to close

    _, fd = write_through_host(small_disk, fill)
    with pytest.raises(OSError):
        os.fstat(fd)  # closed


# ----- reads -------------------------------------------------------------------------------------------


def read_all(fd: int, size: int) -> bytes:
    async def main() -> bytes:
        with ThreadPoolExecutor(2) as pool:
            return b"".join([chunk async for chunk in read_host_file(fd, size, pool)])

    return asyncio.run(main())


def test_a_regular_file_of_the_size_seen_opens_and_reads_exactly_that_size(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "f").write_bytes(data)
    fd = open_regular_file(ME, str(tmp_path / "f"), len(data))
    assert fd is not None
    assert read_all(fd, len(data)) == data
    with pytest.raises(OSError):
        os.fstat(fd)  # closed once read


def test_reads_refuse_another_size_a_folder_a_fifo_and_symlinks(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"12345")
    (tmp_path / "d").mkdir()
    os.mkfifo(tmp_path / "p")
    (tmp_path / "l").symlink_to(tmp_path / "f")
    (tmp_path / "dl").symlink_to(tmp_path / "d")
    (tmp_path / "d" / "g").write_bytes(b"12345")
    assert open_regular_file(ME, str(tmp_path / "f"), 4) is None
    assert open_regular_file(ME, str(tmp_path / "d"), (tmp_path / "d").stat().st_size) is None
    assert open_regular_file(ME, str(tmp_path / "p"), 0) is None
    assert open_regular_file(ME, str(tmp_path / "l"), 5) is None
    assert open_regular_file(ME, str(tmp_path / "dl" / "g"), 5) is None
    assert open_regular_file(ME, f"{tmp_path}/d/../f", 5) is None


def test_a_file_that_shrinks_while_read_is_an_error_and_one_that_grows_gives_the_size_seen(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    fd = open_regular_file(ME, str(path), 100)
    assert fd is not None
    path.write_bytes(b"y" * 10)  # truncated and rewritten under the reader
    with pytest.raises(BackendError, match="shrank"):
        read_all(fd, 100)
    path.write_bytes(b"z" * 100)
    fd = open_regular_file(ME, str(path), 100)
    assert fd is not None
    with path.open("ab") as more:
        more.write(b"!" * 50)
    assert read_all(fd, 100) == b"z" * 100


def test_a_reader_dropped_midway_closes_its_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(os.urandom(5 * 1024 * 1024))
    fd = open_regular_file(ME, str(tmp_path / "f"), 5 * 1024 * 1024)
    assert fd is not None

    async def main() -> None:
        with ThreadPoolExecutor(2) as pool:
            reader = read_host_file(fd, 5 * 1024 * 1024, pool)
            assert len(await anext(reader)) == 1024 * 1024
            await reader.aclose()  # the client went away; a read may still be under way on its thread
        # the pool's shutdown waited for that read: its callback has run by the time the loop turns
        await asyncio.sleep(0)

    asyncio.run(main())
    with pytest.raises(OSError):
        os.fstat(fd)


def test_the_driver_reads_the_containers_file_from_this_host_or_through_the_engine(container: str) -> None:
    script = "mkdir -p /home/user/down/real && head -c 3145733 /dev/urandom > /home/user/down/real/f.bin"
    in_box(container, "sh", "-c", script)
    in_box(container, "ln", "-sfn", "real", "/home/user/down/link")
    expected = in_box(container, "sha256sum", "/home/user/down/real/f.bin").split()[0]

    async def main() -> None:
        driver = DockerDriver(threads=4)
        try:
            for path in ("/home/user/down/real/f.bin", "/home/user/down/link/f.bin"):  # the second: engine's way
                data = b"".join([chunk async for chunk in driver.read_file(container, path, 3145733)])
                assert hashlib.sha256(data).hexdigest() == expected, path
            with pytest.raises(BackendError):
                async for _ in driver.read_file(container, "/home/user/down/real/f.bin", 3145734):
                    pass
        finally:
            driver.close()

    asyncio.run(main())


def test_empty_pieces_are_written_as_nothing(tmp_path: Path) -> None:
    async def pieces(writer: HostFileWriter) -> None:
        for piece in (b"", b"ab", memoryview(b""), b"c"):
            await writer.write(piece)
        await writer.close()

    path, _ = write_through_host(tmp_path, pieces)
    assert path.read_bytes() == b"abc"
