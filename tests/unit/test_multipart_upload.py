"""upload_file's own multipart parser (app/api/multipart_upload.py): every way a body can be cut into network
reads gives the same file, the size hint matches what clients send, and malformed or truncated bodies are
refused with InvalidRequest (a 400), never a wrong file."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator

import pytest

from app.api.multipart_upload import stream_upload
from app.domain.errors import InvalidRequest

BOUNDARY = "b0undary-x7"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def field(name: str, value: bytes) -> bytes:
    return f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n"


def file_part(data: bytes) -> bytes:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n'
    return (head + "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"


CLOSING = f"--{BOUNDARY}--\r\n".encode()
# Data that keeps almost matching the delimiter, so a split anywhere tests the seam handling.
TRICKY = b"\r\n--b0undary-x\r\n-\r\n--b0undary-x8" + bytes(range(256)) + b"\r\n--b0undar" + b"\r"


async def pieces(body: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    previous = 0
    for cut in [*cuts, len(body)]:
        yield body[previous:cut]
        previous = cut


def upload(body: bytes, cuts: list[int], declare_length: bool = True) -> tuple[str, bytes, int | None]:
    async def run() -> tuple[str, bytes, int | None]:
        length = len(body) if declare_length else None
        result = await stream_upload(CONTENT_TYPE, length, pieces(body, cuts))
        data = bytearray()
        async for piece in result.chunks:
            data += piece
        return result.path, bytes(data), result.size_hint

    return asyncio.run(run())


def test_every_single_split_point_gives_the_same_file_and_exact_hint() -> None:
    body = field("path", b"dir/x.bin") + file_part(TRICKY) + CLOSING
    for cut in range(len(body) + 1):
        assert upload(body, [cut]) == ("dir/x.bin", TRICKY, len(TRICKY)), cut


def test_random_reads_of_a_large_file_round_trip() -> None:
    data = os.urandom(3 * 1024**2) + TRICKY * 50
    body = field("path", b"big.bin") + file_part(data) + CLOSING
    rng = random.Random(7)
    for _ in range(5):
        cuts = sorted(rng.sample(range(1, len(body)), 200))
        assert upload(body, cuts) == ("big.bin", data, len(data))


def test_file_first_is_spooled_and_its_exact_size_is_the_hint() -> None:
    body = file_part(TRICKY) + field("path", b"p.bin") + CLOSING
    for cut in range(0, len(body), 7):
        assert upload(body, [cut]) == ("p.bin", TRICKY, len(TRICKY))


def test_hint_is_only_a_hint_when_the_message_does_not_end_as_clients_end_it() -> None:
    # no CRLF after the closing delimiter: the file is 2 bytes longer than the hint says
    body = field("path", b"a") + file_part(TRICKY) + CLOSING.rstrip(b"\r\n")
    assert upload(body, [50]) == ("a", TRICKY, len(TRICKY) - 2)
    # a field after the file, and an epilogue: the hint overshoots, the file is still exact
    body = field("path", b"a") + file_part(TRICKY) + field("extra", b"x" * 100) + CLOSING + b"epilogue"
    path, data, hint = upload(body, [50])
    assert (path, data) == ("a", TRICKY)
    assert hint is not None and hint > len(TRICKY)


def test_no_content_length_means_no_hint() -> None:
    body = field("path", b"a") + file_part(b"abc") + CLOSING
    assert upload(body, [10], declare_length=False) == ("a", b"abc", None)


def test_preamble_and_transport_padding_are_allowed() -> None:
    body = b"preamble text\r\n" + field("path", b"a").replace(
        BOUNDARY.encode() + b"\r\n", BOUNDARY.encode() + b" \t\r\n", 1
    )
    body += file_part(b"data") + CLOSING
    assert upload(body, [3, 20])[:2] == ("a", b"data")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (field("path", b"a") + file_part(b"data"), "closing boundary"),  # truncated: no closing delimiter
        (field("path", b"a") + file_part(b"data")[:-10], "closing boundary"),  # cut inside the file
        (file_part(b"data") + CLOSING, "`path` field"),
        (field("path", b"a") + CLOSING, "`file` part"),
        (field("path", b"\xff\xfe") + file_part(b"data") + CLOSING, "not UTF-8"),
        (field("path", b"p" * 9000) + file_part(b"data") + CLOSING, "too long"),
        (b"no boundary anywhere", "no boundary"),
        (f"--{BOUNDARY}junk\r\n\r\n".encode() + CLOSING, "text after a boundary"),
    ],
)
def test_bad_bodies_are_invalid_requests(body: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        upload(body, [5])


def test_not_multipart_is_refused() -> None:
    async def run() -> None:
        await stream_upload("application/json", 2, pieces(b"{}", []))

    with pytest.raises(InvalidRequest, match="multipart/form-data"):
        asyncio.run(run())
