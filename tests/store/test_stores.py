"""The stores against real databases (SQLite and PostgreSQL) through the real migrations."""

from __future__ import annotations

import asyncio

from app.domain.devbox import Devbox, Execution, LogEntry, Transition
from app.domain.ids import new_id
from app.domain.statuses import DevboxStatus, ExecutionStatus
from app.store.database import Database, is_migrated_sync
from app.store.devboxes import DevboxStore
from app.store.executions import ExecutionStore
from app.store.logs import LogStore
from tests.store.conftest import run

S = DevboxStatus


def make_devbox(owner: str = "tenant-a", status: DevboxStatus = S.PROVISIONING, **fields: object) -> Devbox:
    devbox = Devbox(
        id=new_id("dbx"),
        owner=owner,
        status=status,
        create_time_ms=1000,
        image="img:1",
        launch_parameters={"launch_commands": ["echo hi"], "resource_size_request": "SMALL"},
        environment={"A": "1"},
        metadata={"team": "x"},
        memory_bytes=2 * 1024**3,
        last_activity_ms=1000,
        transitions=[Transition(status, 1000)],
    )
    for key, value in fields.items():
        setattr(devbox, key, value)
    return devbox


def test_migrations_reach_head(database_url: str, db: Database) -> None:
    assert is_migrated_sync(database_url)


def test_devbox_round_trip(db: Database) -> None:
    store = DevboxStore(db)
    devbox = make_devbox(name="n1")
    run(store.insert(devbox))
    loaded = run(store.get(devbox.id))
    assert loaded == devbox
    assert run(store.get(devbox.id, owner="someone-else")) is None


def test_transition_is_compare_and_set(db: Database) -> None:
    store = DevboxStore(db)
    devbox = make_devbox()
    run(store.insert(devbox))

    async def race() -> list[Devbox | None]:
        return list(
            await asyncio.gather(
                store.transition(devbox.id, S.INITIALIZING, [S.PROVISIONING], 2000),
                store.transition(devbox.id, S.SHUTDOWN, [S.PROVISIONING], 2001, shutdown_reason="api_shutdown"),
            )
        )

    results = run(race())
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    final = run(store.get(devbox.id))
    assert final is not None
    assert [t.status for t in final.transitions] == [S.PROVISIONING, winners[0].status]
    assert run(store.transition(devbox.id, S.RUNNING, [S.PROVISIONING], 3000)) is None


def test_list_newest_first_with_pages_filters_and_owners(db: Database) -> None:
    store = DevboxStore(db)
    mine = [make_devbox(status=S.RUNNING if i % 2 else S.SHUTDOWN) for i in range(5)]
    for devbox in mine:
        run(store.insert(devbox))
    run(store.insert(make_devbox(owner="tenant-b")))
    newest_first = [d.id for d in reversed(mine)]

    page, has_more = run(store.list_page("tenant-a", None, 2, None))
    assert [d.id for d in page] == newest_first[:2] and has_more
    page, has_more = run(store.list_page("tenant-a", None, 2, page[-1].id))
    assert [d.id for d in page] == newest_first[2:4] and has_more
    page, has_more = run(store.list_page("tenant-a", None, 2, page[-1].id))
    assert [d.id for d in page] == newest_first[4:] and not has_more

    running, _ = run(store.list_page("tenant-a", S.RUNNING, 10, None))
    assert {d.id for d in running} == {d.id for d in mine if d.status == S.RUNNING}
    assert run(store.count("tenant-a", None)) == 5
    assert run(store.count("tenant-a", S.SHUTDOWN)) == 3
    assert run(store.count("tenant-b", None)) == 1
    assert {d.id for d in run(store.list_not_terminal())} >= {d.id for d in running}


def test_metadata_and_field_updates(db: Database) -> None:
    store = DevboxStore(db)
    devbox = make_devbox()
    run(store.insert(devbox))
    run(store.update_fields(devbox.id, name="renamed", metadata={"k": "v"}, container_id="abc"))
    loaded = run(store.get(devbox.id))
    assert loaded is not None and (loaded.name, loaded.metadata, loaded.container_id) == ("renamed", {"k": "v"}, "abc")
    assert run(store.metadata_of("tenant-a")) == [{"k": "v"}]


def test_executions_idempotency_and_completion(db: Database) -> None:
    devbox = make_devbox(status=S.RUNNING)
    run(DevboxStore(db).insert(devbox))
    store = ExecutionStore(db)

    def execution(command_id: str | None) -> Execution:
        return Execution(
            id=new_id("exe"),
            devbox_id=devbox.id,
            owner="tenant-a",
            command="true",
            status=ExecutionStatus.RUNNING,
            create_time_ms=5,
            command_id=command_id,
        )

    first = execution("0193c1a0-0000-7000-8000-000000000001")
    assert run(store.insert(first))
    assert not run(store.insert(execution("0193c1a0-0000-7000-8000-000000000001")))
    assert run(store.insert(execution(None))) and run(store.insert(execution(None)))
    found = run(store.by_command_id(devbox.id, "0193c1a0-0000-7000-8000-000000000001", "tenant-a"))
    assert found is not None and found.id == first.id
    assert run(store.get(devbox.id, first.id, "tenant-b")) is None

    assert run(store.complete_unfinished(devbox.id, 137, "gone", 9)) == 3
    done = run(store.get(devbox.id, first.id, "tenant-a"))
    assert done is not None and (done.status, done.exit_status, done.stderr) == (ExecutionStatus.COMPLETED, 137, "gone")


def test_logs_filter_by_execution_and_shell(db: Database) -> None:
    devbox = make_devbox()
    run(DevboxStore(db).insert(devbox))
    logs = LogStore(db)
    run(
        logs.append(
            LogEntry(devbox.id, 1, "setup_commands", "info", "one", cmd="echo one", exit_code=0),
            LogEntry(devbox.id, 2, "exec", "info", "two", cmd="true", cmd_id="exe_1", shell_name="s1"),
        )
    )
    assert [e.message for e in run(logs.list_entries(devbox.id))] == ["one", "two"]
    assert [e.message for e in run(logs.list_entries(devbox.id, execution_id="exe_1"))] == ["two"]
    assert [e.message for e in run(logs.list_entries(devbox.id, shell_name="s1"))] == ["two"]
