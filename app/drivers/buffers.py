"""Lists of buffers handed whole to scatter-gather calls (writev, sendmsg), which may take only part."""

from __future__ import annotations

from typing import Any


def views_of(buffers: list[Any]) -> list[memoryview]:
    """Views of the non-empty buffers: an empty one would make a call that took nothing look like progress."""
    return [memoryview(buffer) for buffer in buffers if len(buffer)]


def advance(views: list[memoryview], count: int) -> None:
    """Drop the first `count` bytes of `views`, which a call took."""
    while count:
        if count >= len(views[0]):
            count -= len(views.pop(0))
        else:
            views[0] = views[0][count:]
            count = 0
