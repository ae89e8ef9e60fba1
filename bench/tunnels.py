"""Tunnel overhead: HTTP through devboxd's tunnel proxy against the same request sent straight to the container.

Against a devboxd server it starts itself, one devbox runs ``python3 -m http.server`` and has an open tunnel.
In the same run, interleaved, it measures:

* **latency** of a GET of a small file: through the tunnel, path-based (``/tunnels/{key}/{port}/small.txt``)
  and host-based (``Host: {port}-{key}.localhost:{api port}`` sent to 127.0.0.1), and directly to the
  container's IP on the devbox network (from docker-py's inspect of ``devbox-<id>``, NetworkSettings.Networks);
* **throughput** of downloading a large random file (default 256 MiB) through the tunnel (path-based) and
  directly, with the server's RSS growth during each tunnelled download (the proxy streams; it should stay flat);
* **completeness**: how many of a few large downloads arrive whole, each way.

The latency rows and the completeness check use ``python3 -m http.server`` as is (HTTP/1.0: one connection per
request). Throughput is measured on a second instance started with ``--protocol HTTP/1.1``, because through the
tunnel most large downloads from the HTTP/1.0 instance are cut short (a devboxd bug: a bodiless GET is forwarded
with an empty chunked body, which that server never reads, so its kernel resets the connection on close and drops
the response's tail); the HTTP/1.1 instance reads those bytes as a (bad) next request and so closes cleanly.

Ratios tunnel / direct are what the tunnel costs. Every response is checked (status, size; the large file's
sha256 once per path, untimed). Everything the run creates is removed at the end, also on errors and Ctrl-C.
Server start-up, clean-up and devbox helpers come from bench.lifecycle and bench.files.

    .venv/bin/python -m bench.tunnels [--requests 300] [--warmup 20] [--size-mib 256] [--repeats 3] [--json out]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import httpx

from app.drivers.docker_image import ensure_default_image
from bench.files import IO_CHUNK, MiB, RssPeak, devbox
from bench.lifecycle import API_KEY, bench_server, ok_json, raise_interrupt, summarize

PORT, PORT11 = 8080, 8081  # python3 -m http.server as is (HTTP/1.0), and with --protocol HTTP/1.1
WWW = "/home/user/www"
SMALL_NAME, LARGE_NAME = "small.txt", "large.bin"
SMALL_SIZE = 1024
HTTP_TIMEOUT = httpx.Timeout(600, connect=10)

# (row label, sample key)
LATENCY_KINDS: list[tuple[str, str]] = [
    ("tunnel, path-based", "tunnel_path"),
    ("tunnel, host-based", "tunnel_host"),
    ("direct to container IP", "direct"),
]


# ----- set-up inside the devbox ------------------------------------------------------------------------


def run_in(http: httpx.Client, devbox_id: str, command: str) -> str:
    result = ok_json(http.post(f"/v1/devboxes/{devbox_id}/execute_sync", json={"command": command}))
    if result.get("exit_status") != 0:
        raise RuntimeError(f"`{command}` exited {result.get('exit_status')}: {result.get('stderr') or result}")
    return str(result["stdout"])


def prepare(http: httpx.Client, devbox_id: str, size_mib: int) -> str:
    """Write the small and large files, start both http.servers, wait until they listen; return the sha256."""
    print(f"writing {size_mib} MiB random file in the devbox, starting http.server", file=sys.stderr, flush=True)
    out = run_in(
        http,
        devbox_id,
        f"mkdir -p {WWW} && head -c {SMALL_SIZE} /dev/urandom > {WWW}/{SMALL_NAME} && "
        f"head -c {size_mib * MiB} /dev/urandom > {WWW}/{LARGE_NAME} && sha256sum {WWW}/{LARGE_NAME}",
    )
    for port, extra in ((PORT, ""), (PORT11, " --protocol HTTP/1.1")):
        run_in(
            http,
            devbox_id,
            f"nohup python3 -m http.server {port}{extra} --directory {WWW} >/tmp/www-{port}.log 2>&1 & "
            f"for i in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && exit 0; sleep 0.1; done; "
            "exit 1",
        )
    return out.split()[0]


def container_ip(client: docker.DockerClient, devbox_id: str) -> str:
    networks = client.api.inspect_container(f"devbox-{devbox_id}")["NetworkSettings"]["Networks"]
    for network in networks.values():
        if network.get("IPAddress"):
            return str(network["IPAddress"])
    raise RuntimeError(f"devbox-{devbox_id} has no IP address on {list(networks)}")


# ----- the requests ------------------------------------------------------------------------------------


class Targets:
    """The three ways to the same http.server, each on its own keep-alive client."""

    def __init__(self, api_url: str, api_port: int, tunnel_key: str, ip: str) -> None:
        self.api_url, self.key, self.ip = api_url, tunnel_key, ip
        self.path_url = self.tunnel_url(PORT)
        self.host_url, self.host_header = api_url, f"{PORT}-{tunnel_key}.localhost:{api_port}"
        self.direct_url = self.direct(PORT)
        self.clients = [httpx.Client(timeout=HTTP_TIMEOUT) for _ in range(3)]

    def tunnel_url(self, port: int) -> str:
        return f"{self.api_url}/tunnels/{self.key}/{port}"

    def direct(self, port: int) -> str:
        return f"http://{self.ip}:{port}"

    def close(self) -> None:
        for client in self.clients:
            client.close()

    def small(self) -> dict[str, Callable[[], None]]:
        path_client, host_client, direct_client = self.clients
        return {
            "tunnel_path": lambda: get_small(path_client, f"{self.path_url}/{SMALL_NAME}", {}),
            "tunnel_host": lambda: get_small(host_client, f"{self.host_url}/{SMALL_NAME}", {"Host": self.host_header}),
            "direct": lambda: get_small(direct_client, f"{self.direct_url}/{SMALL_NAME}", {}),
        }


def get_small(client: httpx.Client, url: str, headers: dict[str, str]) -> None:
    response = client.get(url, headers=headers)
    if response.status_code != 200 or len(response.content) != SMALL_SIZE:
        raise RuntimeError(f"GET {url} -> {response.status_code}, {len(response.content)} bytes: {response.text[:300]}")


def download(client: httpx.Client, url: str, expected_size: int, digest: Any = None) -> float:
    """Seconds from sending the GET to the last byte read (bytes counted; hashed only when asked)."""
    size = 0
    t0 = time.perf_counter()
    with client.stream("GET", url) as response:
        if response.status_code != 200:
            response.read()
            raise RuntimeError(f"GET {url} -> {response.status_code}: {response.text[:300]}")
        for chunk in response.iter_raw(IO_CHUNK):
            size += len(chunk)
            if digest is not None:
                digest.update(chunk)
    elapsed = time.perf_counter() - t0
    if size != expected_size:
        raise RuntimeError(f"GET {url}: {size} bytes, expected {expected_size}")
    return elapsed


# ----- the runs ----------------------------------------------------------------------------------------


def run_latency(
    calls: dict[str, Callable[[], None]], n: int, warmup: int
) -> tuple[dict[str, list[float]], dict[str, list[str]]]:
    """warmup + n rounds of one request per kind, in an order that rotates every round: ms of the good ones,
    and the failed ones (not timed, not retried) per kind."""
    kinds = list(calls)
    samples: dict[str, list[float]] = {kind: [] for kind in kinds}
    errors: dict[str, list[str]] = {kind: [] for kind in kinds}
    for i in range(warmup + n):
        shift = i % len(kinds)
        for kind in kinds[shift:] + kinds[:shift]:
            t0 = time.perf_counter()
            try:
                calls[kind]()
            except (httpx.HTTPError, RuntimeError) as exc:
                errors[kind].append(repr(exc))
                continue
            if i >= warmup:
                samples[kind].append((time.perf_counter() - t0) * 1000)
        if (i + 1) % 50 == 0:
            print(f"  latency round {i + 1}/{warmup + n}", file=sys.stderr, flush=True)
    return samples, errors


def run_throughput(
    targets: Targets, server_pid: int, size_mib: int, sha256: str, repeats: int
) -> tuple[dict[str, list[float]], list[int]]:
    """One untimed, hashed download per side, then `repeats` timed ones alternating who goes first."""
    path_client, _, direct_client = targets.clients
    size = size_mib * MiB
    sides: list[tuple[str, httpx.Client, str]] = [
        ("tunnel_path", path_client, f"{targets.tunnel_url(PORT11)}/{LARGE_NAME}"),
        ("direct", direct_client, f"{targets.direct(PORT11)}/{LARGE_NAME}"),
    ]
    for key, client, url in sides:
        digest = hashlib.sha256()
        download(client, url, size, digest)
        if digest.hexdigest() != sha256:
            raise RuntimeError(f"{key}: sha256 {digest.hexdigest()} != the file's {sha256}")
    print(f"  {size_mib} MiB: both paths verified by sha256", file=sys.stderr, flush=True)
    seconds: dict[str, list[float]] = {key: [] for key, _, _ in sides}
    rss_growth: list[int] = []
    for i in range(repeats):
        for key, client, url in sides if i % 2 == 0 else sides[::-1]:
            if key == "direct":
                seconds[key].append(download(client, url, size))
                continue
            rss = RssPeak(server_pid)
            with rss.watching():
                seconds[key].append(download(client, url, size))
            rss_growth.append(rss.growth)
        print(f"  {size_mib} MiB download {i + 1}/{repeats}", file=sys.stderr, flush=True)
    return seconds, rss_growth


def run_completeness(targets: Targets, size_mib: int, n: int) -> dict[str, int]:
    """Of `n` downloads per side from the HTTP/1.0 http.server, how many arrive whole. Read as fast as they
    come and only counted (hashing slows the reader, which hides the bug more often); the throughput phase
    already checked the content by sha256."""
    path_client, _, direct_client = targets.clients
    whole = {"tunnel_path": 0, "direct": 0}
    for i in range(n):
        for key, client, url in (
            ("tunnel_path", path_client, f"{targets.path_url}/{LARGE_NAME}"),
            ("direct", direct_client, f"{targets.direct_url}/{LARGE_NAME}"),
        ):
            try:
                download(client, url, size_mib * MiB)
            except (httpx.HTTPError, RuntimeError):
                continue
            whole[key] += 1
        print(f"  completeness {i + 1}/{n}", file=sys.stderr, flush=True)
    return whole


# ----- report ------------------------------------------------------------------------------------------


def report(
    latency: dict[str, dict[str, float]],
    errors: dict[str, list[str]],
    throughput: dict[str, float],
    rss_growth_mb: float,
    whole: dict[str, int],
    args: argparse.Namespace,
) -> str:
    direct = latency["direct"]
    lines = [
        f"GET of a {SMALL_SIZE} B file from `python3 -m http.server`, ms ({args.requests} requests per kind after "
        f"{args.warmup} warm-up rounds, interleaved; each kind on its own keep-alive client):",
        "",
        "| path | p50 | p90 | mean | x direct p50 | x direct p90 | failed |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, key in LATENCY_KINDS:
        s = latency[key]
        lines.append(
            f"| {label} | {s['p50']:.2f} | {s['p90']:.2f} | {s['mean']:.2f} | {s['p50'] / direct['p50']:.2f} | "
            f"{s['p90'] / direct['p90']:.2f} | {len(errors[key])} |"
        )
    lines += [
        "",
        f"Download of a {args.size_mib} MiB random file from `python3 -m http.server --protocol HTTP/1.1` "
        f"(median of {args.repeats}):",
        "",
        "| path | MiB/s | x direct | server RSS growth (worst) |",
        "|---|---:|---:|---:|",
        f"| tunnel, path-based | {throughput['tunnel_path']:.1f} | "
        f"{throughput['tunnel_path'] / throughput['direct']:.2f} | {rss_growth_mb:.1f} MB |",
        f"| direct to container IP | {throughput['direct']:.1f} | 1.00 | - |",
        "",
        f"Whole {args.size_mib} MiB downloads (all bytes arrived) from `python3 -m http.server` (HTTP/1.0): "
        f"tunnel {whole['tunnel_path']}/{args.check}, direct {whole['direct']}/{args.check}.",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.tunnels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="timed small GETs per kind (default 300)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed rounds of every kind first (default 20)")
    parser.add_argument("--size-mib", type=int, default=256, help="large file size in MiB (default 256)")
    parser.add_argument("--repeats", type=int, default=3, help="timed large downloads per side (default 3)")
    parser.add_argument("--check", type=int, default=5, help="completeness downloads per side (default 5)")
    parser.add_argument("--json", type=Path, help="also write config, summary and samples as JSON to this path")
    args = parser.parse_args(argv)
    if args.requests < 2 or args.warmup < 0 or args.size_mib < 1 or args.repeats < 1 or args.check < 0:
        parser.error("--requests >= 2, --warmup >= 0, --size-mib >= 1, --repeats >= 1, --check >= 0")
    return args


def run(client: docker.DockerClient, args: argparse.Namespace, instance: str) -> dict[str, Any]:
    with (
        bench_server(client, instance) as server,
        httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=HTTP_TIMEOUT
        ) as http,
        devbox(http) as devbox_id,
    ):
        assert server.process is not None
        tunnel = ok_json(http.post(f"/v1/devboxes/{devbox_id}/enable_tunnel", json={"auth_mode": "open"}))
        sha256 = prepare(http, devbox_id, args.size_mib)
        ip = container_ip(client, devbox_id)
        print(f"devbox {devbox_id}: container IP {ip}, tunnel key {tunnel['tunnel_key']}", file=sys.stderr)
        targets = Targets(server.base_url, server.port, tunnel["tunnel_key"], ip)
        try:
            latency, errors = run_latency(targets.small(), args.requests, args.warmup)
            seconds, rss_growth = run_throughput(targets, server.process.pid, args.size_mib, sha256, args.repeats)
            whole = run_completeness(targets, args.size_mib, args.check)
        finally:
            targets.close()
    return {
        "latency_ms": latency,
        "latency_errors": errors,
        "download_s": seconds,
        "rss_growth_bytes": rss_growth,
        "whole_downloads": whole,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    client = docker.from_env()
    instance = f"bench-{uuid.uuid4().hex[:10]}"
    try:
        image = ensure_default_image(client)
        print(
            f"devboxd tunnel bench: {args.requests} GETs per kind (+{args.warmup} warm-up), {args.size_mib} MiB x "
            f"{args.repeats}, image {image}, instance {instance}",
            file=sys.stderr,
        )
        samples = run(client, args, instance)
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        return 130
    finally:
        client.close()
    latency = {key: summarize(values) for key, values in samples["latency_ms"].items()}
    throughput = {
        key: statistics.median(args.size_mib / s for s in values) for key, values in samples["download_s"].items()
    }
    rss_growth_mb = max(samples["rss_growth_bytes"]) / 1e6
    print(report(latency, samples["latency_errors"], throughput, rss_growth_mb, samples["whole_downloads"], args))
    if args.json:
        config = {**vars(args), "json": str(args.json), "host_cpus": os.cpu_count(), "host": platform.node()}
        config["time"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        summary = {
            "latency_ms": latency,
            "latency_failed": {key: len(v) for key, v in samples["latency_errors"].items()},
            "download_mib_s": throughput,
            "max_rss_growth_mb": rss_growth_mb,
            "whole_downloads": {**samples["whole_downloads"], "of": args.check},
        }
        args.json.write_text(json.dumps({"config": config, "summary": summary, "samples": samples}, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
