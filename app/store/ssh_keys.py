"""Public halves of the SSH keys create_ssh_key issued, by fingerprint: a login's key names its devbox."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.tables import devbox_ssh_keys


class SshKeyStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, devbox_id: str, fingerprint: str, public_key: str, create_time_ms: int) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(devbox_ssh_keys).values(
                    fingerprint=fingerprint,
                    devbox_id=devbox_id,
                    public_key=public_key,
                    create_time_ms=create_time_ms,
                )
            )

    async def devbox_for(self, fingerprint: str) -> str | None:
        query = select(devbox_ssh_keys.c.devbox_id).where(devbox_ssh_keys.c.fingerprint == fingerprint)
        async with self._engine.connect() as conn:
            return (await conn.execute(query)).scalar_one_or_none()
