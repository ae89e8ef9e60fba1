"""Devbox rows and their status transitions. Status changes are compare-and-set, so two tasks racing on
one devbox (say a shutdown during provisioning) can never both win."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, and_, func, insert, or_, select, update

from app.domain.devbox import Devbox, Transition
from app.domain.statuses import TERMINAL, DevboxStatus
from app.store.database import Database
from app.store.tables import devbox_transitions, devboxes

_FIELDS = [c.name for c in devboxes.columns]


def _to_devbox(row: Row[Any], transitions: list[Transition]) -> Devbox:
    values = dict(row._mapping)
    values["status"] = DevboxStatus(values["status"])
    return Devbox(**values, transitions=transitions)


def _to_values(devbox: Devbox) -> dict[str, Any]:
    return {name: getattr(devbox, name) for name in _FIELDS}


class DevboxStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, devbox: Devbox) -> None:
        transitions = [
            {"devbox_id": devbox.id, "status": t.status.value, "time_ms": t.time_ms} for t in devbox.transitions
        ]

        def work(conn: Connection) -> None:
            conn.execute(insert(devboxes).values(**_to_values(devbox)))
            conn.execute(insert(devbox_transitions), transitions)

        await self._db.write(work)

    @staticmethod
    def _transitions(conn: Connection, ids: Sequence[str]) -> dict[str, list[Transition]]:
        result: dict[str, list[Transition]] = {i: [] for i in ids}
        if not ids:
            return result
        rows = conn.execute(
            select(devbox_transitions.c.devbox_id, devbox_transitions.c.status, devbox_transitions.c.time_ms)
            .where(devbox_transitions.c.devbox_id.in_(ids))
            .order_by(devbox_transitions.c.seq)
        )
        for devbox_id, status, time_ms in rows:
            result[devbox_id].append(Transition(DevboxStatus(status), time_ms))
        return result

    @classmethod
    def _load(cls, conn: Connection, rows: Sequence[Row[Any]]) -> list[Devbox]:
        transitions = cls._transitions(conn, [r.id for r in rows])
        return [_to_devbox(r, transitions[r.id]) for r in rows]

    async def get(self, devbox_id: str, owner: str | None = None, with_transitions: bool = True) -> Devbox | None:
        """`with_transitions=False` saves a query on hot paths that only need the devbox's current state."""
        query = select(devboxes).where(devboxes.c.id == devbox_id)
        if owner is not None:
            query = query.where(devboxes.c.owner == owner)

        def work(conn: Connection) -> Devbox | None:
            row = conn.execute(query).first()
            if row is None:
                return None
            return self._load(conn, [row])[0] if with_transitions else _to_devbox(row, [])

        return await self._db.read(work)

    async def list_page(
        self, owner: str, status: DevboxStatus | None, limit: int, starting_after: str | None
    ) -> tuple[list[Devbox], bool]:
        """Newest first by create time, then id. Not by id alone: a warm-pool devbox's id dates from when
        its container was made, before the create that claimed it."""
        query = select(devboxes).where(devboxes.c.owner == owner)
        if status is not None:
            query = query.where(devboxes.c.status == status.value)
        if starting_after:
            after = (
                select(devboxes.c.create_time_ms)
                .where(devboxes.c.id == starting_after, devboxes.c.owner == owner)
                .scalar_subquery()
            )
            # An unknown cursor (no create time to compare) pages by id, as before create-time order.
            query = query.where(
                or_(
                    devboxes.c.create_time_ms < after,
                    and_(devboxes.c.create_time_ms == after, devboxes.c.id < starting_after),
                    and_(after.is_(None), devboxes.c.id < starting_after),
                )
            )
        query = query.order_by(devboxes.c.create_time_ms.desc(), devboxes.c.id.desc()).limit(limit + 1)

        def work(conn: Connection) -> tuple[list[Devbox], bool]:
            rows = conn.execute(query).all()
            return self._load(conn, rows[:limit]), len(rows) > limit

        return await self._db.read(work)

    async def count(self, owner: str, status: DevboxStatus | None) -> int:
        query = select(func.count()).select_from(devboxes).where(devboxes.c.owner == owner)
        if status is not None:
            query = query.where(devboxes.c.status == status.value)
        return await self._db.read(lambda conn: int(conn.execute(query).scalar_one()))

    async def list_all(self, status: DevboxStatus | None, limit: int) -> list[Devbox]:
        """Every tenant's, newest first: for operators."""
        query = select(devboxes)
        if status is not None:
            query = query.where(devboxes.c.status == status.value)
        query = query.order_by(devboxes.c.create_time_ms.desc(), devboxes.c.id.desc()).limit(limit)
        return await self._db.read(lambda conn: self._load(conn, conn.execute(query).all()))

    async def count_by_status(self) -> dict[str, int]:
        """All tenants: for operators' metrics."""
        query = select(devboxes.c.status, func.count()).group_by(devboxes.c.status)
        rows = await self._db.read(lambda conn: conn.execute(query).all())
        return {str(status): int(count) for status, count in rows}

    async def list_not_terminal(self) -> list[Devbox]:
        query = select(devboxes).where(devboxes.c.status.not_in([s.value for s in TERMINAL]))
        return await self._db.read(lambda conn: self._load(conn, conn.execute(query).all()))

    async def transition(
        self, devbox_id: str, to: DevboxStatus, from_any: Iterable[DevboxStatus], time_ms: int, **fields: Any
    ) -> Devbox | None:
        """Move to `to` only if the current status is in `from_any`; None when another change won."""
        sources = [s.value for s in from_any]
        change = (
            update(devboxes)
            .where(and_(devboxes.c.id == devbox_id, devboxes.c.status.in_(sources)))
            .values(status=to.value, **fields)
        )

        def work(conn: Connection) -> Devbox | None:
            if conn.execute(change).rowcount != 1:
                return None
            conn.execute(insert(devbox_transitions).values(devbox_id=devbox_id, status=to.value, time_ms=time_ms))
            row = conn.execute(select(devboxes).where(devboxes.c.id == devbox_id)).one()
            return self._load(conn, [row])[0]

        return await self._db.write(work)

    async def by_tunnel_key(self, tunnel_key: str) -> Devbox | None:
        query = select(devboxes).where(devboxes.c.tunnel_key == tunnel_key)
        row = await self._db.read(lambda conn: conn.execute(query).first())
        return _to_devbox(row, []) if row else None

    async def update_fields(self, devbox_id: str, **fields: Any) -> None:
        query = update(devboxes).where(devboxes.c.id == devbox_id).values(**fields)
        await self._db.write(lambda conn: conn.execute(query))

    async def metadata_of(self, owner: str) -> list[dict[str, str]]:
        """Every metadata map of the owner's devboxes (key/value listing is done by the service)."""
        query = select(devboxes.c.metadata).where(devboxes.c.owner == owner)
        rows = await self._db.read(lambda conn: conn.execute(query).all())
        return [r[0] or {} for r in rows]
