"""Execution rows: a command, its status and its output."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.domain.devbox import Execution, LogEntry
from app.domain.statuses import ExecutionStatus
from app.store.database import Database
from app.store.tables import devbox_logs, executions

_FIELDS = [c.name for c in executions.columns]
# Built once: the hot path (two writes per command) passes only parameters, no statement construction.
_INSERT = insert(executions)
_COMPLETE = update(executions).where(
    executions.c.id == bindparam("execution_id"), executions.c.status != ExecutionStatus.COMPLETED.value
)
_INSERT_LOG = insert(devbox_logs)


class ExecutionStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, execution: Execution) -> bool:
        """False when an execution with the same command_id already exists on the devbox."""
        row = {f: getattr(execution, f) for f in _FIELDS}
        try:
            await self._db.write(lambda conn: conn.execute(_INSERT, row))
        except IntegrityError:
            if execution.command_id is None:
                raise
            return False
        return True

    async def get(self, devbox_id: str, execution_id: str, owner: str) -> Execution | None:
        return await self._one(executions.c.id == execution_id, devbox_id, owner)

    async def by_command_id(self, devbox_id: str, command_id: str, owner: str) -> Execution | None:
        return await self._one(executions.c.command_id == command_id, devbox_id, owner)

    async def _one(self, condition: ColumnElement[bool], devbox_id: str, owner: str) -> Execution | None:
        query = select(executions).where(condition, executions.c.devbox_id == devbox_id, executions.c.owner == owner)
        row = await self._db.read(lambda conn: conn.execute(query).first())
        if row is None:
            return None
        values = dict(row._mapping)
        values["status"] = ExecutionStatus(values["status"])
        return Execution(**values)

    async def update(self, execution_id: str, **fields: Any) -> None:
        query = update(executions).where(executions.c.id == execution_id).values(**fields)
        await self._db.write(lambda conn: conn.execute(query))

    async def complete(
        self, execution_id: str, exit_status: int, note: str | None, end_time_ms: int, log: LogEntry
    ) -> bool:
        """Record the end of an execution, and its log entry in the same transaction (one write per
        command), unless something else (a devbox stop) ended it first."""
        end = {
            "execution_id": execution_id,
            "status": ExecutionStatus.COMPLETED.value,
            "exit_status": exit_status,
            "stderr": note,
            "end_time_ms": end_time_ms,
        }

        def work(conn: Connection) -> bool:
            if not conn.execute(_COMPLETE, end).rowcount:
                return False
            conn.execute(_INSERT_LOG, asdict(log))
            return True

        return await self._db.write(work)

    async def complete_unfinished(self, devbox_id: str | None, exit_status: int, stderr: str, now_ms: int) -> int:
        """End executions that can no longer finish (devbox gone, server restarted); returns how many."""
        query = update(executions).where(executions.c.status != ExecutionStatus.COMPLETED.value)
        if devbox_id is not None:
            query = query.where(executions.c.devbox_id == devbox_id)
        query = query.values(
            status=ExecutionStatus.COMPLETED.value, exit_status=exit_status, stderr=stderr, end_time_ms=now_ms
        )
        return await self._db.write(lambda conn: int(conn.execute(query).rowcount or 0))
