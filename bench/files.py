"""File transfer throughput: devboxd's upload_file / download_file against `docker cp`.

For each file size it writes one random file on the host, then, against a devboxd server it starts itself:

* **API upload** — ``POST /v1/devboxes/{id}/upload_file``, a multipart body (``path`` field, then the
  ``file`` part) streamed from disk, so neither the client nor (by design) the server ever holds the whole
  file;
* **API download** — ``POST /v1/devboxes/{id}/download_file {"path": ...}``, the octet-stream answer
  streamed to a file on disk;

each with two clients: **curl** (the headline: a native CLI, as ``docker cp`` is) and **httpx** (a Python
client, which on a small machine spends a good part of a core on HTTP at these rates, beside the server
and dockerd); and, in the same run, the baseline users compare against: ``docker cp`` host -> container
and container -> host (the docker CLI) on a plain container of the same image and settings. Every
downloaded copy is checked against the source's sha256 (after the clock stops), which also proves the
uploads were intact.

The curl commands, as a user would type them::

    curl -sS --fail-with-body -H 'Authorization: Bearer KEY' --form-string path=NAME -F file=@FILE \\
        http://HOST/v1/devboxes/ID/upload_file
    curl -sS --fail -o FILE -H 'Authorization: Bearer KEY' -H 'Content-Type: application/json' \\
        -d '{"path": "NAME"}' http://HOST/v1/devboxes/ID/download_file

(curl is in most base images; on Debian/Ubuntu ``apt-get install -y curl``.)

While each API transfer runs, a thread samples the server's VmRSS every ~50 ms; the reported growth is
the peak minus the RSS just before the transfer: a streaming server should stay flat (target < 100 MB)
whatever the file size. Throughput is MiB/s, median over ``--repeats``; the ratio API / docker cp is what
devboxd costs on top of Docker (target >= 0.8).

Every upload, the API's and docker cp's alike, writes a file that is not there: the previous copy is
removed first (``docker exec rm -f``, untimed). ``docker cp`` over an existing file unlinks it right before
writing, so the kernel hands its just-freed pages straight back; upload_file keeps the old file until the
new one is complete (an interrupted upload never loses it), so its pages come from elsewhere. On a VM whose
balloon reports free pages to the host, as this one's does, pages not recently freed cost ~2-2.5 s of kernel
time per GiB written against ~0.4 s for just-freed ones: replacing the file would time that, not the
transfer.

The pairs (upload + download) of each client and of docker cp take turns going first, so drifting machine
load does not favour one side. Everything the run creates (server, devboxes, raw containers, temp files) is
removed at the end, also on errors and Ctrl-C. Server start-up and container clean-up come from
bench.lifecycle.

    .venv/bin/python -m bench.files [--sizes 256,1024] [--repeats 3] [--clients curl,httpx] [--json out.json]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx

from app.domain.devbox import container_name
from bench.lifecycle import (
    API_KEY,
    HOME,
    RawSpec,
    bench_server,
    create_raw_container,
    create_running,
    ok_json,
    raise_interrupt,
    raw_spec,
)

MiB = 1024**2
WRITE_BLOCK = 8 * MiB  # random source file is written in blocks of this size
IO_CHUNK = 1 * MiB  # client read/write chunk for uploads, downloads and hashing
RSS_INTERVAL = 0.05
REMOTE_NAME = "devboxd-bench.bin"  # relative: lands in the devbox user's home
RAW_PATH = f"{HOME}/{REMOTE_NAME}"  # the same place in the raw container
HTTP_TIMEOUT = httpx.Timeout(600, connect=10)
RSS_TARGET_MB = 100
RATIO_TARGET = 0.8

# (row label, API operation, docker cp metric); a client's metric is "<client>_<operation>", e.g. curl_upload.
DIRECTIONS: list[tuple[str, str, str]] = [
    ("upload (host -> box)", "upload", "cp_in"),
    ("download (box -> host)", "download", "cp_out"),
]


# ----- host files --------------------------------------------------------------------------------------


def write_random_file(path: Path, size: int) -> str:
    """Write `size` random bytes to `path` in WRITE_BLOCK blocks; return their sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left > 0:
            block = os.urandom(min(WRITE_BLOCK, left))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while chunk := src.read(WRITE_BLOCK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_copy(path: Path, expected: str, what: str) -> None:
    """Compare `path` with the source's sha256, then delete it (they are as big as the source)."""
    try:
        actual = sha256_file(path)
    finally:
        path.unlink(missing_ok=True)
    if actual != expected:
        raise RuntimeError(f"{what}: sha256 {actual} != source {expected}")


# ----- server memory -----------------------------------------------------------------------------------


def read_rss(pid: int) -> int:
    """VmRSS of `pid` in bytes, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class RssPeak:
    """Samples a process's RSS in a thread while in use; `growth` is the peak minus the RSS at the start."""

    pid: int
    interval: float = RSS_INTERVAL
    before: int = 0
    peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def growth(self) -> int:
        return self.peak - self.before

    def _sample(self) -> None:
        with suppress(OSError):  # the server is gone: the transfer fails and reports it
            self.peak = max(self.peak, read_rss(self.pid))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    @contextmanager
    def watching(self) -> Iterator[RssPeak]:
        self.before = self.peak = read_rss(self.pid)
        self._stop.clear()
        thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
            self._sample()


# ----- the API side ------------------------------------------------------------------------------------


def multipart_body(remote_path: str, source: Path, boundary: str) -> tuple[int, Iterator[bytes]]:
    """upload_file's multipart body as a generator over the file (path field first), and its exact length."""
    preamble = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="path"\r\n\r\n'
        f"{remote_path}\r\n"
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{source.name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    closing = f"\r\n--{boundary}--\r\n".encode()

    def chunks() -> Iterator[bytes]:
        yield preamble
        with source.open("rb") as src:
            while chunk := src.read(IO_CHUNK):
                yield chunk
        yield closing

    return len(preamble) + source.stat().st_size + len(closing), chunks()


class HttpxClient:
    """The API through httpx, in this process: the Python client's view."""

    name = "httpx"

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def upload(self, devbox_id: str, source: Path) -> float:
        """Seconds from sending the upload to its answer (the server answers once the file is in place)."""
        boundary = uuid.uuid4().hex
        length, body = multipart_body(REMOTE_NAME, source, boundary)
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(length)}
        t0 = time.perf_counter()
        ok_json(self.http.post(f"/v1/devboxes/{devbox_id}/upload_file", content=body, headers=headers))
        return time.perf_counter() - t0

    def download(self, devbox_id: str, target: Path) -> float:
        """Seconds from sending the download request to the last byte written to `target`."""
        t0 = time.perf_counter()
        with (
            self.http.stream("POST", f"/v1/devboxes/{devbox_id}/download_file", json={"path": REMOTE_NAME}) as answer,
            target.open("wb") as out,
        ):
            if answer.status_code != 200:
                answer.read()
                ok_json(answer)  # raises with the error body
            for chunk in answer.iter_raw(IO_CHUNK):
                out.write(chunk)
        return time.perf_counter() - t0


class CurlClient:
    """The API through the curl CLI, one process per transfer as a user would run it: native code on the
    client side, like the docker CLI it is compared with."""

    name = "curl"

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url
        self.auth = f"Authorization: Bearer {api_key}"

    def _curl(self, args: list[str], what: str) -> tuple[float, str]:
        """Seconds the command took, and its stdout; raises with curl's message and the error body."""
        t0 = time.perf_counter()
        done = subprocess.run(["curl", "-sS", "-H", self.auth, *args], capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"curl {what} exited {done.returncode}: {done.stderr.strip()} {done.stdout[:500]}")
        return elapsed, done.stdout

    def upload(self, devbox_id: str, source: Path) -> float:
        url = f"{self.base_url}/v1/devboxes/{devbox_id}/upload_file"
        seconds, answer = self._curl(
            ["--fail-with-body", "--form-string", f"path={REMOTE_NAME}", "-F", f"file=@{source}", url], "upload"
        )
        if json.loads(answer) != {}:
            raise RuntimeError(f"upload_file answered {answer[:500]}")
        return seconds

    def download(self, devbox_id: str, target: Path) -> float:
        url = f"{self.base_url}/v1/devboxes/{devbox_id}/download_file"
        body = json.dumps({"path": REMOTE_NAME})
        try:
            seconds, _ = self._curl(
                ["--fail", "-o", str(target), "-H", "Content-Type: application/json", "-d", body, url], "download"
            )
        except RuntimeError:
            target.unlink(missing_ok=True)
            raise
        return seconds


Client = HttpxClient | CurlClient
CLIENTS = ("curl", "httpx")  # the first one that runs is the headline


@contextmanager
def devbox(http: httpx.Client) -> Iterator[str]:
    """A running devbox, shut down afterwards (bench_server's label clean-up catches any that is not)."""
    devbox_id = create_running(http)
    try:
        yield devbox_id
    finally:
        try:
            ok_json(http.post(f"/v1/devboxes/{devbox_id}/shutdown"))
        except (httpx.HTTPError, RuntimeError) as exc:
            print(f"shutdown of {devbox_id} failed ({exc}); left to the label clean-up", file=sys.stderr)


# ----- the docker cp side ------------------------------------------------------------------------------


@contextmanager
def raw_container(client: docker.DockerClient, spec: RawSpec) -> Iterator[str]:
    """A started container as the server would make it, labelled for clean-up, removed afterwards."""
    container_id = create_raw_container(client, spec)
    try:
        client.api.start(container_id)
        yield container_id
    finally:
        with suppress(docker.errors.NotFound):
            client.api.remove_container(container_id, force=True, v=True)


def remove_in_container(container: str, path: str) -> None:
    """Remove `path` in `container`, so that the next upload writes a new file (see the module's docstring)."""
    done = subprocess.run(["docker", "exec", container, "rm", "-f", path], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"rm -f {path} in {container} exited {done.returncode}: {done.stderr.strip()}")


def docker_cp(src: str, dst: str) -> float:
    """Seconds the docker CLI takes for `docker cp src dst`."""
    t0 = time.perf_counter()
    done = subprocess.run(["docker", "cp", src, dst], capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"docker cp {src} {dst} exited {done.returncode}: {done.stderr.strip()}")
    return elapsed


# ----- one size ----------------------------------------------------------------------------------------


@dataclass
class SizeRun:
    """What one size needs: the source file, its hash, where copies go, and the two containers."""

    size: int
    source: Path
    sha256: str
    workdir: Path
    server_pid: int
    devbox_id: str
    container_id: str
    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, metric: str, value: float) -> None:
        self.samples.setdefault(metric, []).append(value)

    def api_pair(self, client: Client) -> None:
        """Upload then download through `client`, with the server's RSS watched during each."""
        rss = RssPeak(self.server_pid)
        remove_in_container(container_name(self.devbox_id), RAW_PATH)
        with rss.watching():
            seconds = client.upload(self.devbox_id, self.source)
        self.add(f"{client.name}_upload", seconds)
        self.add(f"{client.name}_upload_rss_growth", rss.growth)
        copy = self.workdir / f"{client.name}-download.bin"
        with rss.watching():
            seconds = client.download(self.devbox_id, copy)
        self.add(f"{client.name}_download", seconds)
        self.add(f"{client.name}_download_rss_growth", rss.growth)
        verify_copy(copy, self.sha256, f"API upload + download ({client.name})")

    def cp_pair(self) -> None:
        remove_in_container(self.container_id, RAW_PATH)
        self.add("cp_in", docker_cp(str(self.source), f"{self.container_id}:{RAW_PATH}"))
        copy = self.workdir / "cp-out.bin"
        self.add("cp_out", docker_cp(f"{self.container_id}:{RAW_PATH}", str(copy)))
        verify_copy(copy, self.sha256, "docker cp in + out")


def run_size(
    clients: list[Client],
    http: httpx.Client,
    docker_client: docker.DockerClient,
    spec: RawSpec,
    server_pid: int,
    size_mib: int,
    repeats: int,
    workdir: Path,
) -> dict[str, list[float]]:
    """Write the source, make one devbox and one raw container, rotate the clients' and docker cp's pairs."""
    size = size_mib * MiB
    source = workdir / f"source-{size_mib}MiB.bin"
    print(f"[{size_mib} MiB] writing random source file", file=sys.stderr, flush=True)
    sha = write_random_file(source, size)
    try:
        with devbox(http) as devbox_id, raw_container(docker_client, spec) as container_id:
            run = SizeRun(size, source, sha, workdir, server_pid, devbox_id, container_id)
            pairs: list[Callable[[], None]] = [functools.partial(run.api_pair, c) for c in clients] + [run.cp_pair]
            for i in range(repeats):
                started = time.perf_counter()
                shift = i % len(pairs)
                for pair in pairs[shift:] + pairs[:shift]:
                    pair()
                print(
                    f"[{size_mib} MiB] repeat {i + 1}/{repeats}: {time.perf_counter() - started:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
            return run.samples
    finally:
        source.unlink(missing_ok=True)


# ----- report ------------------------------------------------------------------------------------------


def summarize(size_mib: int, clients: list[str], samples: dict[str, list[float]]) -> dict[str, Any]:
    """Median MiB/s per metric, each client's ratio to docker cp, and the worst RSS growth per client and
    direction. `clients` in the order given: the first is the headline."""
    metrics = [f"{name}_{operation}" for name in clients for _, operation, _ in DIRECTIONS] + ["cp_in", "cp_out"]
    mib_s = {metric: statistics.median(size_mib / s for s in samples[metric]) for metric in metrics}
    ratio, rss = {}, {}
    for name in clients:
        for _, operation, cp in DIRECTIONS:
            metric = f"{name}_{operation}"
            ratio[metric] = mib_s[metric] / mib_s[cp]
            rss[metric] = max(samples[f"{metric}_rss_growth"]) / 1e6
    return {"size_mib": size_mib, "clients": clients, "median_mib_s": mib_s, "ratio": ratio, "max_rss_growth_mb": rss}


def table(summaries: list[dict[str, Any]], repeats: int) -> str:
    """One row per size and direction: docker cp, then each client's MiB/s and ratio (the headline first),
    and the worst server RSS growth over all clients."""
    clients: list[str] = summaries[0]["clients"] if summaries else []
    head = f"{'size':>8} {'direction':<24} | {'cp MiB/s':>9}"
    for name in clients:
        head += f" | {name + ' MiB/s':>11} | {name + '/cp':>10} {'':<3}"
    head += f" | {'server RSS growth':>17}"
    lines = [head, "-" * len(head)]
    for summary in summaries:
        for label, operation, cp in DIRECTIONS:
            line = f"{summary['size_mib']:>4} MiB {label:<24} | {summary['median_mib_s'][cp]:>9.1f}"
            growth = 0.0
            for name in clients:
                metric = f"{name}_{operation}"
                ratio = summary["ratio"][metric]
                growth = max(growth, summary["max_rss_growth_mb"][metric])
                verdict = "ok" if ratio >= RATIO_TARGET else "LOW"
                line += f" | {summary['median_mib_s'][metric]:>11.1f} | {ratio:>10.2f} {verdict:<3}"
            line += f" | {growth:>11.1f} MB {'ok' if growth < RSS_TARGET_MB else 'HIGH'}"
            lines.append(line)
    lines.append(
        f"MiB/s: median of {repeats}; client/cp target >= {RATIO_TARGET} ({clients[0] if clients else '-'} is the "
        f"headline: native CLI vs native CLI); RSS growth: worst of {repeats} per client, worst client shown "
        f"(peak VmRSS during the transfer minus VmRSS just before; target < {RSS_TARGET_MB} MB; MB = 10^6 bytes)."
    )
    return "\n".join(lines)


# ----- the run -----------------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[int]:
    sizes = [int(part) for part in text.split(",") if part.strip()]
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError("sizes are positive integers (MiB), comma-separated")
    return sizes


def parse_clients(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names or any(name not in CLIENTS for name in names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"clients are some of {', '.join(CLIENTS)}, comma-separated")
    return names


def parse_setting(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not name.startswith("DEVBOX_") or not equals:
        raise argparse.ArgumentTypeError("a server setting is DEVBOX_NAME=VALUE")
    return name, value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.files", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=[256, 1024], help="file sizes in MiB (default 256,1024)")
    parser.add_argument("--repeats", type=int, default=3, help="timed transfers per size and kind (default 3)")
    parser.add_argument(
        "--clients",
        type=parse_clients,
        default=list(CLIENTS),
        help="API clients, the first one the headline (default curl,httpx)",
    )
    parser.add_argument("--json", type=Path, help="also write config, summary and samples as JSON to this path")
    parser.add_argument(
        "--server-setting",
        type=parse_setting,
        action="append",
        default=[],
        metavar="DEVBOX_NAME=VALUE",
        help="a setting for the server under test, e.g. DEVBOX_HOST_FILE_ACCESS=false (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if "curl" in args.clients and shutil.which("curl") is None:
        parser.error("curl is not installed (apt-get install -y curl), or leave it out: --clients httpx")
    return args


def run(client: docker.DockerClient, args: argparse.Namespace, spec: RawSpec) -> dict[int, dict[str, list[float]]]:
    """Server, temp dir and every size; clean-up on the way out (errors and Ctrl-C included)."""
    results: dict[int, dict[str, list[float]]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="devboxd-bench-files-") as tmp,
        bench_server(client, spec.instance, dict(args.server_setting)) as server,
        httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=HTTP_TIMEOUT
        ) as http,
    ):
        assert server.process is not None
        known: dict[str, Client] = {"curl": CurlClient(server.base_url, API_KEY), "httpx": HttpxClient(http)}
        clients = [known[name] for name in args.clients]
        for size_mib in args.sizes:
            results[size_mib] = run_size(
                clients, http, client, spec, server.process.pid, size_mib, args.repeats, Path(tmp)
            )
    return results


def write_json(
    path: Path, args: argparse.Namespace, spec: RawSpec, summaries: list[dict[str, Any]], results: Any
) -> None:
    config = {
        "sizes_mib": args.sizes,
        "repeats": args.repeats,
        "clients": args.clients,
        "server_settings": dict(args.server_setting),
        "image": spec.image,
        "cpus": spec.cpus,
        "memory_bytes": spec.memory_bytes,
        "host_cpus": os.cpu_count(),
        "host": platform.node(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    samples = {str(size): metrics for size, metrics in results.items()}
    path.write_text(json.dumps({"config": config, "summary": summaries, "samples": samples}, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    client = docker.from_env()
    instance = f"bench-{uuid.uuid4().hex[:10]}"
    try:
        spec = raw_spec(client, instance)
        print(
            f"devboxd file bench: sizes {args.sizes} MiB x {args.repeats}, image {spec.image}, instance {instance}",
            file=sys.stderr,
        )
        results = run(client, args, spec)
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        return 130
    finally:
        client.close()
    summaries = [summarize(size, args.clients, samples) for size, samples in results.items()]
    print(table(summaries, args.repeats))
    if args.json:
        write_json(args.json, args, spec, summaries, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
