"""Where an execution's output lives: two files per execution under the data dir, appended as the output
arrives. Memory stays flat whatever a command prints, a restart loses nothing that was received, and
streams resume from any byte offset."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

STDOUT, STDERR = 1, 2
# Responses inline at most this much of each stream (the last lines that fit); the streams give everything.
INLINE_LIMIT_BYTES = 4 * 1024 * 1024
TAIL_BLOCK = 64 * 1024


@dataclass(frozen=True)
class Tail:
    text: str
    truncated: bool


def utf8_boundary(data: bytes) -> int:
    """Length of the longest prefix of `data` that does not end inside a UTF-8 character, so stream
    chunks decode cleanly; invalid bytes are left to the decoder."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        byte = data[n - back]
        if byte < 0x80:
            return n
        if byte >= 0xC0:  # the lead byte of the last character
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return n if back >= need else n - back
    return n


class OutputSpool:
    def __init__(self, root: Path) -> None:
        self._root = root

    def path(self, devbox_id: str, execution_id: str, fd: int) -> Path:
        return self._root / devbox_id / f"{execution_id}.{'out' if fd == STDOUT else 'err'}"

    def open_for_append(self, devbox_id: str, execution_id: str, fd: int) -> BinaryIO:
        folder = self._root / devbox_id
        folder.mkdir(parents=True, exist_ok=True)
        # Unbuffered: a reader that was woken up finds the bytes already in the file.
        return open(self.path(devbox_id, execution_id, fd), "ab", buffering=0)

    def size(self, devbox_id: str, execution_id: str, fd: int) -> int:
        try:
            return os.stat(self.path(devbox_id, execution_id, fd)).st_size
        except FileNotFoundError:
            return 0

    def read(self, devbox_id: str, execution_id: str, fd: int, offset: int, limit: int) -> bytes:
        try:
            with open(self.path(devbox_id, execution_id, fd), "rb") as f:
                f.seek(offset)
                return f.read(limit)
        except FileNotFoundError:
            return b""

    def tail(self, devbox_id: str, execution_id: str, fd: int, lines: int | None) -> Tail | None:
        """The last `lines` lines (all when None), within INLINE_LIMIT_BYTES; None when nothing was stored."""
        try:
            f = open(self.path(devbox_id, execution_id, fd), "rb")  # noqa: SIM115
        except FileNotFoundError:
            return None
        with f:
            size = f.seek(0, os.SEEK_END)
            data = b""
            start = size
            # lines + 1 newlines guarantee the last `lines` lines are whole, with or without a final newline.
            while start > 0 and len(data) < INLINE_LIMIT_BYTES:
                if lines is not None and data.count(b"\n") > lines:
                    break
                step = min(TAIL_BLOCK, start)
                start -= step
                f.seek(start)
                data = f.read(step) + data
        return cut_lines(data, lines, cut_before=start > 0)


def cut_lines(data: bytes, lines: int | None, cut_before: bool = False) -> Tail:
    """The last `lines` lines of `data` within INLINE_LIMIT_BYTES; `cut_before` says data is itself a tail."""
    truncated = cut_before
    if lines is not None:
        parts = data.split(b"\n")
        if parts and parts[-1] == b"":  # a trailing newline ends the last line; it does not start another
            parts.pop()
            trailing = b"\n"
        else:
            trailing = b""
        if len(parts) > lines:
            parts = parts[len(parts) - lines :] if lines > 0 else []
            truncated = True
        data = b"\n".join(parts) + (trailing if parts else b"")
    if len(data) > INLINE_LIMIT_BYTES:
        data = data[-INLINE_LIMIT_BYTES:]
        truncated = True
    return Tail(text=data.decode(errors="replace"), truncated=truncated)
