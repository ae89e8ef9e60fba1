"""Each store test gets a freshly migrated database: a SQLite file, and (when the test command has
started one) a PostgreSQL database created for the test and dropped after it."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.store.database import Database, migrate, sync_url

T = TypeVar("T")
POSTGRES_URL = os.environ.get("DEVBOX_TEST_POSTGRES_URL")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite3'}"
        return
    if not POSTGRES_URL:
        if os.environ.get("CI"):
            pytest.fail("DEVBOX_TEST_POSTGRES_URL is not set: the test command must start PostgreSQL")
        pytest.skip("no PostgreSQL (run the suite through scripts/test.sh)")
    name = f"devbox_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(sync_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    migrate(database_url)
    db = Database(database_url)
    yield db
    run(db.close())
