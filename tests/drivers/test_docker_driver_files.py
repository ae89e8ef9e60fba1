"""The driver's large-file paths through the engine against the real engine: the one over the engine's socket
from the event loop (app/drivers/docker_archive.py) and docker-py's on a thread, which engines the first
cannot speak to (TLS, ssh) get. Host file access (test_container_root.py) is off here: it would take these
transfers past the engine. The API tests reach only the first engine way, so the second is driven here by
turning the first off."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import docker
import pytest

from app.domain.errors import BackendError
from app.drivers.docker_driver import DockerDriver
from app.drivers.docker_image import ensure_default_image

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def container() -> Iterator[str]:
    client = docker.from_env()
    created = client.containers.run(ensure_default_image(client), ["sleep", "infinity"], detach=True, init=True)
    try:
        yield str(created.id)
    finally:
        created.remove(force=True)
        client.close()


async def _round_trip(container_id: str, direct: bool, name: str, data: bytes) -> tuple[bytes, str]:
    driver = DockerDriver(threads=4, host_file_access=False)
    try:
        if not direct:
            driver._engine = None  # as for a TLS or ssh engine: docker-py on a thread
        sink = await driver.put_file(container_id, "/tmp", name, len(data), 0o640, 1000, 1000)
        middle = len(data) // 3
        await sink.write(data[:middle])
        await sink.write(memoryview(data)[middle:])
        await sink.close()
        read = b"".join([chunk async for chunk in driver.read_file(container_id, f"/tmp/{name}", len(data))])
        stat = await driver.exec(container_id, ["stat", "-c", "%u:%g %a %s", f"/tmp/{name}"], user="root")
        return read, stat.stdout.decode().strip()
    finally:
        driver.close()


@pytest.mark.parametrize("direct", [True, False], ids=["engine-socket", "docker-py-thread"])
def test_a_file_goes_in_and_comes_out_whole_with_its_owner_and_mode(container: str, direct: bool) -> None:
    data = os.urandom(3 * 1024 * 1024 + 123)
    read, stat = asyncio.run(_round_trip(container, direct, f"file-{direct}", data))
    assert read == data
    assert stat == f"1000:1000 640 {len(data)}"


@pytest.mark.parametrize("direct", [True, False], ids=["engine-socket", "docker-py-thread"])
def test_a_file_that_changed_size_is_refused_on_the_way_out(container: str, direct: bool) -> None:
    async def main() -> None:
        data = b"x" * 2048
        driver = DockerDriver(threads=4, host_file_access=False)
        try:
            if not direct:
                driver._engine = None
            sink = await driver.put_file(container, "/tmp", f"short-{direct}", len(data), 0o644, 0, 0)
            await sink.write(data)
            await sink.close()
            with pytest.raises(BackendError, match="2048"):
                async for _ in driver.read_file(container, f"/tmp/short-{direct}", 4096):
                    pass
        finally:
            driver.close()

    asyncio.run(main())
