"""Service helpers that need no backend: long-poll waking, wait inputs, output trimming, API keys."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from app.domain.errors import InvalidRequest
from app.domain.statuses import DevboxStatus
from app.services.auth import ApiKeys, load_or_create_key, tenant_of
from app.services.execution_output import Tail, cut_lines
from app.services.status_watch import StatusWatch, check_statuses, hold_seconds


def test_wait_until_wakes_on_notify_long_before_the_timeout() -> None:
    async def scenario() -> tuple[int, bool, float]:
        watch = StatusWatch()
        state = {"value": 0}

        async def read() -> int:
            return state["value"]

        async def change_soon() -> None:
            await asyncio.sleep(0.05)
            state["value"] = 1
            watch.notify("k")

        started = time.monotonic()
        changer = asyncio.create_task(change_soon())
        value, reached = await watch.wait_until("k", read, lambda v: v == 1, timeout=5)
        await changer
        return value, reached, time.monotonic() - started

    value, reached, elapsed = asyncio.run(scenario())
    assert (value, reached) == (1, True)
    assert elapsed < 0.9  # woken by the notification, not by the once-a-second re-read


def test_wait_until_gives_up_after_the_timeout() -> None:
    async def scenario() -> tuple[bool, float]:
        async def read() -> int:
            return 0

        started = time.monotonic()
        _, reached = await StatusWatch().wait_until("k", read, lambda v: v == 1, timeout=0.3)
        return reached, time.monotonic() - started

    reached, elapsed = asyncio.run(scenario())
    assert not reached and 0.25 <= elapsed < 1.5


def test_status_and_timeout_inputs() -> None:
    check_statuses(["running", "failure"], DevboxStatus, "devbox")
    with pytest.raises(InvalidRequest, match="at least one"):
        check_statuses([], DevboxStatus, "devbox")
    with pytest.raises(InvalidRequest, match="'runing'"):
        check_statuses(["runing"], DevboxStatus, "devbox")
    assert hold_seconds(None, 10, 30) == 10
    assert hold_seconds(27.53, 10, 30) == 27.53
    assert hold_seconds(999, 10, 30) == 30
    assert hold_seconds(-1, 10, 30) == 0


def test_last_lines() -> None:
    assert cut_lines(b"a\nb\nc\n", 2) == Tail("b\nc\n", True)
    assert cut_lines(b"a\nb\n", 5) == Tail("a\nb\n", False)
    assert cut_lines(b"a\nb", 1) == Tail("b", True)
    assert cut_lines(b"", 5) == Tail("", False)
    assert cut_lines(b"a\n", 0) == Tail("", True)


def test_api_keys_map_to_tenants(tmp_path: Path) -> None:
    keys = ApiKeys(["k1", "k2"])
    assert asyncio.run(keys.tenant_for("k1")) == tenant_of("k1") != tenant_of("k2")
    assert asyncio.run(keys.tenant_for("k3")) is None
    key, created = load_or_create_key(tmp_path)
    assert created and key.startswith("dbx_key_")
    assert load_or_create_key(tmp_path) == (key, False)
    assert (tmp_path / "api_key").stat().st_mode & 0o077 == 0
