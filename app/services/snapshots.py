"""Disk snapshots: a devbox's filesystem committed to an image that new devboxes start from.

A snapshot's image carries only the filesystem: the devbox's environment and secrets live in a bind
mount (private_dirs.py), which a commit never includes. Snapshots outlive their devboxes; a
deleted snapshot's image goes once no container uses it any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from app.domain.devbox import container_name, now_ms
from app.domain.errors import BackendError, Conflict, InvalidRequest, InvalidState, NotFound
from app.domain.ids import new_id
from app.domain.limits import NAME_MAX, check_metadata
from app.domain.snapshot import DiskSnapshot
from app.domain.statuses import DevboxStatus, SnapshotStatus
from app.drivers.base import SandboxDriver
from app.services.background import BackgroundTasks
from app.services.devboxes import DevboxService
from app.services.status_watch import StatusWatch
from app.store.snapshots import SnapshotStore

log = logging.getLogger(__name__)

SNAPSHOT_REPOSITORY = "devboxd-snapshot"
COMMIT_MESSAGE_MAX = 1000
LIST_LIMIT_MAX = 5000
SNAPSHOTTABLE = (DevboxStatus.RUNNING, DevboxStatus.SUSPENDED)


@dataclass
class SnapshotFields:
    """What a client may set on a snapshot; validated by `check`."""

    name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    commit_message: str | None = None

    def check(self) -> None:
        if self.commit_message is not None and len(self.commit_message) > COMMIT_MESSAGE_MAX:
            raise InvalidRequest(
                f"commit_message is {len(self.commit_message)} characters; the limit is {COMMIT_MESSAGE_MAX}"
            )
        if self.name is not None and len(self.name) > NAME_MAX:
            raise InvalidRequest(f"name is longer than {NAME_MAX} characters")
        check_metadata(self.metadata)
        for key, value in self.metadata.items():
            if not isinstance(value, str):
                raise InvalidRequest(f"metadata values must be strings; {key!r} is {type(value).__name__}")


@dataclass
class SnapshotQuery:
    devbox_id: str | None = None
    source_blueprint_id: str | None = None
    metadata: dict[str, list[str]] = field(default_factory=dict)  # key -> accepted values
    limit: int = 20
    starting_after: str | None = None
    include_total_count: bool = True

    def matches(self, snapshot: DiskSnapshot) -> bool:
        if self.devbox_id and snapshot.source_devbox_id != self.devbox_id:
            return False
        if self.source_blueprint_id and snapshot.source_blueprint_id != self.source_blueprint_id:
            return False
        return all(snapshot.metadata.get(key) in values for key, values in self.metadata.items())


class SnapshotService:
    def __init__(
        self,
        devboxes: DevboxService,
        store: SnapshotStore,
        driver: SandboxDriver,
        watch: StatusWatch,
        tasks: BackgroundTasks,
    ) -> None:
        self._devboxes = devboxes
        self._store = store
        self._driver = driver
        self._watch = watch
        self._tasks = tasks
        devboxes.removed_listeners.append(self._sweep_soon)

    def _sweep_soon(self, _devbox_id: str) -> None:
        """A removed container may have been the last user of a deleted snapshot's image."""
        self._tasks.spawn(self.sweep(), name="snapshot-sweep")

    # ----- taking snapshots ---------------------------------------------------------------------

    async def snapshot(self, owner: str, devbox_id: str, fields: SnapshotFields, wait: bool) -> DiskSnapshot:
        fields.check()
        devbox = await self._devboxes.get(owner, devbox_id, with_transitions=False)
        if devbox.status not in SNAPSHOTTABLE:
            raise InvalidState(
                f"devbox {devbox_id} is {devbox.status.value}; only a running or suspended devbox can be snapshotted"
            )
        snapshot_id = new_id("snp")
        snapshot = DiskSnapshot(
            id=snapshot_id,
            owner=owner,
            source_devbox_id=devbox_id,
            status=SnapshotStatus.IN_PROGRESS,
            create_time_ms=now_ms(),
            name=fields.name,
            metadata=dict(fields.metadata),
            commit_message=fields.commit_message,
            source_blueprint_id=devbox.blueprint_id,
            image=f"{SNAPSHOT_REPOSITORY}:{snapshot_id.lower()}",
        )
        await self._store.insert(snapshot)
        task = self._tasks.spawn(self._commit(snapshot), name=f"snapshot-{snapshot_id}")
        if not wait:
            return snapshot
        await asyncio.shield(task)  # a client that gives up does not cancel the commit
        snapshot = await self._require(snapshot_id)
        if snapshot.status != SnapshotStatus.COMPLETE:
            raise BackendError(snapshot.error_message or f"snapshot {snapshot_id} ended as {snapshot.status.value}")
        return snapshot

    async def _commit(self, snapshot: DiskSnapshot) -> None:
        assert snapshot.image is not None
        try:
            await self._driver.commit(
                container_name(snapshot.source_devbox_id), snapshot.image, snapshot.commit_message
            )
            size = await self._driver.top_layer_size(snapshot.image)
            if not await self._store.update_fields(
                snapshot.id, only_if=SnapshotStatus.IN_PROGRESS, status=SnapshotStatus.COMPLETE.value, size_bytes=size
            ):
                await self._driver.remove_image(snapshot.image)  # ended as an error meanwhile (forced shutdown)
        except BackendError as exc:
            await self._store.update_fields(
                snapshot.id,
                only_if=SnapshotStatus.IN_PROGRESS,
                status=SnapshotStatus.ERROR.value,
                error_message=f"the snapshot failed: {exc}",
            )
        finally:
            self._watch.notify(f"snapshot:{snapshot.id}")

    # ----- reading ------------------------------------------------------------------------------

    async def _require(self, snapshot_id: str) -> DiskSnapshot:
        snapshot = await self._store.get(snapshot_id)
        if snapshot is None:
            raise NotFound(f"snapshot {snapshot_id} not found")
        return snapshot

    async def _owned(self, owner: str, snapshot_id: str) -> DiskSnapshot:
        snapshot = await self._store.get(snapshot_id)
        if snapshot is None or snapshot.owner != owner or snapshot.status == SnapshotStatus.DELETED:
            raise NotFound(f"snapshot {snapshot_id} not found")
        return snapshot

    async def status(self, owner: str, snapshot_id: str) -> DiskSnapshot:
        """The owner's snapshots, and public ones; deleted ones answer with status deleted."""
        snapshot = await self._store.get(snapshot_id)
        if snapshot is None or not (snapshot.owner == owner or snapshot.public):
            raise NotFound(f"snapshot {snapshot_id} not found")
        return snapshot

    async def list_snapshots(
        self, owner: str, query: SnapshotQuery, public: bool
    ) -> tuple[list[DiskSnapshot], bool, int | None]:
        if not 1 <= query.limit <= LIST_LIMIT_MAX:
            raise InvalidRequest(f"limit must be between 1 and {LIST_LIMIT_MAX}, got {query.limit}")
        matching = [s for s in await self._store.visible(owner, public) if query.matches(s)]
        total = len(matching) if query.include_total_count else None
        if query.starting_after:
            matching = [s for s in matching if s.id < query.starting_after]  # ids are time-ordered
        return matching[: query.limit], len(matching) > query.limit, total

    async def metadata_keys(self, owner: str, public: bool) -> list[str]:
        return sorted({key for s in await self._store.visible(owner, public) for key in s.metadata})

    async def metadata_values(self, owner: str, key: str, public: bool) -> list[str]:
        if not key.strip():
            raise InvalidRequest("metadata key must not be empty")
        return sorted({s.metadata[key] for s in await self._store.visible(owner, public) if key in s.metadata})

    # ----- changing -----------------------------------------------------------------------------

    async def update(self, owner: str, snapshot_id: str, fields: SnapshotFields) -> DiskSnapshot:
        """Replaces name, metadata and commit message entirely (what is not sent is cleared)."""
        fields.check()
        await self._owned(owner, snapshot_id)
        await self._store.update_fields(
            snapshot_id, name=fields.name, metadata=dict(fields.metadata), commit_message=fields.commit_message
        )
        return await self._require(snapshot_id)

    async def delete(self, owner: str, snapshot_id: str) -> None:
        snapshot = await self._owned(owner, snapshot_id)
        if snapshot.status == SnapshotStatus.IN_PROGRESS:
            raise Conflict(f"snapshot {snapshot_id} is still in progress; delete it once it completed")
        await self._store.update_fields(snapshot_id, status=SnapshotStatus.DELETED.value)
        await self.sweep()

    async def sweep(self) -> None:
        """Remove the images of deleted snapshots that no container uses any more."""
        for snapshot in await self._store.deleted_with_images():
            assert snapshot.image is not None
            with contextlib.suppress(BackendError):
                if await self._driver.remove_image(snapshot.image):
                    await self._store.update_fields(snapshot.id, image=None)

    async def set_public(self, snapshot_id: str, public: bool) -> DiskSnapshot:
        """The operator's switch (the `devboxd snapshot publish` command); not reachable over the API."""
        await self._require(snapshot_id)
        await self._store.set_public(snapshot_id, public)
        return await self._require(snapshot_id)

    async def recover(self) -> None:
        """At start: a commit that was running when the server died will never finish."""
        ended = await self._store.fail_in_progress(None, "the server restarted while the snapshot was being taken")
        if ended:
            log.warning("%d snapshot(s) in progress at restart ended as errors", ended)
        await self.sweep()
