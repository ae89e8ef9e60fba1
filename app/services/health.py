"""Readiness: the database is migrated, the engine answers, and the default image is there."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import text

from app.drivers.base import SandboxDriver
from app.store.database import Database, current_revision, head_revision

# The image look-up goes through the driver's main pool: bounded, so /health answers even while the
# engine is going away between the ping and the look-up.
IMAGE_CHECK_SECONDS = 5.0


@dataclass
class HealthReport:
    database: str
    docker: str
    image: str

    @property
    def ok(self) -> bool:
        return self.database == "ok" and self.docker == "ok" and self.image == "ready"


class HealthService:
    def __init__(self, db: Database, driver: SandboxDriver, image: str) -> None:
        self._db = db
        self._driver = driver
        self._image = image
        self._head = head_revision()
        self.image_problem: str | None = None  # set while the image is building or after its build failed
        self._migrated = False  # once at head, a database stays there: later checks only ask it to answer

    async def check(self) -> HealthReport:
        try:
            if self._migrated:
                await self._db.read(lambda conn: conn.execute(text("SELECT 1")))
                revision = self._head
            else:
                revision = await self._db.read(current_revision)
            self._migrated = revision == self._head
            database = "ok" if revision == self._head else f"not migrated (at {revision}, head {self._head})"
        except Exception as exc:
            database = f"unavailable: {type(exc).__name__}"
        docker_ok = await self._driver.ping()  # bounded by the driver
        image = "unknown"
        if docker_ok:
            try:
                exists = await asyncio.wait_for(self._driver.image_exists(self._image), IMAGE_CHECK_SECONDS)
            except Exception:  # the engine went away after answering the ping
                docker_ok = False
            else:
                image = "ready" if exists else self.image_problem or f"missing: {self._image}"
        return HealthReport(database=database, docker="ok" if docker_ok else "unavailable", image=image)
