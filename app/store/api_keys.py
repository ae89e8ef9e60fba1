"""API keys made by operators (`devboxd keys create`): digests, names, revocation."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, or_, select, update

from app.store.database import Database
from app.store.tables import api_keys


@dataclass(frozen=True)
class StoredKey:
    digest: str
    name: str
    create_time_ms: int
    revoked_time_ms: int | None


class ApiKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, digest: str, name: str, create_time_ms: int) -> None:
        query = insert(api_keys).values(digest=digest, name=name, create_time_ms=create_time_ms)
        await self._db.write(lambda conn: conn.execute(query))

    async def is_active(self, digest: str) -> bool:
        query = select(api_keys.c.digest).where(api_keys.c.digest == digest, api_keys.c.revoked_time_ms.is_(None))
        return await self._db.read(lambda conn: conn.execute(query).first() is not None)

    async def list_keys(self) -> list[StoredKey]:
        query = select(api_keys).order_by(api_keys.c.create_time_ms)
        rows = await self._db.read(lambda conn: conn.execute(query).all())
        return [StoredKey(**row._mapping) for row in rows]

    async def revoke(self, name_or_tenant: str, time_ms: int) -> int:
        """Revoke keys by name or by tenant id (the digest's first 32 characters); how many were."""
        query = (
            update(api_keys)
            .where(
                or_(api_keys.c.name == name_or_tenant, api_keys.c.digest.startswith(name_or_tenant[:32])),
                api_keys.c.revoked_time_ms.is_(None),
            )
            .values(revoked_time_ms=time_ms)
        )
        if len(name_or_tenant) < 8:  # a short prefix would revoke keys by accident
            query = query.where(api_keys.c.name == name_or_tenant)
        return await self._db.write(lambda conn: int(conn.execute(query).rowcount))
