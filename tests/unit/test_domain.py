"""Pure domain rules: sizes, usage, ids, the transition table."""

from __future__ import annotations

import pytest

from app.domain.errors import InvalidRequest
from app.domain.ids import new_id
from app.domain.resources import GIB, SIZES, Resources, fit_to_host, requested_resources
from app.domain.statuses import ALLOWED_TRANSITIONS, TERMINAL, DevboxStatus, sources_for
from app.domain.usage import compute_usage

S = DevboxStatus


def test_preset_sizes_follow_the_spec_table() -> None:
    assert requested_resources(None, None, None, None) == SIZES["SMALL"] == Resources(1, 2, 4)
    assert requested_resources("X_SMALL", None, None, None) == Resources(0.5, 1, 4)
    assert requested_resources("XX_LARGE", None, None, None) == Resources(8, 32, 16)


@pytest.mark.parametrize(("cpu", "mem", "disk"), [(0.5, 1, None), (1, 8, 2), (2, 4, 64), (16, 64, 16)])
def test_valid_custom_sizes(cpu: float, mem: int, disk: int | None) -> None:
    assert requested_resources("CUSTOM_SIZE", cpu, mem, disk).cpus == cpu


@pytest.mark.parametrize(
    ("cpu", "mem", "disk", "message"),
    [
        (3, 6, None, "custom_cpu_cores"),
        (18, 64, None, "custom_cpu_cores"),
        (2, 3, None, "custom_gb_memory"),
        (2, 66, None, "custom_gb_memory"),
        (2, 4, 3, "custom_disk_size"),
        (2, 4, 66, "custom_disk_size"),
        (1, 16, None, "ratio"),
        (4, 4, None, "ratio"),
        (None, 4, None, "needs custom_cpu_cores"),
    ],
)
def test_invalid_custom_sizes_name_the_rule(cpu: float | None, mem: int, disk: int | None, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        requested_resources("CUSTOM_SIZE", cpu, mem, disk)


def test_custom_fields_need_custom_size() -> None:
    with pytest.raises(InvalidRequest, match="CUSTOM_SIZE"):
        requested_resources("SMALL", 2, None, None)


def test_fit_to_host_caps_and_explains() -> None:
    placement = fit_to_host(Resources(8, 32, 16), host_cpus=2, host_memory_bytes=24 * GIB)
    assert placement.cpus == 2 and placement.memory_bytes == 24 * GIB
    assert placement.note and "8 vCPU" in placement.note and "32 GiB" in placement.note
    assert fit_to_host(Resources(1, 2, 4), 2, 24 * GIB).note is None


def test_usage_excludes_suspended_time_from_active() -> None:
    transitions = [
        (S.PROVISIONING, 0),
        (S.RUNNING, 1_000),
        (S.SUSPENDED, 11_000),
        (S.RESUMING, 41_000),
        (S.RUNNING, 42_000),
        (S.SHUTDOWN, 52_000),
    ]
    usage = compute_usage(transitions, now_ms=99_000, end_time_ms=52_000, cpus=2, memory_gb=4, disk_gb=8)
    assert usage.total_active_seconds == 22  # 1 + 10 provisioning/running, 1 + 10 resuming/running
    assert usage.total_elapsed_seconds == 52
    assert (usage.vcpu_seconds, usage.memory_gb_seconds, usage.disk_gb_seconds) == (44, 88, 416)


def test_usage_of_a_live_devbox_runs_to_now() -> None:
    usage = compute_usage([(S.RUNNING, 0)], now_ms=5_500, end_time_ms=None, cpus=0.5, memory_gb=1, disk_gb=4)
    assert (usage.total_active_seconds, usage.vcpu_seconds, usage.disk_gb_seconds) == (5, 2, 22)


def test_ids_are_prefixed_unique_and_time_ordered() -> None:
    ids = [new_id("dbx") for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(i.startswith("dbx_") and len(i) == 30 for i in ids)


def test_transition_table() -> None:
    assert all(not ALLOWED_TRANSITIONS[s] for s in TERMINAL)
    assert all(S.SHUTDOWN in ALLOWED_TRANSITIONS[s] for s in S if s not in TERMINAL)
    assert sources_for(S.SUSPENDING) == {S.RUNNING}
    assert sources_for(S.RESUMING) == {S.SUSPENDED}
    assert S.RUNNING not in ALLOWED_TRANSITIONS[S.SUSPENDED]
