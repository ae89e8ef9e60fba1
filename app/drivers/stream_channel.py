"""A channel over asyncio streams that many tasks write frames to: one write at a time, each drained.
The base of the engine's exec channel (app/drivers/docker_driver.py) and of the socket to a devbox's
listening agent (app/services/agent_channel.py)."""

from __future__ import annotations

import asyncio

from app.domain.errors import ContainerGone

READ_BYTES = 1024 * 1024


class StreamChannel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._write_lock = asyncio.Lock()

    async def read(self) -> tuple[int, bytes] | None:
        """Whatever arrived, as stream 1; None at the end."""
        try:
            data = await self._reader.read(READ_BYTES)
        except ConnectionError:
            return None
        return (1, data) if data else None

    async def write(self, data: bytes) -> None:
        async with self._write_lock:
            self._writer.write(data)
            try:
                await self._writer.drain()
            except ConnectionError as exc:
                raise ContainerGone(f"the channel into the devbox closed: {exc}") from exc

    def close(self) -> None:
        self._writer.close()
