"""Prefixed, time-ordered ids: sorting ids sorts by creation time, which pagination relies on."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


_last_ms = 0
_last_rand = 0


def new_id(prefix: str) -> str:
    """`<prefix>_` + 10 chars of milliseconds + 16 chars of randomness (monotonic within a millisecond)."""
    global _last_ms, _last_rand
    now = int(time.time() * 1000)
    if now <= _last_ms:
        now = _last_ms
        rand = _last_rand + 1
    else:
        rand = secrets.randbits(80)
    _last_ms, _last_rand = now, rand
    return f"{prefix}_{_encode(now, 10)}{_encode(rand % (1 << 80), 16)}"
