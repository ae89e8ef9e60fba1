"""Bearer API keys. Each key is a tenant. Keys come from the settings (or the generated key file) and
from operators (`devboxd keys create`, kept in the store); only digests are kept and compared."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from pathlib import Path

from app.store.api_keys import ApiKeyStore

KEY_FILE_NAME = "api_key"
KEY_PREFIX = "dbx_key_"
# A stored key once seen valid is trusted this long before the store is asked again: revocation takes
# effect within it, and a busy client costs no query per request.
STORED_KEY_TRUST_SECONDS = 10.0


def tenant_of(key: str) -> str:
    """The owner id stored on a tenant's rows: a digest, so the key itself is never stored."""
    return key_digest(key)[:32]


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKeys:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one API key is required")
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys]
        self._store: ApiKeyStore | None = None
        self._trusted: dict[str, float] = {}  # digest -> when the store last said it is active

    def use_store(self, store: ApiKeyStore) -> None:
        self._store = store

    async def tenant_for(self, presented: str) -> str | None:
        digest = hashlib.sha256(presented.encode()).digest()
        matched = False
        for known in self._digests:  # compare against all keys: timing says nothing about which matched
            matched |= hmac.compare_digest(digest, known)
        if matched:
            return tenant_of(presented)
        if self._store is None:
            return None
        hexdigest = digest.hex()
        now = time.monotonic()
        if now - self._trusted.get(hexdigest, -STORED_KEY_TRUST_SECONDS) < STORED_KEY_TRUST_SECONDS:
            return hexdigest[:32]
        # Looked up by digest: the database compares digests, which say nothing about the key.
        if await self._store.is_active(hexdigest):
            self._trusted[hexdigest] = now
            return hexdigest[:32]
        self._trusted.pop(hexdigest, None)
        return None


def load_or_create_key(data_dir: Path) -> tuple[str, bool]:
    """The generated key kept in the data dir (mode 0600); True when it was created just now."""
    path = data_dir / KEY_FILE_NAME
    if path.exists():
        return path.read_text().strip(), False
    data_dir.mkdir(parents=True, exist_ok=True)
    key = new_key()
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return key, True
