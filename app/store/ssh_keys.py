"""Public halves of the SSH keys create_ssh_key issued, by fingerprint: a login's key names its devbox."""

from __future__ import annotations

from sqlalchemy import insert, select

from app.store.database import Database
from app.store.tables import devbox_ssh_keys


class SshKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, devbox_id: str, fingerprint: str, public_key: str, create_time_ms: int) -> None:
        query = insert(devbox_ssh_keys).values(
            fingerprint=fingerprint, devbox_id=devbox_id, public_key=public_key, create_time_ms=create_time_ms
        )
        await self._db.write(lambda conn: conn.execute(query))

    async def devbox_for(self, fingerprint: str) -> str | None:
        query = select(devbox_ssh_keys.c.devbox_id).where(devbox_ssh_keys.c.fingerprint == fingerprint)
        return await self._db.read(lambda conn: conn.execute(query).scalar_one_or_none())
