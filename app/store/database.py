"""The database the stores share (a sync engine behind worker threads), URL dialect mapping, and running
Alembic migrations."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, event
from sqlalchemy.engine import Engine, make_url

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def sync_url(url: str) -> str:
    """The URL with the driver this server uses: pysqlite for SQLite, psycopg 3 for PostgreSQL."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        driver = "pysqlite"
    elif backend == "postgresql":
        driver = "psycopg"
    else:
        raise ValueError(f"unsupported database backend {backend!r}: use sqlite or postgresql")
    return parsed.set(drivername=f"{backend}+{driver}").render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers proceed during writes; busy_timeout waits instead of failing on a lock.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


T = TypeVar("T")
POSTGRES_CONNECTIONS = 10


class Database:
    """Where the stores run their SQL: each store call is one plain (sync) SQLAlchemy transaction on a worker
    thread, so the event loop pays one thread hop per call. An async driver pays one per DB-API call
    (aiosqlite measured ~0.8 ms a query here against ~0.25 ms this way), and a command costs several.
    SQLite gets one thread (writes serialize in SQLite anyway, and none waits on a lock); PostgreSQL one
    per pooled connection."""

    def __init__(self, url: str) -> None:
        is_sqlite = make_url(url).get_backend_name() == "sqlite"
        if is_sqlite:
            db_path = make_url(url).database
            if db_path and db_path != ":memory:":
                Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(sync_url(url))
            event.listen(self.engine, "connect", _sqlite_pragmas)
            threads = 1
        else:
            self.engine = create_engine(
                sync_url(url), pool_size=POSTGRES_CONNECTIONS, max_overflow=0, pool_pre_ping=True
            )
            threads = POSTGRES_CONNECTIONS
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="database")

    async def read(self, work: Callable[[Connection], T]) -> T:
        """`work` on a connection, without a transaction of its own to commit."""

        def run() -> T:
            with self.engine.connect() as conn:
                return work(conn)

        return await asyncio.get_running_loop().run_in_executor(self._threads, run)

    async def write(self, work: Callable[[Connection], T]) -> T:
        """`work` in one transaction, committed when it returns and rolled back when it raises."""

        def run() -> T:
            with self.engine.begin() as conn:
                return work(conn)

        return await asyncio.get_running_loop().run_in_executor(self._threads, run)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._threads, self.engine.dispose)
        self._threads.shutdown(wait=False)


def _alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return config


def migrate(url: str) -> None:
    """Bring the schema to the newest migration (blocking; run before serving)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(_alembic_config(url), "head")


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config("sqlite://")).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def is_migrated_sync(url: str) -> bool:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            return current_revision(conn) == head_revision()
    finally:
        engine.dispose()
