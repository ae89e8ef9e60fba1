"""Disk snapshot latency: devboxd's snapshot_disk and create-from-snapshot against raw docker-py.

For each size of changes (default 10 MiB and 500 MiB of random data written with ``head -c`` from
``/dev/urandom`` into the home directory), against a devboxd server it starts itself:

* **snapshot** — ``POST /v1/devboxes/{id}/snapshot_disk`` (synchronous: answers once the commit is
  complete), beside docker-py ``container.commit()`` (paused, as the server commits) of a plain container
  of the same image and settings with the same amount written the same way;
* **create from snapshot -> first command** — ``POST /v1/devboxes/create_and_await_running
  {"snapshot_id": ...}`` then ``POST /v1/devboxes/{id}/execute_sync {"command": "true"}``, beside
  ``docker run -d <committed image>`` (create + start, same settings) then one ``bash -lc true`` exec as
  ``user``;
* as a reference, the same create -> first command from the default image (the devbox that is then
  snapshotted, and the raw container that is then committed), to tell the snapshot-specific cost from the
  control plane's usual one (bench.lifecycle measures that in depth).

Each is repeated ``--repeats`` times per size; the API and raw sides alternate which goes first, after an
untimed warm-up round. The ratio API / raw is what devboxd adds on top of the Docker engine. Everything the
run creates (server, devboxes, snapshots and their images, raw containers and committed images) is removed at
the end, also on errors and Ctrl-C. Server start-up and container clean-up come from bench.lifecycle.

    .venv/bin/python -m bench.snapshots [--sizes 10,500] [--repeats 3] [--warmup 1] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx

from bench.files import parse_sizes
from bench.lifecycle import (
    API_KEY,
    BENCH_LABEL,
    FIRST_COMMAND,
    HOME,
    USER,
    RawSpec,
    bench_server,
    create_raw_container,
    create_running,
    ok_json,
    raise_interrupt,
    raw_spec,
)

MiB = 1024**2
CHANGES = f"{HOME}/changes.bin"
SERVER_SNAPSHOT_REPOSITORY = "devboxd-snapshot"  # the server tags snapshot images devboxd-snapshot:<snapshot id>
RAW_REPOSITORY = "devboxd-bench-snapshot"
HTTP_TIMEOUT = httpx.Timeout(900, connect=10)

# (row label, API metric, raw metric)
ROWS: list[tuple[str, str, str]] = [
    ("snapshot: snapshot_disk vs commit()", "api_snapshot", "raw_commit"),
    ("create from snapshot -> first command", "api_create_first_command", "raw_run_first_command"),
    ("(reference) create from default image -> first command", "api_fresh_first_command", "raw_fresh_first_command"),
]


def write_command(size_mib: int) -> str:
    return f"head -c {size_mib * MiB} /dev/urandom > {CHANGES}"


# ----- the API side ------------------------------------------------------------------------------------


@dataclass
class ApiSide:
    http: httpx.Client
    snapshots: list[str] = field(default_factory=list)  # every snapshot taken, for the final image sweep

    def create(self, **body: Any) -> str:
        return create_running(self.http, body)

    def execute(self, devbox_id: str, command: str) -> None:
        result = ok_json(self.http.post(f"/v1/devboxes/{devbox_id}/execute_sync", json={"command": command}))
        if result.get("exit_status") != 0:
            raise RuntimeError(f"`{command}` in {devbox_id} exited {result.get('exit_status')}: {result}")

    def shutdown(self, devbox_id: str) -> None:
        try:
            ok_json(self.http.post(f"/v1/devboxes/{devbox_id}/shutdown", params={"force": "true"}))
        except (httpx.HTTPError, RuntimeError) as exc:
            print(f"shutdown of {devbox_id} failed ({exc}); left to the label clean-up", file=sys.stderr)

    def delete_snapshot(self, snapshot_id: str) -> None:
        try:
            ok_json(self.http.post(f"/v1/devboxes/disk_snapshots/{snapshot_id}/delete"))
        except (httpx.HTTPError, RuntimeError) as exc:
            print(f"delete of {snapshot_id} failed ({exc}); its image is removed at the end", file=sys.stderr)

    def round(self, size_mib: int) -> dict[str, float]:
        """Untimed: a devbox with `size_mib` of changes. Timed: its snapshot, then a devbox from it + one command."""
        t_start = time.perf_counter()
        source = self.create()
        child: str | None = None
        snapshot_id: str | None = None
        try:
            self.execute(source, FIRST_COMMAND)
            t_fresh = time.perf_counter() - t_start
            self.execute(source, write_command(size_mib))
            t0 = time.perf_counter()
            view = ok_json(self.http.post(f"/v1/devboxes/{source}/snapshot_disk", json={"name": "bench"}))
            t_snapshot = time.perf_counter() - t0
            snapshot_id = str(view["id"])
            self.snapshots.append(snapshot_id)

            t1 = time.perf_counter()
            child = self.create(snapshot_id=snapshot_id)
            self.execute(child, FIRST_COMMAND)
            t_first = time.perf_counter() - t1
        finally:
            for devbox_id in (child, source):
                if devbox_id:
                    self.shutdown(devbox_id)
            if snapshot_id:
                self.delete_snapshot(snapshot_id)
        return {
            "api_snapshot": t_snapshot,
            "api_create_first_command": t_first,
            "api_fresh_first_command": t_fresh,
            "api_size_bytes": view["size_bytes"],
        }


# ----- the raw docker-py side --------------------------------------------------------------------------


@dataclass
class RawSide:
    client: docker.DockerClient
    spec: RawSpec
    images: list[str] = field(default_factory=list)

    def exec_ok(self, container_id: str, command: str) -> None:
        """One exec as the devbox user in its home, as exec_run does it (and the server's driver)."""
        api = self.client.api
        exec_id = api.exec_create(container_id, ["bash", "-lc", command], user=USER, workdir=HOME)["Id"]
        api.exec_start(exec_id, demux=True)
        code = api.exec_inspect(exec_id).get("ExitCode")
        if code != 0:
            raise RuntimeError(f"raw exec of `{command}` exited {code}")

    def remove(self, container_id: str | None) -> None:
        if container_id:
            with suppress(docker.errors.NotFound):
                self.client.api.remove_container(container_id, force=True, v=True)

    def round(self, size_mib: int, tag: str) -> dict[str, float]:
        """Untimed: a started container with the same changes. Timed: commit; docker run -d of it + one exec."""
        api = self.client.api
        image = f"{RAW_REPOSITORY}:{tag}"
        t_start = time.perf_counter()
        source: str | None = create_raw_container(self.client, self.spec)
        child: str | None = None
        try:
            api.start(source)
            self.exec_ok(source, FIRST_COMMAND)
            t_fresh = time.perf_counter() - t_start
            self.exec_ok(source, write_command(size_mib))
            t0 = time.perf_counter()
            api.commit(
                source,
                repository=RAW_REPOSITORY,
                tag=tag,
                pause=True,
                conf={"Labels": {BENCH_LABEL: self.spec.instance}},
            )
            t_commit = time.perf_counter() - t0
            self.images.append(image)

            t1 = time.perf_counter()
            child = create_raw_container(self.client, replace(self.spec, image=image))
            api.start(child)
            self.exec_ok(child, FIRST_COMMAND)
            t_first = time.perf_counter() - t1
        finally:
            self.remove(child)
            self.remove(source)
            with suppress(docker.errors.NotFound):
                api.remove_image(image)
        return {"raw_commit": t_commit, "raw_run_first_command": t_first, "raw_fresh_first_command": t_fresh}


# ----- the run -----------------------------------------------------------------------------------------


def run_size(api: ApiSide, raw: RawSide, size_mib: int, repeats: int, warmup: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {}
    for i in range(warmup + repeats):
        timed = i >= warmup
        sides: list[Callable[[], dict[str, float]]] = [
            partial(api.round, size_mib),
            partial(raw.round, size_mib, f"{raw.spec.instance}-{size_mib}-{i}"),
        ]
        started = time.perf_counter()
        for side in sides if i % 2 == 0 else sides[::-1]:
            for metric, value in side().items():
                if timed:
                    samples.setdefault(metric, []).append(value)
        label = f"repeat {i - warmup + 1}/{repeats}" if timed else f"warm-up {i + 1}/{warmup}"
        print(f"[{size_mib} MiB] {label}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return samples


def remove_images(client: docker.DockerClient, names: list[str]) -> int:
    removed = 0
    for name in names:
        try:
            client.api.remove_image(name, force=True)
            removed += 1
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            print(f"could not remove image {name}: {exc}", file=sys.stderr)
    return removed


def run(
    client: docker.DockerClient,
    args: argparse.Namespace,
    spec: RawSpec,
    server_settings: dict[str, str] | None = None,
) -> dict[int, dict[str, list[float]]]:
    """Every size (args.sizes, args.repeats, args.warmup) against a server of its own; seconds per metric."""
    results: dict[int, dict[str, list[float]]] = {}
    raw = RawSide(client, spec)
    api: ApiSide | None = None
    try:
        with (
            bench_server(client, spec.instance, server_settings) as server,
            httpx.Client(
                base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=HTTP_TIMEOUT
            ) as http,
        ):
            api = ApiSide(http)
            for n, size_mib in enumerate(args.sizes):
                results[size_mib] = run_size(api, raw, size_mib, args.repeats, args.warmup if n == 0 else 0)
    finally:
        # The server deletes snapshot images once unused; whatever a failure left behind goes here.
        leftovers = [f"{SERVER_SNAPSHOT_REPOSITORY}:{s}" for s in (api.snapshots if api else [])] + raw.images
        bench_images = [i["Id"] for i in client.api.images(filters={"label": f"{BENCH_LABEL}={spec.instance}"})]
        removed = remove_images(client, leftovers + bench_images)
        print(f"cleanup: {removed} leftover image(s) removed", file=sys.stderr)
    return results


# ----- report ------------------------------------------------------------------------------------------


def summarize(size_mib: int, samples: dict[str, list[float]]) -> dict[str, Any]:
    times = {metric: values for metric, values in samples.items() if metric != "api_size_bytes"}
    med = {metric: statistics.median(values) for metric, values in times.items()}
    return {
        "size_mib": size_mib,
        "median_s": med,
        "min_s": {metric: min(values) for metric, values in times.items()},
        "max_s": {metric: max(values) for metric, values in times.items()},
        "ratio": {api: med[api] / med[raw] for _, api, raw in ROWS},
        "api_size_bytes": statistics.median(samples["api_size_bytes"]),
    }


def table(summaries: list[dict[str, Any]], repeats: int) -> str:
    lines = [
        "| changes | operation | API median ms | API min-max | raw median ms | raw min-max | API/raw |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for summary in summaries:
        for label, api, raw in ROWS:
            lo, hi, med = summary["min_s"], summary["max_s"], summary["median_s"]
            lines.append(
                f"| {summary['size_mib']} MiB | {label} | {med[api] * 1000:.0f} | "
                f"{lo[api] * 1000:.0f}-{hi[api] * 1000:.0f} | {med[raw] * 1000:.0f} | "
                f"{lo[raw] * 1000:.0f}-{hi[raw] * 1000:.0f} | {summary['ratio'][api]:.2f} |"
            )
    sizes = ", ".join(f"{s['size_mib']} MiB -> {s['api_size_bytes'] / MiB:.1f} MiB" for s in summaries)
    lines.append("")
    lines.append(
        f"Median of {repeats} per row; min-max over the same {repeats}. Raw: docker-py `commit(pause=True)` of an "
        "equivalent container; `docker run -d` (create + start, same image and limits) of the committed image, then "
        f"one `bash -lc true` exec as `{USER}`. Snapshot size_bytes reported by the API: {sizes}."
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.snapshots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=[10, 500], help="MiB of changes (default 10,500)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per size and side (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds before the first size (default 1)")
    parser.add_argument("--json", type=Path, help="also write config, summary and samples as JSON to this path")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    client = docker.from_env()
    instance = f"bench-{uuid.uuid4().hex[:10]}"
    try:
        spec = raw_spec(client, instance)
        print(
            f"devboxd snapshot bench: changes {args.sizes} MiB x {args.repeats} (+{args.warmup} warm-up), "
            f"image {spec.image}, instance {instance}",
            file=sys.stderr,
        )
        results = run(client, args, spec)
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        return 130
    finally:
        client.close()
    summaries = [summarize(size, samples) for size, samples in results.items()]
    print(table(summaries, args.repeats))
    if args.json:
        config = {
            "sizes_mib": args.sizes,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "image": spec.image,
            "cpus": spec.cpus,
            "memory_bytes": spec.memory_bytes,
            "host_cpus": spec.host_cpus,
            "host": platform.node(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        samples = {str(size): metrics for size, metrics in results.items()}
        args.json.write_text(json.dumps({"config": config, "summary": summaries, "samples": samples}, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
