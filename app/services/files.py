"""The API's file operations on a running devbox (see container_files.py for how bytes move)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.domain.devbox import Devbox
from app.domain.errors import BackendError, InvalidRequest
from app.services.container_files import MAX_TEXT_READ_BYTES, ContainerFiles, Download, resolve_path
from app.services.devboxes import DevboxService


class FileService:
    """The API's file operations: the devbox must be running, and activity is recorded."""

    def __init__(self, devboxes: DevboxService, files: ContainerFiles) -> None:
        self._devboxes = devboxes
        self._files = files

    async def write(
        self,
        owner: str,
        devbox_id: str,
        path: str,
        chunks: AsyncIterator[bytes | memoryview],
        size_hint: int | None = None,
    ) -> tuple[Devbox, int]:
        """`size_hint`: the size the file is expected to have, if known up front (see write_stream)."""
        devbox = await self._devboxes.require_running(owner, devbox_id, "write a file")
        resolve_path(devbox, path)  # refuse a bad path before any byte is read
        await self._devboxes.touch(devbox_id)
        return devbox, await self._files.write_stream(devbox, path, chunks, size_hint)

    async def write_text(self, owner: str, devbox_id: str, path: str, contents: str) -> Devbox:
        devbox = await self._devboxes.require_running(owner, devbox_id, "write a file")
        await self._devboxes.touch(devbox_id)
        await self._files.write_bytes(devbox, path, contents.encode())
        return devbox

    async def download(self, owner: str, devbox_id: str, path: str) -> Download:
        devbox = await self._devboxes.require_running(owner, devbox_id, "read a file")
        target = resolve_path(devbox, path)
        located = await self._files.locate(devbox, target)
        await self._devboxes.touch(devbox_id)
        await self._files.log(devbox.id, f"read {target} ({located.size} bytes)")
        return Download(path=target, size=located.size, chunks=self._files.read_stream(devbox, target, located))

    async def read_text(self, owner: str, devbox_id: str, path: str) -> str:
        download = await self.download(owner, devbox_id, path)
        if download.size > MAX_TEXT_READ_BYTES:  # the reader only starts when iterated: nothing to close
            raise InvalidRequest(
                f"{download.path} is {download.size} bytes; read_file_contents returns at most "
                f"{MAX_TEXT_READ_BYTES} bytes: use download_file"
            )
        data = bytearray()
        try:
            async for chunk in download.chunks:
                data += chunk
        except BackendError as exc:
            raise InvalidRequest(f"cannot read {download.path}: {exc}") from exc
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequest(
                f"{download.path} is not UTF-8 text (byte {exc.start}): use download_file for binary files"
            ) from None
