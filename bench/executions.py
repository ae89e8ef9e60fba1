"""Command round trips: what devboxd's execution API adds on top of a raw `docker exec`.

Against a devboxd server it starts itself and one running devbox, it times, one call after another
(latencies, not throughput), the round trip of the command ``true``:

* ``POST /v1/devboxes/{id}/execute_sync {"command": "true"}`` — unnamed, and with ``shell_name``;
* ``POST /v1/devboxes/{id}/execute {"command_id": <uuid4>, "command": "true", "optimistic_timeout": 25}``
  — unnamed, and with ``shell_name``;

and, on the very same container (``devbox-<devbox id>``), the raw docker-py baseline: ``container.exec_run(
["true"])`` and ``container.exec_run(["bash", "-lc", "true"], user="user")`` (what a command costs when each
one is its own ``docker exec`` of a login shell as the devbox user, which is what the API runs).

After untimed warm-up rounds, the kinds take turns in runs of CALLS_PER_RUN calls of one kind, in an order
that rotates every round, so drifting machine load does not favour one side. Runs rather than single
calls: a command's round trip is timed after another command, as an agent's next command meets it, not
after a raw `docker exec` whose shim and runc teardown still runs on the 2 cores when it returns.

Then throughput: bursts of ``--concurrency`` commands at once (``sleep 0.1``, then ``true``), each an
``execute_async`` followed by the execution's ``wait_for_status`` in its own thread, against the same
number of threads each doing ``exec_run(["bash", "-lc", ...], user="user")``. The server's RSS is read
before and after, and sampled throughout for its peak. Server start-up and clean-up come from
bench.lifecycle (via bench.files' helpers).

    .venv/bin/python -m bench.executions [--calls 200] [--warmup 10] [--concurrency 50] [--bursts 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import docker
import httpx
from docker.models.containers import Container

from app.domain.devbox import container_name
from app.drivers.docker_image import ensure_default_image
from bench.files import RssPeak, devbox, read_rss
from bench.lifecycle import API_KEY, USER, bench_server, ok_json, raise_interrupt, summarize

COMMAND = "true"
SHELL_NAME = "bench"
OPTIMISTIC_TIMEOUT = 25
WAIT_HOLD_SECONDS = 25
CALLS_PER_RUN = 10
BURST_COMMANDS = ("sleep 0.1", "true")
HTTP_TIMEOUT = httpx.Timeout(120, connect=10)

Samples = dict[str, list[float]]

# (row label, metric key); the API rows come first, then the two raw baselines.
API_KINDS: list[tuple[str, str]] = [
    ("API execute_sync", "api_execute_sync"),
    ("API execute_sync + shell_name", "api_execute_sync_shell"),
    ("API execute (command_id, optimistic_timeout 25)", "api_execute"),
    ("API execute + shell_name", "api_execute_shell"),
]
RAW_KINDS: list[tuple[str, str]] = [
    ('raw exec_run(["true"])', "raw_exec_true"),
    ('raw exec_run(["bash","-lc","true"], user="user")', "raw_exec_bash"),
]


# ----- one call of each kind ---------------------------------------------------------------------------


def check_completed(body: dict[str, Any], what: str) -> None:
    if body.get("exit_status") != 0 or body.get("status", "completed") != "completed":
        raise RuntimeError(f"{what}: `{COMMAND}` did not complete with exit status 0: {body}")


def api_calls(http: httpx.Client, devbox_id: str) -> dict[str, Callable[[], None]]:
    def execute_sync(shell: str | None) -> Callable[[], None]:
        body: dict[str, Any] = {"command": COMMAND}
        if shell:
            body["shell_name"] = shell

        def call() -> None:
            check_completed(ok_json(http.post(f"/v1/devboxes/{devbox_id}/execute_sync", json=body)), "execute_sync")

        return call

    def execute(shell: str | None) -> Callable[[], None]:
        def call() -> None:
            body: dict[str, Any] = {
                "command_id": str(uuid.uuid4()),
                "command": COMMAND,
                "optimistic_timeout": OPTIMISTIC_TIMEOUT,
            }
            if shell:
                body["shell_name"] = shell
            check_completed(ok_json(http.post(f"/v1/devboxes/{devbox_id}/execute", json=body)), "execute")

        return call

    return {
        "api_execute_sync": execute_sync(None),
        "api_execute_sync_shell": execute_sync(SHELL_NAME),
        "api_execute": execute(None),
        "api_execute_shell": execute(SHELL_NAME),
    }


def raw_calls(container: Container) -> dict[str, Callable[[], None]]:
    def exec_run(argv: list[str], **kwargs: Any) -> Callable[[], None]:
        def call() -> None:
            result = container.exec_run(argv, **kwargs)
            if result.exit_code != 0:
                raise RuntimeError(f"raw exec_run({argv}) exited {result.exit_code}: {result.output!r}")

        return call

    return {
        "raw_exec_true": exec_run([COMMAND]),
        "raw_exec_bash": exec_run(["bash", "-lc", COMMAND], user=USER),
    }


def run_latency(calls: dict[str, Callable[[], None]], n: int, warmup: int, run: int = CALLS_PER_RUN) -> Samples:
    """`warmup` untimed rounds of one call of every kind, then n timed calls of every kind in runs of `run`
    calls of one kind, the kinds' order rotating every round; times in ms."""
    kinds = list(calls)
    samples: Samples = {kind: [] for kind in kinds}
    for i in range(warmup):
        for kind in kinds[i % len(kinds) :] + kinds[: i % len(kinds)]:
            calls[kind]()
    rounds = -(-n // run)
    for i in range(rounds):
        shift = i % len(kinds)
        for kind in kinds[shift:] + kinds[:shift]:
            for _ in range(min(run, n - i * run)):
                t0 = time.perf_counter()
                calls[kind]()
                samples[kind].append((time.perf_counter() - t0) * 1000)
        print(f"  latency round {i + 1}/{rounds}", file=sys.stderr, flush=True)
    return samples


# ----- throughput --------------------------------------------------------------------------------------


def api_start_and_wait(http: httpx.Client, devbox_id: str, command: str) -> None:
    """execute_async, then the execution's wait_for_status until completed (408 means ask again)."""
    started = ok_json(http.post(f"/v1/devboxes/{devbox_id}/execute_async", json={"command": command}))
    url = f"/v1/devboxes/{devbox_id}/executions/{started['execution_id']}/wait_for_status"
    while True:
        response = http.post(url, json={"statuses": ["completed"], "timeout_seconds": WAIT_HOLD_SECONDS})
        if response.status_code != 408:
            check_completed(ok_json(response), f"execute_async `{command}`")
            return


def burst(pool: ThreadPoolExecutor, concurrency: int, one: Callable[[], None]) -> float:
    """Wall seconds for `concurrency` calls of `one`, all released at once from their own threads."""
    gate = threading.Barrier(concurrency + 1)

    def task() -> None:
        gate.wait()
        one()

    futures = [pool.submit(task) for _ in range(concurrency)]
    gate.wait()  # every thread is parked at the barrier: start the clock, release them together
    t0 = time.perf_counter()
    for future in futures:
        future.result()
    return time.perf_counter() - t0


def run_throughput(
    http: httpx.Client, container: Container, devbox_id: str, concurrency: int, bursts: int
) -> dict[str, list[float]]:
    """For each burst command: one untimed burst per side, then `bursts` timed ones, alternating who goes first."""
    walls: dict[str, list[float]] = {}
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for command in BURST_COMMANDS:
            sides: list[tuple[str, Callable[[], None]]] = [
                (f"api:{command}", partial(api_start_and_wait, http, devbox_id, command)),
                (f"raw:{command}", partial(raw_bash, container, command)),
            ]
            for i in range(bursts + 1):
                for key, one in sides if i % 2 == 0 else sides[::-1]:
                    seconds = burst(pool, concurrency, one)
                    if i > 0:
                        walls.setdefault(key, []).append(seconds)
                tag = f"{i}/{bursts}" if i else "warm-up"
                print(f"  throughput `{command}` burst {tag}", file=sys.stderr, flush=True)
    return walls


def raw_bash(container: Container, command: str) -> None:
    result = container.exec_run(["bash", "-lc", command], user=USER)
    if result.exit_code != 0:
        raise RuntimeError(f"raw exec_run of `{command}` exited {result.exit_code}: {result.output!r}")


# ----- report ------------------------------------------------------------------------------------------


def latency_table(summary: dict[str, dict[str, float]], n: int, warmup: int) -> str:
    true, bash = summary["raw_exec_true"], summary["raw_exec_bash"]
    lines = [
        f"Round trip of `{COMMAND}`, ms ({n} calls per kind after {warmup} warm-up rounds, interleaved):",
        "",
        "| kind | p50 | p90 | mean | x raw `true` p50 | x raw `true` p90 | x raw `bash -lc` p50 "
        "| x raw `bash -lc` p90 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, key in API_KINDS + RAW_KINDS:
        s = summary[key]
        lines.append(
            f"| {label} | {s['p50']:.1f} | {s['p90']:.1f} | {s['mean']:.1f} | {s['p50'] / true['p50']:.2f} | "
            f"{s['p90'] / true['p90']:.2f} | {s['p50'] / bash['p50']:.2f} | {s['p90'] / bash['p90']:.2f} |"
        )
    return "\n".join(lines)


def throughput_summary(walls: dict[str, list[float]], concurrency: int) -> dict[str, dict[str, float]]:
    return {
        key: {
            "n": len(values),
            "median_s": statistics.median(values),
            "best_s": min(values),
            "worst_s": max(values),
            "commands_per_s": concurrency / statistics.median(values),
        }
        for key, values in walls.items()
    }


def throughput_table(summary: dict[str, dict[str, float]], concurrency: int, bursts: int) -> str:
    lines = [
        f"Throughput: {concurrency} concurrent commands on the one devbox, wall time of the whole burst "
        f"(median of {bursts} bursts):",
        "",
        "| command | side | wall p50 (s) | best (s) | worst (s) | commands/s | API/raw wall |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for command in BURST_COMMANDS:
        raw = summary[f"raw:{command}"]
        for side, label in (("api", "API execute_async + wait_for_status"), ("raw", "raw exec_run bash -lc (threads)")):
            s = summary[f"{side}:{command}"]
            lines.append(
                f"| `{command}` | {label} | {s['median_s']:.3f} | {s['best_s']:.3f} | {s['worst_s']:.3f} | "
                f"{s['commands_per_s']:.1f} | {s['median_s'] / raw['median_s']:.2f} |"
            )
    return "\n".join(lines)


def rss_table(rss: dict[str, int]) -> str:
    mb = {key: value / 1e6 for key, value in rss.items()}
    return "\n".join(
        [
            "Server RSS (VmRSS, MB = 10^6 bytes):",
            "",
            "| started | devbox running (before) | after | peak during the run | after - before |",
            "|---:|---:|---:|---:|---:|",
            f"| {mb['started']:.1f} | {mb['before']:.1f} | {mb['after']:.1f} | {mb['peak']:.1f} | "
            f"{mb['after'] - mb['before']:+.1f} |",
        ]
    )


# ----- the run -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.executions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="timed calls per kind (default 200; use >= 200)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed rounds of every kind first (default 10)")
    parser.add_argument("--concurrency", type=int, default=50, help="commands per throughput burst (default 50)")
    parser.add_argument("--bursts", type=int, default=5, help="timed bursts per command and side (default 5)")
    parser.add_argument("--json", type=Path, help="also write config, summaries and samples as JSON to this path")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.warmup < 0 or args.concurrency < 1 or args.bursts < 1:
        parser.error("--calls, --concurrency and --bursts must be >= 1 and --warmup >= 0")
    return args


def run(client: docker.DockerClient, args: argparse.Namespace, instance: str) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=args.concurrency + 10, max_keepalive_connections=args.concurrency + 10)
    with (
        bench_server(client, instance) as server,
        httpx.Client(
            base_url=server.base_url,
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=HTTP_TIMEOUT,
            limits=limits,
        ) as http,
    ):
        assert server.process is not None
        pid = server.process.pid
        rss = {"started": read_rss(pid)}
        with devbox(http) as devbox_id:
            # The raw side talks to the devbox's own container, through a pool big enough for the bursts.
            container = client.containers.get(container_name(devbox_id))
            rss["before"] = read_rss(pid)
            peak = RssPeak(pid, interval=0.1)
            with peak.watching():
                calls = {**api_calls(http, devbox_id), **raw_calls(container)}
                print(f"latency: {args.warmup} + {args.calls} rounds of {len(calls)} kinds", file=sys.stderr)
                samples = run_latency(calls, args.calls, args.warmup)
                print(f"throughput: bursts of {args.concurrency}", file=sys.stderr)
                walls = run_throughput(http, container, devbox_id, args.concurrency, args.bursts)
            rss["after"] = read_rss(pid)
            rss["peak"] = peak.peak
    return {"samples_ms": samples, "burst_walls_s": walls, "rss_bytes": rss}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    # A connection per concurrent raw exec, so docker-py's pool neither serializes nor discards connections.
    client = docker.from_env(max_pool_size=args.concurrency + 10)
    instance = f"bench-{uuid.uuid4().hex[:10]}"
    try:
        image = ensure_default_image(client)
        print(f"devboxd execution bench: image {image}, instance {instance}", file=sys.stderr)
        result = run(client, args, instance)
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        return 130
    finally:
        client.close()
    latency = {kind: summarize(values) for kind, values in result["samples_ms"].items()}
    throughput = throughput_summary(result["burst_walls_s"], args.concurrency)
    print(latency_table(latency, args.calls, args.warmup))
    print()
    print(throughput_table(throughput, args.concurrency, args.bursts))
    print()
    print(rss_table(result["rss_bytes"]))
    if args.json:
        config = {
            "calls": args.calls,
            "warmup": args.warmup,
            "concurrency": args.concurrency,
            "bursts": args.bursts,
            "image": image,
            "host_cpus": os.cpu_count(),
            "host": platform.node(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        summary = {"latency_ms": latency, "throughput": throughput, "rss_bytes": result["rss_bytes"]}
        args.json.write_text(json.dumps({"config": config, "summary": summary, **result}, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
