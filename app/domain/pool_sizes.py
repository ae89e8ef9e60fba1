"""The warm pool's setting: how many ready containers of which resource size."""

from __future__ import annotations

from app.domain.resources import SIZES


def parse_pool_sizes(text: str) -> dict[str, int]:
    """`SMALL=2,MEDIUM=1` -> {"SMALL": 2, "MEDIUM": 1}; empty text: no pool."""
    sizes: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, count = item.partition("=")
        name = name.strip().upper()
        if not sep or name not in SIZES or not count.strip().isdigit():
            raise ValueError(f"warm pool entry {item!r} must be SIZE=COUNT with SIZE one of {', '.join(SIZES)}")
        sizes[name] = int(count)
    return sizes
