"""Devbox lifecycle latency: what devboxd adds on top of the Docker engine.

For N devboxes made one after another (latencies, not throughput) it times, against a devboxd server it
starts itself:

* create -> running, two ways: ``POST /v1/devboxes`` followed by long-polling ``wait_for_status``, and a
  single ``POST /v1/devboxes/create_and_await_running``;
* create -> first command: the same, plus ``POST /v1/devboxes/{id}/execute_sync {"command": "true"}``
  returning exit status 0;

and, in the same run and with the same image and container settings, the raw docker-py baseline: create +
start of a ``sleep infinity`` container, and that plus one ``bash -lc true`` exec as ``user``. The ratio
server/raw is the cost of the control plane (HTTP, database, status bookkeeping, long-poll wake-ups).

The three kinds of iteration are interleaved, in an order that rotates each round, after untimed warm-up
rounds, so that drifting machine load does not favour one side. Everything the run creates (server, data
dir, containers labelled with its instance id) is removed at the end, also on errors and Ctrl-C.

    .venv/bin/python -m bench.lifecycle [--devboxes 20] [--warmup 2] [--json results.json]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import docker
import docker.errors
import httpx

from app.config import Settings
from app.domain.resources import DEFAULT_SIZE, SIZES, fit_to_host
from app.drivers.base import LABEL_INSTANCE
from app.drivers.docker_driver import DEVBOX_CAPABILITIES
from app.drivers.docker_image import ensure_default_image
from app.services.agent_channel import AGENT_SOURCE
from app.services.devboxes import AGENT_CONTAINER_COMMAND

REPO = Path(__file__).resolve().parents[1]
API_KEY = "bench-key"
BENCH_LABEL = "dev.devboxd.bench"  # raw-baseline containers: not the server's label, so it never sees them
DEVBOX_NETWORK = Settings.model_fields["network"].default  # the server's own, made by its first create
SERVER_PIDS_LIMIT = 4096  # the server's default DEVBOX_PIDS_LIMIT, mirrored by the raw baseline
USER, HOME = "user", "/home/user"
FIRST_COMMAND = "true"
WAIT_HOLD_SECONDS = 30

Samples = dict[str, list[float]]

# (row label, server metric, raw metric): each server number is compared with the raw work it wraps.
ROWS: list[tuple[str, str, str]] = [
    ("create -> running (POST + wait_for_status)", "server_create_to_running", "raw_create_start"),
    ("create -> running (create_and_await_running)", "server_await_to_running", "raw_create_start"),
    ("create -> first command (POST + wait + exec)", "server_create_to_first_command", "raw_create_start_exec"),
    ("create -> first command (c_a_a_r + exec)", "server_await_to_first_command", "raw_create_start_exec"),
    ("first command alone (execute_sync | exec)", "server_first_command", "raw_exec"),
]


# ----- the server under test -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class BenchServer:
    """A `devboxd serve` subprocess with its own data dir, port, API key and instance label."""

    data_dir: Path
    instance: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    # Server settings on top of the bench's own (e.g. DEVBOX_WARM_POOL="" for cold creates).
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def start(self, timeout: float = 120) -> None:
        # Inherited DEVBOX_* settings (a shared database URL, say) must not leak into the benchmark server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEVBOX_")}
        env.update(
            DEVBOX_DATA_DIR=str(self.data_dir),
            DEVBOX_PORT=str(self.port),
            DEVBOX_API_KEYS=API_KEY,
            DEVBOX_INSTANCE_ID=self.instance,
        )
        env.update(self.settings)
        with self.log_path.open("ab") as log:
            # Own session: a terminal Ctrl-C reaches only us, and we stop the server in a known order.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve"],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"devboxd exited early (code {self.process.returncode})")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"devboxd did not become healthy within {timeout:g} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def remove_containers(client: docker.DockerClient, instance: str) -> int:
    """Remove every container of this run: the server's devboxes and the raw baseline's containers."""
    removed = 0
    for label in (f"{LABEL_INSTANCE}={instance}", f"{BENCH_LABEL}={instance}"):
        for container in client.api.containers(all=True, filters={"label": label}):
            try:
                client.api.remove_container(container["Id"], force=True, v=True)
                removed += 1
            except docker.errors.NotFound:
                pass
    return removed


# ----- one timed iteration of each kind ----------------------------------------------------------------


def ok_json(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} -> {response.status_code}: {response.text[:500]}"
        )
    body: dict[str, Any] = response.json()
    return body


def wait_running(http: httpx.Client, devbox_id: str, deadline_seconds: float = 120) -> None:
    """Long-poll wait_for_status until running; 408 means "still waiting, ask again"."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        response = http.post(
            f"/v1/devboxes/{devbox_id}/wait_for_status",
            json={"statuses": ["running", "failure", "shutdown"], "timeout_seconds": WAIT_HOLD_SECONDS},
        )
        if response.status_code == 408:
            continue
        ensure_running(ok_json(response))
        return
    raise RuntimeError(f"devbox {devbox_id} was not running after {deadline_seconds:g} s")


def ensure_running(devbox: dict[str, Any]) -> None:
    if devbox["status"] != "running":
        raise RuntimeError(f"devbox {devbox['id']} ended up {devbox['status']} ({devbox.get('failure_reason')})")


def settle_running(http: httpx.Client, devbox: dict[str, Any]) -> str:
    """The id of a devbox create_and_await_running answered with, once it is running: that call may answer
    before (then wait_for_status is asked), and a devbox that ended up elsewhere is an error."""
    if devbox["status"] in ("provisioning", "initializing"):
        wait_running(http, devbox["id"])
    else:
        ensure_running(devbox)
    return str(devbox["id"])


def create_running(http: httpx.Client, body: dict[str, Any] | None = None) -> str:
    """POST /v1/devboxes/create_and_await_running, then settle_running."""
    return settle_running(http, ok_json(http.post("/v1/devboxes/create_and_await_running", json=body or {})))


def first_command(http: httpx.Client, devbox_id: str) -> None:
    result = ok_json(http.post(f"/v1/devboxes/{devbox_id}/execute_sync", json={"command": FIRST_COMMAND}))
    if result.get("exit_status") != 0:
        raise RuntimeError(f"`{FIRST_COMMAND}` in {devbox_id} exited {result.get('exit_status')}: {result}")


def shutdown(http: httpx.Client, devbox_id: str) -> None:
    """Untimed; the server removes the container before answering, so it does not linger into the next round."""
    ok_json(http.post(f"/v1/devboxes/{devbox_id}/shutdown"))


def server_poll_round(http: httpx.Client) -> dict[str, float]:
    """POST /v1/devboxes, long-poll until running, run the first command."""
    t0 = time.perf_counter()
    devbox_id = ok_json(http.post("/v1/devboxes", json={}))["id"]
    try:
        wait_running(http, devbox_id)
        t_running = time.perf_counter()
        first_command(http, devbox_id)
        t_command = time.perf_counter()
    finally:
        shutdown(http, devbox_id)
    return {
        "server_create_to_running": t_running - t0,
        "server_create_to_first_command": t_command - t0,
        "server_first_command": t_command - t_running,
    }


def server_await_round(http: httpx.Client) -> dict[str, float]:
    """POST /v1/devboxes/create_and_await_running (re-polling if it returns early), run the first command."""
    t0 = time.perf_counter()
    devbox = ok_json(http.post("/v1/devboxes/create_and_await_running", json={}))
    try:
        settle_running(http, devbox)
        t_running = time.perf_counter()
        first_command(http, devbox["id"])
        t_command = time.perf_counter()
    finally:
        shutdown(http, devbox["id"])
    return {"server_await_to_running": t_running - t0, "server_await_to_first_command": t_command - t0}


@dataclass(frozen=True)
class RawSpec:
    """The container the server would create for a default devbox, for the docker-py baseline."""

    image: str
    instance: str
    cpus: float
    memory_bytes: int
    host_cpus: int = 0


def raw_spec(client: docker.DockerClient, instance: str) -> RawSpec:
    """The default devbox's image and limits (capped to the host as the server does)."""
    image = ensure_default_image(client)
    info = client.info()
    placement = fit_to_host(SIZES[DEFAULT_SIZE], int(info["NCPU"]), int(info["MemTotal"]))
    return RawSpec(image, instance, placement.cpus, placement.memory_bytes, int(info["NCPU"]))


def _private_dir() -> str:
    """A private directory for one confined raw container, with the command agent the server's containers
    run (each agent binds its own socket there). All of them sit in one temp folder, removed at exit."""
    global _PRIVATE_ROOT
    if _PRIVATE_ROOT is None:
        _PRIVATE_ROOT = tempfile.mkdtemp(prefix="bench-private-")
        atexit.register(shutil.rmtree, _PRIVATE_ROOT, True)
    folder = tempfile.mkdtemp(dir=_PRIVATE_ROOT)
    shutil.copyfile(AGENT_SOURCE, os.path.join(folder, "agent.py"))
    return folder


_PRIVATE_ROOT: str | None = None


def create_raw_container(client: docker.DockerClient, spec: RawSpec, confined: bool = False) -> str:
    """docker-py create (not start) of a `sleep infinity` container with the default devbox's image and
    limits: the plain `docker run` a user would compare against. `confined` makes the container the
    server's driver makes: the devboxd network (no traffic between containers), the reduced capability
    set, a bind-mounted private directory and the command agent listening in it as its command."""
    api = client.api
    extra: dict[str, Any] = {}
    command = ["sleep", "infinity"]
    if confined:
        private = _private_dir()
        command = ["/bin/sh", "-c", AGENT_CONTAINER_COMMAND]
        extra = {
            "network_mode": DEVBOX_NETWORK,
            "cap_drop": ["ALL"],
            "cap_add": DEVBOX_CAPABILITIES,
            "binds": {private: {"bind": "/run/devboxd-env", "mode": "rw"}},
        }
    host_config = api.create_host_config(
        init=True,
        nano_cpus=int(spec.cpus * 1e9),
        mem_limit=spec.memory_bytes,
        memswap_limit=spec.memory_bytes,
        pids_limit=SERVER_PIDS_LIMIT,
        **extra,
    )
    container_id: str = api.create_container(
        spec.image,
        command,
        labels={BENCH_LABEL: spec.instance},
        working_dir=HOME,
        user="root",
        host_config=host_config,
    )["Id"]
    return container_id


def raw_round(client: docker.DockerClient, spec: RawSpec) -> dict[str, float]:
    """docker-py create + start (as the server's driver does it), then one exec as exec_run does it."""
    api = client.api
    t0 = time.perf_counter()
    container_id = create_raw_container(client, spec)
    try:
        api.start(container_id)
        t_started = time.perf_counter()
        exec_id = api.exec_create(container_id, ["bash", "-lc", FIRST_COMMAND], user=USER, workdir=HOME)["Id"]
        api.exec_start(exec_id, demux=True)
        exit_code = api.exec_inspect(exec_id).get("ExitCode")
        t_exec = time.perf_counter()
    finally:
        api.remove_container(container_id, force=True, v=True)
    if exit_code != 0:
        raise RuntimeError(f"raw exec of `{FIRST_COMMAND}` exited {exit_code}")
    return {
        "raw_create_start": t_started - t0,
        "raw_create_start_exec": t_exec - t0,
        "raw_exec": t_exec - t_started,
    }


# ----- the run -----------------------------------------------------------------------------------------


def run_rounds(rounds: list[Callable[[], dict[str, float]]], n: int, warmup: int) -> Samples:
    """Run every kind of round warmup + n times, rotating their order; keep the timed ones, in ms."""
    samples: Samples = {}
    for i in range(warmup + n):
        shift = i % len(rounds)
        order = rounds[shift:] + rounds[:shift]
        timed = i >= warmup
        started = time.perf_counter()
        for round_fn in order:
            for metric, seconds in round_fn().items():
                if timed:
                    samples.setdefault(metric, []).append(seconds * 1000)
        tag = f"{i - warmup + 1}/{n}" if timed else f"warm-up {i + 1}/{warmup}"
        print(f"  round {tag}: {time.perf_counter() - started:.2f} s", file=sys.stderr, flush=True)
    return samples


def p90(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def summarize(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": statistics.median(values),
        "p90": p90(values),
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
    }


def ratios(summary: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    return {
        server: {
            "vs": raw,
            "p50": summary[server]["p50"] / summary[raw]["p50"],
            "p90": summary[server]["p90"] / summary[raw]["p90"],
        }
        for _, server, raw in ROWS
    }


def table(summary: dict[str, dict[str, float]]) -> str:
    head = (
        f"{'metric (ms)':<46} | {'server p50':>10} {'p90':>8} {'mean':>8} | {'raw p50':>8} {'p90':>8} "
        f"{'mean':>8} | {'x p50':>6} {'x p90':>6}"
    )
    lines = [head, "-" * len(head)]
    for label, server, raw in ROWS:
        s, r = summary[server], summary[raw]
        lines.append(
            f"{label:<46} | {s['p50']:>10.1f} {s['p90']:>8.1f} {s['mean']:>8.1f} | {r['p50']:>8.1f} "
            f"{r['p90']:>8.1f} {r['mean']:>8.1f} | {s['p50'] / r['p50']:>6.2f} {s['p90'] / r['p90']:>6.2f}"
        )
    lines.append("raw baseline: rows 1-2 docker create+start; rows 3-4 create+start+exec; row 5 the exec alone.")
    return "\n".join(lines)


def raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def bench_server(
    client: docker.DockerClient, instance: str, settings: dict[str, str] | None = None
) -> Iterator[BenchServer]:
    """A server in a temp dir; on the way out (error and Ctrl-C included) stop it and remove our containers.
    `settings` are DEVBOX_* variables for this server only (the server's defaults otherwise)."""
    with tempfile.TemporaryDirectory(prefix="devboxd-bench-") as tmp:
        server = BenchServer(Path(tmp), instance, settings=dict(settings or {}))
        try:
            server.start()
            yield server
        except Exception:
            print(f"--- devboxd log tail ---\n{server.log_tail()}", file=sys.stderr)
            raise
        finally:
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
            try:
                server.stop()
                removed = remove_containers(client, instance)
                print(f"cleanup: server stopped, {removed} leftover container(s) removed", file=sys.stderr)
            finally:
                signal.signal(signal.SIGINT, previous)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.lifecycle", description=__doc__.split("\n\n")[0])
    parser.add_argument("--devboxes", type=int, default=20, help="timed devboxes per kind (default 20; use >= 20)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds of every kind first (default 2)")
    parser.add_argument("--json", type=Path, help="also write samples and summary as JSON to this path")
    args = parser.parse_args(argv)
    if args.devboxes < 1 or args.warmup < 0:
        parser.error("--devboxes must be >= 1 and --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    client = docker.from_env()
    instance = f"bench-{uuid.uuid4().hex[:10]}"
    try:
        spec = raw_spec(client, instance)
        print(
            f"devboxd lifecycle bench: {args.devboxes} devboxes per kind (+{args.warmup} warm-up), image {spec.image}, "
            f"instance {instance}",
            file=sys.stderr,
        )
        with (
            bench_server(client, instance) as server,
            httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120) as http,
        ):
            rounds: list[Callable[[], dict[str, float]]] = [
                lambda: server_poll_round(http),
                lambda: server_await_round(http),
                lambda: raw_round(client, spec),
            ]
            samples = run_rounds(rounds, args.devboxes, args.warmup)
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        return 130
    finally:
        client.close()
    summary = {metric: summarize(values) for metric, values in samples.items()}
    print(table(summary))
    if args.json:
        result = {
            "config": {
                "devboxes": args.devboxes,
                "warmup": args.warmup,
                "image": spec.image,
                "cpus": spec.cpus,
                "memory_bytes": spec.memory_bytes,
                "host_cpus": spec.host_cpus,
                "host": platform.node(),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            "summary_ms": summary,
            "ratios": ratios(summary),
            "samples_ms": samples,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
