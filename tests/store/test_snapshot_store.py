"""The disk snapshot store against real databases (SQLite and PostgreSQL) through the real migrations."""

from __future__ import annotations

import asyncio

from app.domain.ids import new_id
from app.domain.snapshot import DiskSnapshot
from app.domain.statuses import SnapshotStatus
from app.store.database import Database
from app.store.snapshots import SnapshotStore
from tests.store.conftest import run

St = SnapshotStatus


def make_snapshot(
    owner: str = "tenant-a", devbox_id: str = "dbx_source", status: SnapshotStatus = St.COMPLETE, **fields: object
) -> DiskSnapshot:
    snapshot_id = new_id("snp")
    snapshot = DiskSnapshot(
        id=snapshot_id,
        owner=owner,
        source_devbox_id=devbox_id,
        status=status,
        create_time_ms=1000,
        name="snap",
        metadata={"team": "x"},
        commit_message="first",
        image=f"devboxd-snapshot:{snapshot_id}",
    )
    for key, value in fields.items():
        setattr(snapshot, key, value)
    return snapshot


def test_round_trip_keeps_every_field(db: Database) -> None:
    store = SnapshotStore(db)
    full = make_snapshot(
        name="ünïcode ✓",
        metadata={"team": "core", "emoji": "🚀", "empty": ""},
        commit_message="m" * 1000,
        source_blueprint_id="bpt_1",
        size_bytes=5 * 1024**4,  # beyond 32 bits
        error_message=None,
        public=True,
    )
    bare = make_snapshot(status=St.IN_PROGRESS, name=None, metadata={}, commit_message=None, image=None)
    run(store.insert(full))
    run(store.insert(bare))
    assert run(store.get(full.id)) == full
    assert run(store.get(bare.id)) == bare
    loaded = run(store.get(full.id))
    assert loaded is not None and isinstance(loaded.status, SnapshotStatus) and loaded.public is True
    assert run(store.get("snp_unknown")) is None


def test_visible_is_per_owner_or_public_newest_first_without_deleted(db: Database) -> None:
    store = SnapshotStore(db)
    mine = [make_snapshot(status=s) for s in (St.COMPLETE, St.IN_PROGRESS, St.ERROR, St.COMPLETE)]
    gone = make_snapshot(status=St.DELETED)
    theirs = make_snapshot(owner="tenant-b")
    theirs_public = make_snapshot(owner="tenant-b", public=True)
    mine_public = make_snapshot(public=True)
    deleted_public = make_snapshot(owner="tenant-b", status=St.DELETED, public=True)
    for snapshot in [*mine, gone, theirs, theirs_public, mine_public, deleted_public]:
        run(store.insert(snapshot))

    own = run(store.visible("tenant-a", public=False))
    assert [s.id for s in own] == [mine_public.id, *(s.id for s in reversed(mine))]
    assert [s.id for s in run(store.visible("tenant-b", public=False))] == [theirs_public.id, theirs.id]
    # Public: every owner's public snapshots, the same for whoever asks; deleted ones never.
    public_ids = [mine_public.id, theirs_public.id]
    assert [s.id for s in run(store.visible("tenant-a", public=True))] == public_ids
    assert [s.id for s in run(store.visible("tenant-c", public=True))] == public_ids
    assert run(store.visible("tenant-c", public=False)) == []


def test_update_fields_with_and_without_only_if(db: Database) -> None:
    store = SnapshotStore(db)
    snapshot = make_snapshot(status=St.IN_PROGRESS)
    run(store.insert(snapshot))

    assert run(store.update_fields(snapshot.id, name="renamed", metadata={"k": "v"}, commit_message=None))
    loaded = run(store.get(snapshot.id))
    assert loaded is not None
    assert (loaded.name, loaded.metadata, loaded.commit_message) == ("renamed", {"k": "v"}, None)
    assert loaded.status == St.IN_PROGRESS

    # only_if that does not hold changes nothing.
    assert not run(store.update_fields(snapshot.id, only_if=St.COMPLETE, status=St.DELETED.value))
    assert run(store.update_fields(snapshot.id, only_if=St.IN_PROGRESS, status=St.COMPLETE.value, size_bytes=42))
    loaded = run(store.get(snapshot.id))
    assert loaded is not None and (loaded.status, loaded.size_bytes) == (St.COMPLETE, 42)
    assert not run(store.update_fields(snapshot.id, only_if=St.IN_PROGRESS, status=St.ERROR.value))
    loaded = run(store.get(snapshot.id))
    assert loaded is not None and loaded.status == St.COMPLETE and loaded.error_message is None

    assert not run(store.update_fields("snp_unknown", name="x"))
    assert not run(store.update_fields("snp_unknown", only_if=St.IN_PROGRESS, name="x"))


def test_only_if_is_compare_and_set_under_a_race(db: Database) -> None:
    store = SnapshotStore(db)
    snapshot = make_snapshot(status=St.IN_PROGRESS)
    run(store.insert(snapshot))

    async def race() -> list[bool]:
        return list(
            await asyncio.gather(
                store.update_fields(snapshot.id, only_if=St.IN_PROGRESS, status=St.COMPLETE.value, size_bytes=7),
                store.update_fields(snapshot.id, only_if=St.IN_PROGRESS, status=St.ERROR.value, error_message="no"),
            )
        )

    results = run(race())
    assert sorted(results) == [False, True]
    final = run(store.get(snapshot.id))
    assert final is not None
    if results[0]:
        assert (final.status, final.size_bytes, final.error_message) == (St.COMPLETE, 7, None)
    else:
        assert (final.status, final.size_bytes, final.error_message) == (St.ERROR, None, "no")


def test_in_progress_for_and_fail_in_progress_of_one_devbox(db: Database) -> None:
    store = SnapshotStore(db)
    busy = [make_snapshot(devbox_id="dbx_a", status=St.IN_PROGRESS) for _ in range(2)]
    done = make_snapshot(devbox_id="dbx_a", status=St.COMPLETE)
    other = make_snapshot(devbox_id="dbx_b", status=St.IN_PROGRESS, owner="tenant-b")
    for snapshot in [*busy, done, other]:
        run(store.insert(snapshot))

    assert {s.id for s in run(store.in_progress_for("dbx_a"))} == {s.id for s in busy}
    assert [s.id for s in run(store.in_progress_for("dbx_b"))] == [other.id]
    assert run(store.in_progress_for("dbx_none")) == []

    assert run(store.fail_in_progress("dbx_a", "forced shutdown")) == 2
    assert run(store.in_progress_for("dbx_a")) == []
    for snapshot in busy:
        loaded = run(store.get(snapshot.id))
        assert loaded is not None and (loaded.status, loaded.error_message) == (St.ERROR, "forced shutdown")
    untouched = run(store.get(done.id))
    assert untouched is not None and untouched.status == St.COMPLETE and untouched.error_message is None
    assert [s.id for s in run(store.in_progress_for("dbx_b"))] == [other.id]
    assert run(store.fail_in_progress("dbx_a", "again")) == 0


def test_fail_in_progress_of_every_devbox(db: Database) -> None:
    store = SnapshotStore(db)
    busy = [make_snapshot(devbox_id=f"dbx_{i}", owner=f"tenant-{i}", status=St.IN_PROGRESS) for i in range(3)]
    ended = [make_snapshot(status=s) for s in (St.COMPLETE, St.ERROR, St.DELETED)]
    for snapshot in [*busy, *ended]:
        run(store.insert(snapshot))

    assert run(store.fail_in_progress(None, "the server restarted")) == 3
    for snapshot in busy:
        loaded = run(store.get(snapshot.id))
        assert loaded is not None and (loaded.status, loaded.error_message) == (St.ERROR, "the server restarted")
    assert [run(store.get(s.id)) for s in ended] == ended
    assert run(store.fail_in_progress(None, "again")) == 0


def test_deleted_with_images(db: Database) -> None:
    store = SnapshotStore(db)
    deleted = make_snapshot(status=St.DELETED)
    deleted_swept = make_snapshot(status=St.DELETED, image=None)
    complete = make_snapshot()
    error = make_snapshot(status=St.ERROR)
    for snapshot in (deleted, deleted_swept, complete, error):
        run(store.insert(snapshot))
    assert [s.id for s in run(store.deleted_with_images())] == [deleted.id]

    run(store.update_fields(complete.id, status=St.DELETED.value))
    assert {s.id for s in run(store.deleted_with_images())} == {deleted.id, complete.id}
    run(store.update_fields(deleted.id, image=None))
    assert [s.id for s in run(store.deleted_with_images())] == [complete.id]


def test_set_public_and_back(db: Database) -> None:
    store = SnapshotStore(db)
    snapshot = make_snapshot()
    run(store.insert(snapshot))
    assert run(store.visible("tenant-b", public=True)) == []

    assert run(store.set_public(snapshot.id, True))
    loaded = run(store.get(snapshot.id))
    assert loaded is not None and loaded.public is True
    assert [s.id for s in run(store.visible("tenant-b", public=True))] == [snapshot.id]
    assert run(store.visible("tenant-b", public=False)) == []  # public does not change the owner
    assert run(store.set_public(snapshot.id, True))  # idempotent

    assert run(store.set_public(snapshot.id, False))
    loaded = run(store.get(snapshot.id))
    assert loaded is not None and loaded.public is False
    assert run(store.visible("tenant-b", public=True)) == []
    assert not run(store.set_public("snp_unknown", True))
