"""Bearer API keys. Each key is a tenant; only key digests are kept in memory and compared."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

KEY_FILE_NAME = "api_key"


def tenant_of(key: str) -> str:
    """The owner id stored on a tenant's rows: a digest, so the key itself is never stored."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class ApiKeys:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one API key is required")
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys]

    def tenant_for(self, presented: str) -> str | None:
        digest = hashlib.sha256(presented.encode()).digest()
        matched = False
        for known in self._digests:  # compare against all keys: timing says nothing about which matched
            matched |= hmac.compare_digest(digest, known)
        return tenant_of(presented) if matched else None


def load_or_create_key(data_dir: Path) -> tuple[str, bool]:
    """The generated key kept in the data dir (mode 0600); True when it was created just now."""
    path = data_dir / KEY_FILE_NAME
    if path.exists():
        return path.read_text().strip(), False
    data_dir.mkdir(parents=True, exist_ok=True)
    key = "dbx_key_" + secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return key, True
