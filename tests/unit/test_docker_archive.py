"""The pure parts of app/drivers/docker_archive.py: where a file's bytes start in the engine's tar stream
(whatever extended headers come first, however little of it has arrived), and an answer's body however it
is framed. The requests themselves are tested against the real engine in tests/api/test_file_transfer_paths.py."""

from __future__ import annotations

import asyncio
import io
import random
import socket
import tarfile

import docker
import pytest

from app.domain.errors import BackendError
from app.drivers.docker_archive import EngineAddress, _Answer, _body, tar_entry_start, tar_header, tar_trailer


def archive(name: str, data: bytes, tar_format: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    entry = tarfile.TarInfo(name)
    entry.size = len(data) if kind == tarfile.REGTYPE else 0
    entry.type = kind
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tar_format) as tar:
        tar.addfile(entry, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "tar_format"),
    [
        ("short.bin", tarfile.USTAR_FORMAT),
        ("x" * 150 + ".bin", tarfile.PAX_FORMAT),  # a PAX header carries the long name
        ("é" * 10 + ".bin", tarfile.PAX_FORMAT),  # and a non-ASCII one
        ("y" * 150 + ".bin", tarfile.GNU_FORMAT),  # a GNU long-name entry comes first
    ],
)
def test_entry_start_is_found_whatever_headers_come_first(name: str, tar_format: int) -> None:
    data = bytes(range(256)) * 5
    stream = archive(name, data, tar_format)
    entry = tar_entry_start(stream)
    assert entry is not None
    offset, size = entry
    assert (stream[offset : offset + size], size) == (data, len(data))
    for cut in range(offset):  # every head shorter than the headers: not known yet
        assert tar_entry_start(stream[:cut]) is None, cut


def test_the_size_in_a_pax_record_wins() -> None:
    head = tar_header("f.bin", 12345, 0o644, 1000, 1000)  # what put_file sends
    records = b"16 size=9999999\n"
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type, pax.size = tarfile.XHDTYPE, len(records)
    stream = pax.tobuf(tarfile.USTAR_FORMAT) + records.ljust(512, b"\0") + head
    assert tar_entry_start(stream) == (len(stream), 9999999)
    assert len(tar_trailer(12345)) == -12345 % 512 + 1024


def test_anything_but_a_regular_file_is_refused() -> None:
    with pytest.raises(BackendError, match="not a regular file"):
        tar_entry_start(archive("link", b"", tarfile.USTAR_FORMAT, tarfile.SYMTYPE))
    with pytest.raises(BackendError, match="unreadable archive"):
        tar_entry_start(b"not a tar header".ljust(512, b"!"))


def read_body(headers: dict[str, str], rest: bytes, wire: bytes, seed: int) -> bytes:
    """The body _body() reads when `wire` arrives on the socket in random pieces after the head."""

    async def run() -> bytes:
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        try:
            loop = asyncio.get_running_loop()
            cuts = sorted(random.Random(seed).sample(range(1, len(wire)), min(20, len(wire) - 1)))

            async def send() -> None:
                for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
                    await loop.sock_sendall(theirs, wire[start:end])
                    await asyncio.sleep(0)
                theirs.shutdown(socket.SHUT_WR)

            theirs.setblocking(False)
            sender = asyncio.create_task(send())
            body = b"".join([piece async for piece in _body(ours, _Answer(200, headers, rest))])
            await sender
            return body
        finally:
            ours.close()
            theirs.close()

    return asyncio.run(run())


def chunked(data: bytes, sizes: list[int]) -> bytes:
    out, position = b"", 0
    for size in sizes:
        out += f"{size:x};ext=1\r\n".encode() + data[position : position + size] + b"\r\n"
        position += size
    return out + b"0\r\nTrailer: x\r\n\r\n"


@pytest.mark.parametrize("seed", range(5))
def test_bodies_are_read_whatever_their_framing(seed: int) -> None:
    data = random.Random(seed).randbytes(50_000)
    # HTTP/1.0 as the engine answers it: the body ends with the connection
    assert read_body({}, data[:100], data[100:], seed) == data
    # Content-Length: bytes after it are not the body
    assert read_body({"content-length": str(len(data))}, b"", data + b"extra", seed) == data
    # chunked, with extensions and trailers, split anywhere
    wire = chunked(data, [1, 4096, 20_000, 25_903])
    assert read_body({"transfer-encoding": "chunked"}, wire[:7], wire[7:], seed) == data


def test_a_body_cut_short_raises() -> None:
    with pytest.raises(BackendError, match="ended early"):
        read_body({"content-length": "100"}, b"", b"x" * 50, 0)
    with pytest.raises(BackendError, match="ended early"):
        read_body({"transfer-encoding": "chunked"}, b"", b"10\r\nabc", 0)


def test_the_engine_address_is_docker_pys_own() -> None:
    unix = docker.APIClient(base_url="unix:///var/run/some.sock", version="1.41")
    assert EngineAddress.of(unix) == EngineAddress("1.41", unix_path="/var/run/some.sock")
    tcp = docker.APIClient(base_url="tcp://127.0.0.1:2375", version="1.41")
    assert EngineAddress.of(tcp) == EngineAddress("1.41", host="127.0.0.1", port=2375)
    tls = docker.APIClient(base_url="tcp://127.0.0.1:2376", version="1.41", tls=True)
    assert EngineAddress.of(tls) is None  # left to docker-py
    address = EngineAddress("1.41", unix_path="/x")
    assert address.request("GET", "box 1", "/home/user/a b&c.txt", []) == (
        b"GET /v1.41/containers/box%201/archive?path=%2Fhome%2Fuser%2Fa+b%26c.txt HTTP/1.0\r\nHost: docker\r\n\r\n"
    )
