"""Runs the app under Hypercorn: HTTP/1.1 and cleartext HTTP/2 (prior knowledge) on one port, which the
TypeScript Runloop client needs; uvicorn speaks HTTP/1.1 only."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal

import hypercorn.asyncio.tcp_server
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from app.config import Settings
from app.main import create_app
from app.observability.logs import configure_logging

# Hypercorn reads its sockets 64 KiB at a time, and every read then travels through h11, hypercorn and the
# ASGI app: 4x fewer trips for a streamed upload with 256 KiB reads (the asyncio transport's own read size).
SOCKET_READ_BYTES = 256 * 1024


# glibc's malloc maps blocks from 128 KiB up (a 256 KiB socket read, say) straight from the kernel and gives
# the heap's free top back as soon as it passes 2x that: under a streamed upload that was ~62k page faults
# per GiB, each a fresh zeroed page (and on a VM whose balloon reported it free, a trip to the host): ~1.65
# s of server CPU per GiB uploaded, ~1.4 s without them. These keep such blocks in the heap and its top mapped.
MALLOC_MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024
MALLOC_TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def keep_buffers_in_the_heap() -> None:
    """Set the thresholds above where the C library is glibc (mallopt); elsewhere (musl) do nothing."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD_BYTES)
        mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD_BYTES)


def hypercorn_config(settings: Settings) -> Config:
    config = Config()
    config.bind = [f"{settings.host}:{settings.port}"]
    config.accesslog = None  # app/api/request_log.py logs each request, with its id
    config.errorlog = logging.getLogger("hypercorn.error")  # a logger: through the root handler, not its own
    config.include_server_header = False  # tunnelled responses carry the service's own
    config.keep_alive_timeout = 75
    config.graceful_timeout = 5
    # Long-polls hold up to 30 s and execute up to 25 s: never cut a request short on our side.
    config.read_timeout = None
    return config


def serve(settings: Settings) -> None:
    hypercorn.asyncio.tcp_server.MAX_RECV = SOCKET_READ_BYTES  # a module constant: no Config field for it
    keep_buffers_in_the_heap()
    configure_logging(settings.log_format)
    app = create_app(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        async def stopping() -> None:
            await stop.wait()
            watch = getattr(app.state, "status_watch", None)
            if watch is not None:
                watch.close()

        await hypercorn_serve(app, hypercorn_config(settings), shutdown_trigger=stopping)  # type: ignore[arg-type]

    asyncio.run(main())
