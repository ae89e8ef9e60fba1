"""Size limits on what clients send: a shared server must not store or parse without bounds."""

from __future__ import annotations

from typing import Any

from app.domain.errors import InvalidRequest

METADATA_MAX_KEYS = 64
METADATA_KEY_MAX = 256
METADATA_VALUE_MAX = 4096


def check_metadata(metadata: dict[str, Any]) -> None:
    if len(metadata) > METADATA_MAX_KEYS:
        raise InvalidRequest(f"metadata has {len(metadata)} keys; at most {METADATA_MAX_KEYS} are allowed")
    for key, value in metadata.items():
        if not key or len(key) > METADATA_KEY_MAX:
            raise InvalidRequest(f"metadata keys must be 1..{METADATA_KEY_MAX} characters, got {key[:40]!r}...")
        if isinstance(value, str) and len(value) > METADATA_VALUE_MAX:
            raise InvalidRequest(f"metadata value of {key!r} is longer than {METADATA_VALUE_MAX} characters")
