"""The whole benchmark suite in one command: every measurement beside raw Docker, one report.

Measures, each against the raw Docker baseline taken in the same run (interleaved where it can be):

* create -> running and create -> first command output, cold (a server without a warm pool) and warm (a
  server whose pool is full before every sample), against docker-py create + start and that plus one exec;
* the exec round trip on a running devbox (execute_sync of ``true`` and ``echo``, and a named shell), against
  ``docker exec`` on the devbox's own container;
* 10 and 50 concurrent creates (cold): devboxes/s and errors, against the same number of concurrent
  create + start of the same image and limits;
* suspend / resume against ``docker stop`` / ``docker start``;
* snapshot and create-from-snapshot against ``docker commit`` / run (bench.snapshots);
* file upload / download against ``docker cp``, with curl (the headline) and a Python client (httpx), and
  many devboxes under load (bench.files and bench.load, run as subprocesses; their own servers keep the
  default warm pool).

Writes ``report.md`` (machine, command, date, targets with PASS/MISS, every ratio) and ``report.png`` (the
chart) to ``--out-dir``. Every server it starts and every container it makes is removed on the way out,
also on errors, Ctrl-C and SIGTERM. A section that fails is retried once, then reported as not measured.

    .venv/bin/python -m bench.suite [--quick] [--only lifecycle,exec,...] [--out-dir bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx

from app.domain.devbox import container_name
from app.drivers.base import LABEL_INSTANCE
from bench import executions, snapshots
from bench.lifecycle import (
    API_KEY,
    HOME,
    REPO,
    USER,
    BenchServer,
    RawSpec,
    bench_server,
    create_raw_container,
    create_running,
    ok_json,
    raise_interrupt,
    raw_spec,
    remove_containers,
    settle_running,
)

POOL_SETTING = "DEVBOX_WARM_POOL"
NO_POOL = {POOL_SETTING: ""}
MARK = "devboxd-bench"
ECHO = f"echo {MARK}"
ECHO_OUTPUT = f"{MARK}\n"
STOP_TIMEOUT_SECONDS = 3  # the server's default DEVBOX_STOP_TIMEOUT_SECONDS, mirrored by docker stop
POOL_GAUGE = "devboxd_warm_pool_ready"
POOL_SETTLE_SECONDS = 0.5  # without the gauge: a pool container runs a moment before its agent answers
POOL_FILL_TIMEOUT_SECONDS = 180
WAIT_HOLD_SECONDS = 30
HTTP_TIMEOUT = httpx.Timeout(300, connect=30)
SUBPROCESS_TIMEOUT_SECONDS = 1200
RATIO_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)
QUICK_NOTE = " (--quick: small samples, a smoke test, not for publishing)"
FILE_CLIENT_LABELS = {"curl": "curl", "httpx": "httpx, Python client"}
SECTIONS = ("lifecycle", "exec", "concurrency", "suspend", "snapshot", "files", "load")


@dataclass(frozen=True)
class Plan:
    """Sample counts: --quick proves the suite end to end in minutes; the default is the published run."""

    lifecycle_samples: int
    lifecycle_warmup: int
    pool_size: int
    exec_calls: int
    exec_warmup: int
    concurrency_levels: tuple[int, ...]
    concurrency_repeats: int
    suspend_samples: int
    snapshot_sizes_mib: tuple[int, ...]
    snapshot_repeats: int
    files_sizes_mib: tuple[int, ...]
    files_repeats: int
    load_devboxes: int
    load_commands: int
    load_concurrency: int


QUICK = Plan(5, 1, 2, 50, 5, (10, 50), 1, 3, (10,), 1, (16,), 1, 10, 5, 10)
FULL = Plan(30, 2, 2, 300, 20, (10, 50), 3, 10, (10, 500), 3, (256,), 3, 50, 20, 50)


# ----- numbers -----------------------------------------------------------------------------------------


def percentile(values: list[float], pct: int) -> float:
    """Inclusive-method percentile, as the other benches compute p90; the value itself for one sample."""
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


@dataclass
class Row:
    """One measurement: ours beside raw Docker; `ours`/`raw` are medians, `*_tail` the named percentile."""

    label: str
    unit: str
    ours: float
    raw: float
    tail: str = ""
    ours_tail: float | None = None
    raw_tail: float | None = None
    higher_is_better: bool = False  # throughputs

    @property
    def ratio(self) -> float:
        return self.ours / self.raw

    @property
    def tail_ratio(self) -> float | None:
        return self.ours_tail / self.raw_tail if self.ours_tail is not None and self.raw_tail else None

    @property
    def time_ratio(self) -> float:
        """Ours / raw as time per operation, so that below 1 always means faster than raw Docker."""
        return 1 / self.ratio if self.higher_is_better else self.ratio


def time_row(label: str, ours: list[float], raw: list[float], tail: int = 90) -> Row:
    return Row(
        label,
        "ms",
        statistics.median(ours),
        statistics.median(raw),
        f"p{tail}",
        percentile(ours, tail),
        percentile(raw, tail),
    )


@dataclass
class Section:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # markdown lines under the section's heading
    error: str | None = None
    seconds: float = 0.0


# ----- helpers around a server and raw containers ---------------------------------------------------------


@contextmanager
def api_client(server: BenchServer, connections: int = 20) -> Iterator[httpx.Client]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=HTTP_TIMEOUT, limits=limits
    ) as http:
        yield http


def shutdown_devbox(http: httpx.Client, devbox_id: str) -> None:
    """Untimed; the server removes the container before answering. Failures are left to the label sweep."""
    try:
        ok_json(http.post(f"/v1/devboxes/{devbox_id}/shutdown", params={"force": "true"}))
    except (httpx.HTTPError, RuntimeError) as exc:
        print(f"shutdown of {devbox_id} failed ({exc}); left to the label clean-up", file=sys.stderr)


def remove_raw(client: docker.DockerClient, container_id: str) -> None:
    with suppress(docker.errors.NotFound):
        client.api.remove_container(container_id, force=True, v=True)


def api_echo(http: httpx.Client, devbox_id: str) -> None:
    result = ok_json(http.post(f"/v1/devboxes/{devbox_id}/execute_sync", json={"command": ECHO}))
    if result.get("exit_status") != 0 or result.get("stdout") != ECHO_OUTPUT:
        raise RuntimeError(f"`{ECHO}` in {devbox_id}: {result}")


def raw_echo(client: docker.DockerClient, container_id: str) -> None:
    """One plain `docker exec` of the same command, as the devbox user in its home (no shell)."""
    api = client.api
    exec_id = api.exec_create(container_id, ["echo", MARK], user=USER, workdir=HOME)["Id"]
    out, _ = api.exec_start(exec_id, demux=True)
    code = api.exec_inspect(exec_id).get("ExitCode")
    if code != 0 or out != ECHO_OUTPUT.encode():
        raise RuntimeError(f"raw exec of `{ECHO}` exited {code}: {out!r}")


def wait_status(http: httpx.Client, devbox_id: str, wanted: str, deadline_seconds: float = 120) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        response = http.post(
            f"/v1/devboxes/{devbox_id}/wait_for_status",
            json={"statuses": [wanted, "failure", "shutdown"], "timeout_seconds": WAIT_HOLD_SECONDS},
        )
        if response.status_code == 408:
            continue
        status = ok_json(response)["status"]
        if status != wanted:
            raise RuntimeError(f"devbox {devbox_id} ended up {status}, not {wanted}")
        return
    raise RuntimeError(f"devbox {devbox_id} was not {wanted} after {deadline_seconds:g} s")


def server_containers(client: docker.DockerClient, instance: str) -> set[str]:
    """Names of the server's running containers (devboxes and warm-pool ones)."""
    found = client.api.containers(filters={"label": f"{LABEL_INSTANCE}={instance}", "status": "running"})
    return {name.lstrip("/") for container in found for name in container["Names"]}


def pool_ready(http: httpx.Client) -> int | None:
    """The server's own count of claimable warm containers (gauge devboxd_warm_pool_ready at /metrics)."""
    response = http.get("/metrics")
    if response.status_code != 200:
        return None
    for line in response.text.splitlines():
        if line.startswith(f"{POOL_GAUGE} "):
            return int(float(line.split()[1]))
    return None


def wait_pool_full(client: docker.DockerClient, http: httpx.Client, instance: str, size: int) -> set[str]:
    """Block until the pool is full: the server says `size` containers are ready (or, on a server without
    the gauge, `docker ps` shows them and their agents had POOL_SETTLE_SECONDS to connect). Returns the
    names of the server's containers, which tell a warm create (its container existed) from a cold one."""
    deadline = time.monotonic() + POOL_FILL_TIMEOUT_SECONDS
    while True:
        ready = pool_ready(http)
        names = server_containers(client, instance)
        if (ready if ready is not None else len(names)) >= size:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the warm pool did not reach {size} within {POOL_FILL_TIMEOUT_SECONDS} s")
        time.sleep(0.05)
    if ready is None:
        time.sleep(POOL_SETTLE_SECONDS)
    return names


def interleave(rounds: list[Callable[[], dict[str, float]]], n: int, warmup: int, what: str) -> dict[str, list[float]]:
    """warmup + n rounds of every kind, in an order rotating every round; timed values kept (already ms)."""
    samples: dict[str, list[float]] = {}
    for i in range(warmup + n):
        shift = i % len(rounds)
        for one in rounds[shift:] + rounds[:shift]:
            for metric, value in one().items():
                if i >= warmup:
                    samples.setdefault(metric, []).append(value)
        tag = f"{i - warmup + 1}/{n}" if i >= warmup else f"warm-up {i + 1}/{warmup}"
        print(f"  {what} round {tag}", file=sys.stderr, flush=True)
    return samples


def burst(count: int, one: Callable[[], None]) -> tuple[float, list[str]]:
    """Wall seconds for `count` calls of `one` released together from their own threads, and their errors."""
    gate = threading.Barrier(count + 1)

    def task() -> str | None:
        gate.wait()
        try:
            one()
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        return None

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(task) for _ in range(count)]
        try:
            gate.wait()
        except BaseException:
            gate.abort()  # interrupted before the release: free the parked threads, or the pool never exits
            raise
        t0 = time.perf_counter()
        outcomes = [future.result() for future in futures]
        wall = time.perf_counter() - t0
    return wall, [error for error in outcomes if error]


def in_parallel(items: list[str], fn: Callable[[str], None], workers: int = 16) -> None:
    """Untimed clean-up of many devboxes or containers at once."""
    if items:
        with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
            list(pool.map(fn, items))


# ----- the sections ----------------------------------------------------------------------------------------


class Suite:
    def __init__(self, client: docker.DockerClient, plan: Plan, run_id: str) -> None:
        self.client = client
        self.plan = plan
        self.run_id = run_id
        self.instances: list[str] = []
        self.spec = raw_spec(client, run_id)
        self.facts: dict[str, float] = {}

    def instance(self, phase: str) -> tuple[str, RawSpec]:
        """A fresh instance label per server, so each section's clean-up touches only its own containers."""
        instance = f"{self.run_id}-{phase}-{len(self.instances)}"
        self.instances.append(instance)
        return instance, replace(self.spec, instance=instance)

    def api_create_round(self, http: httpx.Client) -> tuple[dict[str, float], str]:
        t0 = time.perf_counter()
        devbox_id = create_running(http)
        try:
            t_running = time.perf_counter()
            api_echo(http, devbox_id)
            t_output = time.perf_counter()
        finally:
            shutdown_devbox(http, devbox_id)
        return {"running": (t_running - t0) * 1000, "output": (t_output - t0) * 1000}, devbox_id

    def raw_create_round(self, spec: RawSpec) -> dict[str, float]:
        """docker run (create + start, the server's settings), then one docker exec of the same command."""
        t0 = time.perf_counter()
        container_id = create_raw_container(self.client, spec)
        try:
            self.client.api.start(container_id)
            t_running = time.perf_counter()
            raw_echo(self.client, container_id)
            t_output = time.perf_counter()
        finally:
            remove_raw(self.client, container_id)
        return {"raw_running": (t_running - t0) * 1000, "raw_output": (t_output - t0) * 1000}

    def lifecycle_cold(self) -> Section:
        section = Section("lifecycle-cold", "Create -> running / first command output, cold (no warm pool)")
        p = self.plan
        instance, spec = self.instance("cold")
        with bench_server(self.client, instance, NO_POOL) as server, api_client(server) as http:
            samples = interleave(
                [lambda: self.api_create_round(http)[0], lambda: self.raw_create_round(spec)],
                p.lifecycle_samples,
                p.lifecycle_warmup,
                "cold create",
            )
        section.rows = [
            time_row("create -> running, cold", samples["running"], samples["raw_running"]),
            time_row("create -> first command output, cold", samples["output"], samples["raw_output"]),
        ]
        section.details.append(
            f"{p.lifecycle_samples} samples per side after {p.lifecycle_warmup} warm-up round(s), interleaved; "
            f'server with `{POOL_SETTING}=""`.'
        )
        return section

    def lifecycle_warm(self) -> Section:
        section = Section("lifecycle-warm", "Create -> running / first command output, warm (pool full)")
        p = self.plan
        instance, spec = self.instance("warm")
        hits: list[bool] = []
        with (
            bench_server(self.client, instance, {POOL_SETTING: f"SMALL={p.pool_size}"}) as server,
            api_client(server) as http,
        ):

            def warm_round() -> dict[str, float]:
                before = wait_pool_full(self.client, http, instance, p.pool_size)
                metrics, devbox_id = self.api_create_round(http)
                hits.append(container_name(devbox_id) in before)
                if not hits[-1]:
                    return {"missed_running": metrics["running"], "missed_output": metrics["output"]}
                return metrics

            def raw_round() -> dict[str, float]:
                wait_pool_full(self.client, http, instance, p.pool_size)  # no refill running beside the baseline
                return self.raw_create_round(spec)

            samples = interleave([warm_round, raw_round], p.lifecycle_samples, p.lifecycle_warmup, "warm create")
        timed_hits = hits[p.lifecycle_warmup :]
        if "output" not in samples:
            raise RuntimeError(f"no warm create was served from the pool ({len(timed_hits)} tried)")
        section.rows = [
            time_row("create -> running, warm pool", samples["running"], samples["raw_running"]),
            time_row("create -> first command output, warm pool", samples["output"], samples["raw_output"]),
        ]
        output = section.rows[1]
        self.facts["warm_first_output_p50_ms"] = output.ours
        self.facts["warm_first_output_ratio"] = output.ratio
        missed = samples.get("missed_output", [])
        section.details.append(
            f"{p.lifecycle_samples} samples per side after {p.lifecycle_warmup} warm-up round(s), interleaved; "
            f"server with `{POOL_SETTING}=SMALL={p.pool_size}`; before every sample (either side) the bench waits "
            f"until the server reports {p.pool_size} ready pool containers (`{POOL_GAUGE}` at `/metrics`). The "
            "refill of the claimed container runs while the first command does, as in use."
        )
        section.details.append(
            f"Served from the pool: {sum(timed_hits)} of {len(timed_hits)} timed creates"
            + (
                f"; the {len(missed)} cold one(s) are left out of the rows (their first command output: "
                f"{', '.join(f'{v:.0f}' for v in missed)} ms)."
                if missed
                else "."
            )
        )
        return section

    def exec_round_trip(self) -> Section:
        section = Section("exec", "Exec round trip on a running devbox")
        p = self.plan
        instance, _ = self.instance("exec")
        with bench_server(self.client, instance, NO_POOL) as server, api_client(server) as http:
            devbox_id = create_running(http)
            try:
                container = self.client.containers.get(container_name(devbox_id))
                calls = executions.api_calls(http, devbox_id)
                calls["api_echo"] = lambda: api_echo(http, devbox_id)
                calls.update(executions.raw_calls(container))
                calls["raw_echo"] = lambda: raw_echo(self.client, container.id or "")
                samples = executions.run_latency(calls, p.exec_calls, p.exec_warmup)
            finally:
                shutdown_devbox(http, devbox_id)
        true, bash = samples["raw_exec_true"], samples["raw_exec_bash"]
        section.rows = [
            time_row("exec round trip: execute_sync `true`", samples["api_execute_sync"], true, 99),
            time_row(f"exec round trip: execute_sync `{ECHO}`", samples["api_echo"], samples["raw_echo"], 99),
            time_row("exec round trip: execute_sync `true`, named shell", samples["api_execute_sync_shell"], true, 99),
            time_row("exec round trip: execute `true` (command_id)", samples["api_execute"], true, 99),
        ]
        self.facts["exec_p50_ms"] = section.rows[0].ours
        section.details += [
            f"{p.exec_calls} calls per kind after {p.exec_warmup} warm-up rounds, in runs of "
            f"{executions.CALLS_PER_RUN} calls of one kind, the kinds' order rotating every round, on one devbox "
            "(see bench/executions.py for why runs). "
            'Raw: docker-py `exec_run(["true"])` / `exec_run(["echo", ...], '
            'user="user")` on the devbox\'s own container (a plain `docker exec`, no shell).',
            "",
            "| kind | p50 ms | p90 ms | p99 ms | x raw `true` p50 | x raw `bash -lc true` p50 |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        labels = {key: label for label, key in executions.API_KINDS + executions.RAW_KINDS}
        labels |= {"api_echo": f"API execute_sync `{ECHO}`", "raw_echo": f'raw exec_run(["echo", "{MARK}"])'}
        for key, values in samples.items():
            section.details.append(
                f"| {labels.get(key, key)} | {statistics.median(values):.1f} | {percentile(values, 90):.1f} | "
                f"{percentile(values, 99):.1f} | {statistics.median(values) / statistics.median(true):.2f} | "
                f"{statistics.median(values) / statistics.median(bash):.2f} |"
            )
        return section

    def concurrency(self) -> Section:
        section = Section("concurrency", "Concurrent creates (cold)")
        p = self.plan
        instance, spec = self.instance("burst")
        most = max(p.concurrency_levels)
        # A connection per concurrent create on both sides, so no client pool serializes them.
        burst_client = docker.from_env(max_pool_size=most + 10, timeout=300)
        section.details += [
            f"Each burst releases N creates at once from N threads; wall time from the release to the last one "
            f"running (API: `create_and_await_running`; raw: docker-py create + start with the same image and "
            f"limits; raw with the devbox's config: also the devboxd network without inter-container traffic, "
            f"the reduced capabilities, a bind-mounted private directory and the command agent listening in it "
            f"as the container's command, as the server's driver makes it). "
            f"Median over {p.concurrency_repeats} burst(s) per side, sides alternating; server with "
            f'`{POOL_SETTING}=""`; devboxes and containers removed (untimed) between bursts.',
            "",
            "| N | side | burst walls (s) | devboxes/s (median) | errors |",
            "|---:|---|---|---:|---:|",
        ]
        try:
            with bench_server(self.client, instance, NO_POOL) as server, api_client(server, most + 10) as http:
                for level in p.concurrency_levels:
                    rates: dict[str, list[float]] = {"api": [], "raw": [], "confined": []}
                    walls: dict[str, list[float]] = {"api": [], "raw": [], "confined": []}
                    errors: dict[str, list[str]] = {"api": [], "raw": [], "confined": []}
                    sides: list[tuple[str, Callable[[], tuple[float, list[str]]]]] = [
                        ("api", partial(self.api_burst, http, level)),
                        ("raw", partial(self.raw_burst, burst_client, spec, level)),
                        ("confined", partial(self.raw_burst, burst_client, spec, level, True)),
                    ]
                    for repeat in range(p.concurrency_repeats):
                        for side, run in sides if repeat % 2 == 0 else sides[::-1]:
                            wall, errs = run()
                            walls[side].append(wall)
                            rates[side].append((level - len(errs)) / wall)
                            errors[side] += errs
                            print(
                                f"  {level} concurrent creates, {side}: {wall:.2f} s, {len(errs)} error(s)",
                                file=sys.stderr,
                                flush=True,
                            )
                    row = Row(
                        f"{level} concurrent creates: devboxes/s",
                        "devboxes/s",
                        statistics.median(rates["api"]),
                        statistics.median(rates["raw"]),
                        higher_is_better=True,
                    )
                    section.rows.append(row)
                    same = Row(
                        f"{level} concurrent creates vs the same container config: devboxes/s",
                        "devboxes/s",
                        statistics.median(rates["api"]),
                        statistics.median(rates["confined"]),
                        higher_is_better=True,
                    )
                    section.rows.append(same)
                    self.facts[f"burst{level}_confined_ratio"] = same.ratio
                    names = {"api": "devboxd", "raw": "raw Docker", "confined": "raw Docker, devbox's config"}
                    for side in ("api", "raw", "confined"):
                        section.details.append(
                            f"| {level} | {names[side]} | "
                            f"{', '.join(f'{w:.2f}' for w in walls[side])} | {statistics.median(rates[side]):.2f} | "
                            f"{len(errors[side])} |"
                        )
                    for message in (errors["api"] + errors["raw"] + errors["confined"])[:5]:
                        section.details.append(f"\nerror ({level}): `{message}`")
                    self.facts[f"burst{level}_errors"] = len(errors["api"])
                    self.facts[f"burst{level}_ratio"] = row.ratio
        finally:
            remove_containers(self.client, instance)
            burst_client.close()
        return section

    def api_burst(self, http: httpx.Client, count: int) -> tuple[float, list[str]]:
        created: list[str] = []
        lock = threading.Lock()

        def one() -> None:
            devbox = ok_json(http.post("/v1/devboxes/create_and_await_running", json={}))
            with lock:
                created.append(str(devbox["id"]))  # shut down afterwards, whether it comes up or not
            settle_running(http, devbox)

        try:
            return burst(count, one)
        finally:
            in_parallel(created, lambda devbox_id: shutdown_devbox(http, devbox_id))

    def raw_burst(
        self, client: docker.DockerClient, spec: RawSpec, count: int, confined: bool = False
    ) -> tuple[float, list[str]]:
        created: list[str] = []
        lock = threading.Lock()

        def one() -> None:
            container_id = create_raw_container(client, spec, confined)
            with lock:
                created.append(container_id)
            client.api.start(container_id)

        try:
            return burst(count, one)
        finally:
            in_parallel(created, lambda container_id: remove_raw(client, container_id))

    def suspend_resume(self) -> Section:
        section = Section("suspend", "Suspend / resume")
        p = self.plan
        instance, spec = self.instance("suspend")
        with bench_server(self.client, instance, NO_POOL) as server, api_client(server) as http:
            devbox_id = create_running(http)
            container_id = create_raw_container(self.client, spec)
            try:
                self.client.api.start(container_id)

                def api_round() -> dict[str, float]:
                    t0 = time.perf_counter()
                    ok_json(http.post(f"/v1/devboxes/{devbox_id}/suspend"))
                    wait_status(http, devbox_id, "suspended")
                    t1 = time.perf_counter()
                    ok_json(http.post(f"/v1/devboxes/{devbox_id}/resume"))
                    wait_status(http, devbox_id, "running")
                    t2 = time.perf_counter()
                    api_echo(http, devbox_id)
                    t3 = time.perf_counter()
                    return {"suspend": (t1 - t0) * 1000, "resume": (t2 - t1) * 1000, "resume_output": (t3 - t1) * 1000}

                def raw_round() -> dict[str, float]:
                    t0 = time.perf_counter()
                    self.client.api.stop(container_id, timeout=STOP_TIMEOUT_SECONDS)
                    t1 = time.perf_counter()
                    self.client.api.start(container_id)
                    t2 = time.perf_counter()
                    raw_echo(self.client, container_id)
                    t3 = time.perf_counter()
                    return {
                        "raw_stop": (t1 - t0) * 1000,
                        "raw_start": (t2 - t1) * 1000,
                        "raw_start_output": (t3 - t1) * 1000,
                    }

                samples = interleave([api_round, raw_round], p.suspend_samples, 1, "suspend/resume")
            finally:
                shutdown_devbox(http, devbox_id)
                remove_raw(self.client, container_id)
        section.rows = [
            time_row("suspend -> suspended vs docker stop", samples["suspend"], samples["raw_stop"]),
            time_row("resume -> running vs docker start", samples["resume"], samples["raw_start"]),
            time_row(
                "resume -> first command output vs start + exec", samples["resume_output"], samples["raw_start_output"]
            ),
        ]
        section.details.append(
            f"{p.suspend_samples} cycles per side after 1 warm-up, interleaved, on one devbox and one raw container. "
            f"API: `suspend` / `resume` then `wait_for_status`; raw: docker-py `stop(timeout={STOP_TIMEOUT_SECONDS})` "
            "(the server's stop grace) / `start`."
        )
        return section

    def snapshot(self) -> Section:
        section = Section("snapshot", "Snapshot (bench.snapshots)")
        p = self.plan
        _, spec = self.instance("snapshot")
        args = argparse.Namespace(sizes=list(p.snapshot_sizes_mib), repeats=p.snapshot_repeats, warmup=1)
        results = snapshots.run(self.client, args, spec, NO_POOL)
        for size, samples in results.items():
            summary = snapshots.summarize(size, samples)
            for label, api_key, raw_key in snapshots.ROWS[:2]:
                ours, raw = samples[api_key], samples[raw_key]
                short = "snapshot_disk vs docker commit" if api_key == "api_snapshot" else label
                section.rows.append(
                    Row(
                        f"{short} ({size} MiB changes)",
                        "ms",
                        statistics.median(ours) * 1000,
                        statistics.median(raw) * 1000,
                        "max",
                        max(ours) * 1000,
                        max(raw) * 1000,
                    )
                )
            section.details.append(
                f"{size} MiB of changes: snapshot size_bytes {summary['api_size_bytes'] / 2**20:.1f} MiB."
            )
        section.details.append(
            f"Median (and max) of {p.snapshot_repeats} round(s) per size after 1 warm-up; `python -m bench.snapshots` "
            f'describes the method. Server with `{POOL_SETTING}=""`.'
        )
        return section

    def files(self) -> Section:
        """bench.files in a subprocess; curl's rows are the headline, the Python client's beside them."""
        section = Section("files", "File transfer (bench.files, subprocess)")
        p = self.plan
        sizes = ",".join(map(str, p.files_sizes_mib))
        result, code, stdout = run_module("bench.files", ["--sizes", sizes, "--repeats", str(p.files_repeats)])
        if code != 0:
            raise RuntimeError(f"bench.files exited {code}")
        for summary in result["summary"]:
            mib_s, size = summary["median_mib_s"], summary["size_mib"]
            # The first client (curl, a native CLI like the docker CLI) is the headline; the Python client's
            # rows follow each of its rows.
            for operation, cp, raw_label in (
                ("upload", "cp_in", "docker cp in"),
                ("download", "cp_out", "docker cp out"),
            ):
                for client in summary["clients"]:
                    section.rows.append(
                        Row(
                            f"{operation}_file ({FILE_CLIENT_LABELS.get(client, client)}) vs {raw_label} ({size} MiB)",
                            "MiB/s",
                            mib_s[f"{client}_{operation}"],
                            mib_s[cp],
                            higher_is_better=True,
                        )
                    )
        section.details += [
            f"`python -m bench.files --sizes {sizes} --repeats {p.files_repeats}` (its server has the default warm "
            "pool, which does not touch transfers). The API side is timed with two clients: curl, the headline (a "
            "native CLI, as the docker CLI is), and httpx (a Python client, which on a small machine takes a good "
            "part of a core from the server and dockerd at these rates). Its table:",
            "",
            "```",
            stdout.strip("\n"),  # the table's first line starts with spaces
            "```",
        ]
        return section

    def load(self) -> Section:
        section = Section("load", "Many devboxes at once (bench.load, subprocess)")
        p = self.plan
        argv = [
            "--devboxes",
            str(p.load_devboxes),
            "--commands",
            str(p.load_commands),
            "--concurrency",
            str(p.load_concurrency),
        ]
        result, code, stdout = run_module("bench.load", argv)
        api, raw = result["summary"]["api"], result["summary"]["raw"]
        section.rows += [
            Row(
                "load: create p50 (under load)",
                "ms",
                api["create_ms"]["p50"],
                raw["create_ms"]["p50"],
                "p99",
                api["create_ms"]["p99"],
                raw["create_ms"]["p99"],
            ),
            Row(
                "load: command p50 (under load)",
                "ms",
                api["command_ms"]["p50"],
                raw["command_ms"]["p50"],
                "p99",
                api["command_ms"]["p99"],
                raw["command_ms"]["p99"],
            ),
            Row("load: commands/s", "commands/s", api["commands_per_s"], raw["commands_per_s"], higher_is_better=True),
        ]
        section.details += [
            f"`python -m bench.load {' '.join(argv)}` (exit {code}; errors: devboxd {api['errors']}, raw "
            f"{raw['errors']}; its server has the default warm pool, so its first creates may be warm); its report:",
            "",
            stdout.strip(),
        ]
        return section


def run_module(module: str, argv: list[str]) -> tuple[dict[str, Any], int, str]:
    """Run another bench as a subprocess (its own server and clean-up); its JSON result, exit code, stdout."""
    with tempfile.TemporaryDirectory(prefix="devboxd-suite-") as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, "-m", module, *argv, "--json", str(out)]
        print(f"running {' '.join(command[1:])}", file=sys.stderr, flush=True)
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
        try:
            stdout, _ = process.communicate(timeout=SUBPROCESS_TIMEOUT_SECONDS)
        finally:
            if process.poll() is None:  # interrupted or timed out: let it clean up after itself
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=90)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if not out.exists():
            raise RuntimeError(f"{module} exited {process.returncode} without writing its result")
        return json.loads(out.read_text()), process.returncode, stdout


# ----- the report ------------------------------------------------------------------------------------------


def machine(client: docker.DockerClient) -> list[tuple[str, str]]:
    def first(path: str, key: str) -> str:
        with suppress(OSError):
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip() if ":" in line else line.split("=", 1)[1].strip('"')
        return "unknown"

    info, version = client.info(), client.version()
    mem_kib = first("/proc/meminfo", "MemTotal").split()[0]
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True)
    return [
        ("CPU", f"{first('/proc/cpuinfo', 'model name')}, {os.cpu_count()} cores"),
        ("RAM", f"{int(mem_kib) / 2**20:.1f} GiB" if mem_kib.isdigit() else "unknown"),
        ("OS / kernel", f"{first('/etc/os-release', 'PRETTY_NAME=')}, Linux {platform.release()}"),
        (
            "Docker",
            f"{version.get('Version')} (storage {info.get('Driver')}, cgroup v{info.get('CgroupVersion')}, "
            f"runtime {info.get('DefaultRuntime')})",
        ),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("devboxd", commit.stdout.strip() or "unknown"),
    ]


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return ""
    text = f"{value:.1f}" if abs(value) < 1000 else f"{value:.0f}"
    return f"{text} {unit}".strip()


def targets(facts: dict[str, float]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met); met is None when the measurement is missing."""

    def check(key: str, show: Callable[[float], str], ok: Callable[[float], bool]) -> tuple[str, bool | None]:
        return (show(facts[key]), ok(facts[key])) if key in facts else ("not measured", None)

    errors = check("burst50_errors", lambda v: f"{v:.0f} errors", lambda v: v == 0)
    ratio = check("burst50_ratio", lambda v: f"{v:.2f}x raw", lambda v: v >= 0.9)
    confined = check("burst50_confined_ratio", lambda v: f"{v:.2f}x raw", lambda v: v >= 0.9)
    return [
        (
            "create -> first command, warm pool: p50 < 100 ms",
            *check("warm_first_output_p50_ms", lambda v: f"{v:.1f} ms", lambda v: v < 100),
        ),
        (
            "create -> first command, warm pool: p50 < 0.3x raw docker run + exec",
            *check("warm_first_output_ratio", lambda v: f"{v:.2f}x", lambda v: v < 0.3),
        ),
        (
            "exec round trip (execute_sync `true`): p50 < 5 ms",
            *check("exec_p50_ms", lambda v: f"{v:.2f} ms", lambda v: v < 5),
        ),
        ("50 concurrent creates: 0 errors", *errors),
        ("50 concurrent creates: >= 0.9x raw Docker's devboxes/s (plain `docker run`)", *ratio),
        ("50 concurrent creates: >= 0.9x raw Docker's devboxes/s (same container config)", *confined),
    ]


def render(sections: list[Section], facts: dict[str, float], meta: dict[str, Any]) -> str:
    lines = [
        "# devboxd benchmark report",
        "",
        f"Date: {meta['date']}  ",
        f"Command: `{meta['command']}`  ",
        f"Duration: {meta['seconds'] / 60:.1f} min{QUICK_NOTE if meta['quick'] else ''}",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in meta["machine"]),
        "",
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---:|---|",
    ]
    for target, measured, met in targets(facts):
        lines.append(f"| {target} | {measured} | {'PASS' if met else 'MISS'} |")
    lines += [
        "",
        "## Every measurement beside raw Docker (same run)",
        "",
        "Ratio = ours / raw: for times below 1 is faster than raw Docker; for throughputs (devboxes/s, MiB/s, "
        "commands/s) above 1 is faster.",
        "",
        "| measurement | ours p50 | raw p50 | ours/raw p50 | tail | ours tail | raw tail | ours/raw tail |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for section in sections:
        for row in section.rows:
            lines.append(
                f"| {row.label} | {fmt(row.ours, row.unit)} | {fmt(row.raw, row.unit)} | {row.ratio:.2f} | "
                f"{row.tail} | {fmt(row.ours_tail, row.unit)} | {fmt(row.raw_tail, row.unit)} | "
                f"{'' if row.tail_ratio is None else f'{row.tail_ratio:.2f}'} |"
            )
        if section.error:
            lines.append(f"| {section.title} | not measured | | | | | | |")
    lines += ["", "![ours vs raw Docker](report.png)", "", "## Details", ""]
    for section in sections:
        lines += [f"### {section.title}", "", f"Took {section.seconds:.0f} s.", ""]
        if section.error:
            lines += [f"**Not measured**: `{section.error}`", ""]
        lines += [*section.details, ""]
    lines += [
        "## Method",
        "",
        "Every server is a fresh `devboxd serve` (own temp data dir, port, API key, instance label); raw Docker "
        "is docker-py against the same engine with the container the server makes for a default devbox (same "
        "image, `init`, CPU / memory / pids limits), so the ratio is what devboxd adds or saves. Times are "
        "wall-clock in the bench process (`time.perf_counter`); p90/p99 use `statistics.quantiles(..., "
        "method='inclusive')`. Cold and warm are different servers: `DEVBOX_WARM_POOL=\"\"` and "
        "`DEVBOX_WARM_POOL=SMALL=N`. The two sides are interleaved so that drifting load favours neither; "
        "compare ratios from one run, not absolute times across machines.",
        "",
    ]
    return "\n".join(lines)


def chart(sections: list[Section], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    rows = [row for section in sections for row in section.rows]
    timed = [row for row in rows if row.unit == "ms"]
    if not rows:  # every section failed: still leave a picture that says so
        fig = plt.figure(figsize=(8, 2))
        fig.text(0.5, 0.5, f"{title}\nnothing was measured (see report.md)", ha="center", va="center")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
    height = max(5.0, 0.42 * len(rows) + 1.8)
    fig, (left, right) = plt.subplots(1, 2, figsize=(17, height), gridspec_kw={"width_ratios": [1, 1]})
    positions = list(range(len(timed)))
    left.barh([y - 0.2 for y in positions], [r.ours for r in timed], height=0.4, label="devboxd", color="#2c7fb8")
    left.barh([y + 0.2 for y in positions], [r.raw for r in timed], height=0.4, label="raw Docker", color="#bdbdbd")
    for y, row in zip(positions, timed, strict=True):
        left.text(row.ours, y - 0.2, f" {row.ours:.1f}", va="center", fontsize=7)
        left.text(row.raw, y + 0.2, f" {row.raw:.1f}", va="center", fontsize=7)
    left.set_yticks(positions, [r.label for r in timed], fontsize=8)
    left.invert_yaxis()
    if timed:  # a run of throughput sections only has no latencies to draw on a log scale
        left.set_xscale("log")
    left.set_xlabel("p50, ms (log scale)")
    left.set_title("Latency: devboxd vs raw Docker")
    left.legend(loc="lower right", fontsize=8)
    left.grid(axis="x", which="both", alpha=0.3)

    positions = list(range(len(rows)))
    ratios = [r.time_ratio for r in rows]
    colors = ["#31a354" if ratio <= 1 else "#e6550d" for ratio in ratios]
    right.barh(positions, ratios, color=colors, height=0.6)
    right.axvline(1.0, color="black", linewidth=1)
    for y, ratio in zip(positions, ratios, strict=True):
        right.text(ratio, y, f" {ratio:.2f}", va="center", fontsize=7)
    right.set_yticks(positions, [f"{r.label} (1/x)" if r.higher_is_better else r.label for r in rows], fontsize=8)
    right.invert_yaxis()
    right.set_xscale("log")
    ticks = [t for t in RATIO_TICKS if min(ratios) / 2 <= t <= max(ratios) * 2]
    right.set_xticks(ticks, [f"{t:g}" for t in ticks])
    right.xaxis.set_minor_formatter(NullFormatter())
    right.set_xlim(min(*ratios, 1.0) / 1.5, max(*ratios, 1.0) * 1.6)
    right.set_xlabel("devboxd / raw Docker, time per operation (log; < 1: faster)")
    right.set_title("Ratio; throughputs (1/x) as time per operation")
    right.grid(axis="x", which="both", alpha=0.3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----- the run -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.suite", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sample counts: the whole suite in minutes")
    parser.add_argument("--only", help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})")
    parser.add_argument("--out-dir", type=Path, default=REPO / "bench" / "results", help="where report.md/png go")
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.only.split(",")] if args.only else list(SECTIONS)
    if unknown := set(args.sections) - set(SECTIONS):
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; known: {', '.join(SECTIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    plan = QUICK if args.quick else FULL
    started, date = time.perf_counter(), time.strftime("%Y-%m-%d %H:%M:%S %z")
    command = shlex.join([".venv/bin/python", "-m", "bench.suite", *(sys.argv[1:] if argv is None else argv)])
    client = docker.from_env(timeout=300)
    run_id = f"bench-{uuid.uuid4().hex[:10]}"
    results: list[Section] = []
    suite: Suite | None = None
    try:
        suite = Suite(client, plan, run_id)
        print(f"devboxd bench suite ({'quick' if args.quick else 'full'}), run {run_id}", file=sys.stderr)
        runners: dict[str, list[Callable[[], Section]]] = {
            "lifecycle": [suite.lifecycle_cold, suite.lifecycle_warm],
            "exec": [suite.exec_round_trip],
            "concurrency": [suite.concurrency],
            "suspend": [suite.suspend_resume],
            "snapshot": [suite.snapshot],
            "files": [suite.files],
            "load": [suite.load],
        }
        for name in args.sections:
            results += [run_section(name, runner) for runner in runners[name]]
        meta = {
            "date": date,
            "command": command,
            "quick": args.quick,
            "machine": machine(client),
            "seconds": time.perf_counter() - started,
        }
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        return 130
    finally:
        for instance in suite.instances if suite else []:
            if removed := remove_containers(client, instance):
                print(f"cleanup: {removed} leftover container(s) of {instance} removed", file=sys.stderr)
        client.close()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    report = args.out_dir / "report.md"
    report.write_text(render(results, suite.facts, meta))
    chart(results, args.out_dir / "report.png", f"devboxd vs raw Docker, {date} ({command})")
    print(report.read_text())
    print(f"wrote {report} and {args.out_dir / 'report.png'}", file=sys.stderr)
    return 0 if not any(section.error for section in results) else 1


def run_section(name: str, runner: Callable[[], Section]) -> Section:
    """One section, retried once (the engine may be restarting); a second failure is reported, not fatal."""
    error = ""
    t0 = time.perf_counter()
    for attempt in (1, 2):
        print(f"== {name} (attempt {attempt})", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            section = runner()
        except Exception as exc:
            traceback.print_exc()
            error = f"{type(exc).__name__}: {exc}"[:500]
            continue
        section.seconds = time.perf_counter() - t0
        return section
    return Section(name, name, error=error, seconds=time.perf_counter() - t0)


if __name__ == "__main__":
    sys.exit(main())
