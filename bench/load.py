"""Load: many devboxes, each driven by its own concurrent client, against the same work done with raw Docker.

Against a devboxd server it starts itself, ``--devboxes`` clients run at once (at most ``--concurrency`` at a
time); each creates a devbox (``POST /v1/devboxes/create_and_await_running``), runs ``--commands`` commands in
it one after another (``POST /v1/devboxes/{id}/execute`` with a fresh command_id, then the execution's
``wait_for_status`` if it has not completed yet), checks every output, and shuts the devbox down. Every
failed or wrong operation counts as an error (the target is 0); the run does not stop at one. The server's
RSS is sampled from /proc/<pid>/status throughout for its peak.

Then the raw Docker baseline, with the same shape and concurrency: clients in threads, each creating and
starting a plain ``sleep infinity`` container made like a default devbox (bench.lifecycle's raw spec), running
the same commands as ``docker exec`` of ``bash -lc`` as the devbox user (docker-py exec_create + exec_start +
exec_inspect), and removing it. Everything the run creates is removed at the end, on errors and Ctrl-C too.

    .venv/bin/python -m bench.load [--devboxes 50] [--commands 20] [--concurrency 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx

from bench.files import RssPeak, read_rss
from bench.lifecycle import (
    API_KEY,
    HOME,
    USER,
    RawSpec,
    bench_server,
    create_raw_container,
    raise_interrupt,
    raw_spec,
    remove_containers,
)

OPTIMISTIC_TIMEOUT = 25
WAIT_HOLD_SECONDS = 25
CREATE_DEADLINE_SECONDS = 300
HTTP_TIMEOUT = httpx.Timeout(300, connect=30)
ERRORS_SHOWN = 10


@dataclass
class SideResult:
    """What one side (API or raw) measured: latencies in ms, errors as messages, the wall time of the run."""

    creates_ms: list[float] = field(default_factory=list)
    commands_ms: list[float] = field(default_factory=list)
    shutdowns_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0


def command_for(client: int, n: int) -> tuple[str, str]:
    """The n-th command of a client and the exact stdout it must produce."""
    return f"echo load-$(({client}*1000+{n}))", f"load-{client * 1000 + n}\n"


# ----- the API side ------------------------------------------------------------------------------------


def checked(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} -> {response.status_code}: {response.text[:300]}"
        )
    body: dict[str, Any] = response.json()
    return body


async def api_create(http: httpx.AsyncClient) -> str:
    """create_and_await_running; if it answers before running, long-poll wait_for_status (408: ask again)."""
    devbox = checked(await http.post("/v1/devboxes/create_and_await_running", json={}))
    deadline = time.monotonic() + CREATE_DEADLINE_SECONDS
    while devbox["status"] in ("provisioning", "initializing") and time.monotonic() < deadline:
        response = await http.post(
            f"/v1/devboxes/{devbox['id']}/wait_for_status",
            json={"statuses": ["running", "failure", "shutdown"], "timeout_seconds": WAIT_HOLD_SECONDS},
        )
        if response.status_code != 408:
            devbox = checked(response)
    if devbox["status"] != "running":
        raise RuntimeError(f"devbox {devbox['id']} ended up {devbox['status']} ({devbox.get('failure_reason')})")
    return str(devbox["id"])


async def api_command(http: httpx.AsyncClient, devbox_id: str, command: str) -> dict[str, Any]:
    """execute (fresh command_id, optimistic_timeout), then the execution's wait_for_status until completed."""
    body = {"command_id": str(uuid.uuid4()), "command": command, "optimistic_timeout": OPTIMISTIC_TIMEOUT}
    execution = checked(await http.post(f"/v1/devboxes/{devbox_id}/execute", json=body))
    url = f"/v1/devboxes/{devbox_id}/executions/{execution['execution_id']}/wait_for_status"
    while execution["status"] != "completed":
        response = await http.post(url, json={"statuses": ["completed"], "timeout_seconds": WAIT_HOLD_SECONDS})
        if response.status_code != 408:
            execution = checked(response)
    return execution


async def api_client(
    http: httpx.AsyncClient, gate: asyncio.Semaphore, index: int, commands: int, result: SideResult
) -> None:
    """One client: create a devbox, run its commands one after another, shut it down."""
    async with gate:
        t0 = time.perf_counter()
        try:
            devbox_id = await api_create(http)
        except Exception as exc:
            result.errors.append(f"client {index} create: {exc}")
            return
        result.creates_ms.append((time.perf_counter() - t0) * 1000)
        try:
            for n in range(commands):
                command, expected = command_for(index, n)
                t0 = time.perf_counter()
                try:
                    execution = await api_command(http, devbox_id, command)
                    if execution.get("exit_status") != 0 or execution.get("stdout") != expected:
                        raise RuntimeError(f"wrong result: {execution}")
                    result.commands_ms.append((time.perf_counter() - t0) * 1000)
                except Exception as exc:
                    result.errors.append(f"client {index} command {n}: {exc}")
        finally:
            t0 = time.perf_counter()
            try:
                checked(await http.post(f"/v1/devboxes/{devbox_id}/shutdown"))
                result.shutdowns_ms.append((time.perf_counter() - t0) * 1000)
            except Exception as exc:
                result.errors.append(f"client {index} shutdown: {exc}")


async def run_api(base_url: str, devboxes: int, commands: int, concurrency: int) -> SideResult:
    result = SideResult()
    limits = httpx.Limits(max_connections=concurrency + 10, max_keepalive_connections=concurrency + 10)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=HTTP_TIMEOUT, limits=limits) as http:
        gate = asyncio.Semaphore(concurrency)
        t0 = time.perf_counter()
        await asyncio.gather(*(api_client(http, gate, i, commands, result) for i in range(devboxes)))
        result.wall_s = time.perf_counter() - t0
    return result


# ----- the raw Docker side -----------------------------------------------------------------------------


def raw_client(client: docker.DockerClient, spec: RawSpec, index: int, commands: int, result: SideResult) -> None:
    """One client in a thread: create + start a container, `docker exec` its commands, remove it."""
    api = client.api
    t0 = time.perf_counter()
    try:
        container_id = create_raw_container(client, spec)
    except Exception as exc:
        result.errors.append(f"raw client {index} create: {exc}")
        return
    try:
        api.start(container_id)
        result.creates_ms.append((time.perf_counter() - t0) * 1000)
        for n in range(commands):
            command, expected = command_for(index, n)
            t0 = time.perf_counter()
            try:
                exec_id = api.exec_create(container_id, ["bash", "-lc", command], user=USER, workdir=HOME)["Id"]
                stdout, _ = api.exec_start(exec_id, demux=True)
                exit_code = api.exec_inspect(exec_id).get("ExitCode")
                if exit_code != 0 or (stdout or b"").decode() != expected:
                    raise RuntimeError(f"exit {exit_code}, stdout {stdout!r}")
                result.commands_ms.append((time.perf_counter() - t0) * 1000)
            except Exception as exc:
                result.errors.append(f"raw client {index} command {n}: {exc}")
    except Exception as exc:
        result.errors.append(f"raw client {index} start: {exc}")
    finally:
        t0 = time.perf_counter()
        try:
            api.remove_container(container_id, force=True, v=True)
            result.shutdowns_ms.append((time.perf_counter() - t0) * 1000)
        except Exception as exc:
            result.errors.append(f"raw client {index} remove: {exc}")


def run_raw(client: docker.DockerClient, spec: RawSpec, devboxes: int, commands: int, concurrency: int) -> SideResult:
    result = SideResult()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        t0 = time.perf_counter()
        futures = [pool.submit(raw_client, client, spec, i, commands, result) for i in range(devboxes)]
        for future in futures:
            future.result()
        result.wall_s = time.perf_counter() - t0
    return result


# ----- report ------------------------------------------------------------------------------------------


def percentile(values: list[float], pct: int) -> float:
    """Inclusive-method percentile (as the other benches' p90); the value itself for a single sample."""
    if not values:
        return float("nan")
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def summarize(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "mean": statistics.fmean(values) if values else float("nan"),
        "max": max(values) if values else float("nan"),
    }


def side_summary(result: SideResult, commands_total: int) -> dict[str, Any]:
    return {
        "errors": len(result.errors),
        "create_ms": summarize(result.creates_ms),
        "command_ms": summarize(result.commands_ms),
        "shutdown_ms": summarize(result.shutdowns_ms),
        "wall_s": result.wall_s,
        "commands_per_s": len(result.commands_ms) / result.wall_s if result.wall_s else float("nan"),
        "commands_ok": len(result.commands_ms),
        "commands_total": commands_total,
    }


def report(args: argparse.Namespace, summary: dict[str, dict[str, Any]], rss: dict[str, int]) -> str:
    api, raw = summary["api"], summary.get("raw")
    lines = [
        f"Load: {args.devboxes} devboxes x {args.commands} commands, {args.concurrency} concurrent clients "
        "(latencies in ms; a client's commands run one after another):",
        "",
        "| side | errors | commands ok | create p50 | create p99 | command p50 | command p99 | command mean "
        "| shutdown p50 | total (s) | commands/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [("API (devboxd)", api)] + ([("raw Docker (docker-py)", raw)] if raw else [])
    for label, s in rows:
        lines.append(
            f"| {label} | {s['errors']} | {s['commands_ok']}/{s['commands_total']} | {s['create_ms']['p50']:.0f} | "
            f"{s['create_ms']['p99']:.0f} | {s['command_ms']['p50']:.1f} | {s['command_ms']['p99']:.1f} | "
            f"{s['command_ms']['mean']:.1f} | {s['shutdown_ms']['p50']:.0f} | {s['wall_s']:.1f} | "
            f"{s['commands_per_s']:.1f} |"
        )
    if raw:
        lines.append(
            f"| API / raw | | | {api['create_ms']['p50'] / raw['create_ms']['p50']:.2f} | "
            f"{api['create_ms']['p99'] / raw['create_ms']['p99']:.2f} | "
            f"{api['command_ms']['p50'] / raw['command_ms']['p50']:.2f} | "
            f"{api['command_ms']['p99'] / raw['command_ms']['p99']:.2f} | "
            f"{api['command_ms']['mean'] / raw['command_ms']['mean']:.2f} | "
            f"{api['shutdown_ms']['p50'] / raw['shutdown_ms']['p50']:.2f} | "
            f"{api['wall_s'] / raw['wall_s']:.2f} | {api['commands_per_s'] / raw['commands_per_s']:.2f} |"
        )
    mb = {key: value / 1e6 for key, value in rss.items()}
    lines += [
        "",
        "Server RSS (VmRSS of the server process, MB = 10^6 bytes; sampled every 100 ms during the API side):",
        "",
        "| started | peak during the run | after every devbox was shut down | peak - started |",
        "|---:|---:|---:|---:|",
        f"| {mb['started']:.1f} | {mb['peak']:.1f} | {mb['after']:.1f} | {mb['peak'] - mb['started']:+.1f} |",
    ]
    return "\n".join(lines)


# ----- the run -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--devboxes", type=int, default=50, help="devboxes, one client each (default 50)")
    parser.add_argument("--commands", type=int, default=20, help="commands per devbox (default 20)")
    parser.add_argument("--concurrency", type=int, default=50, help="clients running at once (default 50)")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw Docker baseline")
    parser.add_argument("--json", type=Path, help="also write config, summary and every sample as JSON")
    args = parser.parse_args(argv)
    if args.devboxes < 1 or args.commands < 1 or args.concurrency < 1:
        parser.error("--devboxes, --commands and --concurrency must be >= 1")
    return args


def show_progress(name: str, result: SideResult) -> SideResult:
    print(f"{name}: {result.wall_s:.1f} s, {len(result.errors)} error(s)", file=sys.stderr, flush=True)
    for message in result.errors[:ERRORS_SHOWN]:
        print(f"  error: {message}", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    # A connection per concurrent raw client, so docker-py's pool neither serializes nor discards connections.
    client = docker.from_env(max_pool_size=args.concurrency + 10, timeout=300)
    instance = f"bench-{uuid.uuid4().hex[:10]}"
    results: dict[str, SideResult] = {}
    try:
        spec = raw_spec(client, instance)
        print(f"devboxd load bench: image {spec.image}, instance {instance}", file=sys.stderr)
        with bench_server(client, instance) as server:
            assert server.process is not None
            pid = server.process.pid
            rss = {"started": read_rss(pid)}
            peak = RssPeak(pid, interval=0.1)
            with peak.watching():
                print("API side: running", file=sys.stderr, flush=True)
                api = asyncio.run(run_api(server.base_url, args.devboxes, args.commands, args.concurrency))
                results["api"] = show_progress("API side", api)
            rss["peak"] = peak.peak
            rss["after"] = read_rss(pid)
        if not args.no_raw:
            print("raw Docker side: running", file=sys.stderr, flush=True)
            raw = run_raw(client, spec, args.devboxes, args.commands, args.concurrency)
            results["raw"] = show_progress("raw Docker side", raw)
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        return 130
    finally:
        # The server's containers went with bench_server; this catches raw ones a failed client left.
        removed = remove_containers(client, instance)
        if removed:
            print(f"cleanup: {removed} leftover raw container(s) removed", file=sys.stderr)
        client.close()
    total = args.devboxes * args.commands
    summary = {side: side_summary(result, total) for side, result in results.items()}
    print(report(args, summary, rss))
    if args.json:
        config = {
            "devboxes": args.devboxes,
            "commands": args.commands,
            "concurrency": args.concurrency,
            "image": spec.image,
            "host_cpus": os.cpu_count(),
            "host": platform.node(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        samples = {side: asdict(result) for side, result in results.items()}
        args.json.write_text(
            json.dumps({"config": config, "summary": summary, "rss_bytes": rss, "samples": samples}, indent=2) + "\n"
        )
        print(f"wrote {args.json}", file=sys.stderr)
    return 0 if all(not result.errors for result in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
