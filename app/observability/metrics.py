"""Prometheus metrics, served at /metrics. Aggregates only: no devbox ids, tenants or commands, so the
endpoint needs no API key. Devboxes by status are counted from the store at scrape time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Buckets from a fast exec round trip (~ms) to a long-poll (30 s).
_API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

API_REQUESTS = Histogram(
    "devboxd_api_request_seconds",
    "API request latency by route template, method and status class.",
    ["route", "method", "status"],
    buckets=_API_BUCKETS,
    registry=REGISTRY,
)
DOCKER_CALLS = Histogram(
    "devboxd_docker_call_seconds",
    "Latency of blocking Docker engine calls by operation and outcome.",
    ["operation", "outcome"],
    buckets=_API_BUCKETS,
    registry=REGISTRY,
)
EXECUTIONS_STARTED = Counter("devboxd_executions_started_total", "Commands started in devboxes.", registry=REGISTRY)
EXECUTIONS_FINISHED = Counter(
    "devboxd_executions_finished_total",
    "Commands that ended, by how: exited (any exit status), killed, or lost (devbox or server went away).",
    ["outcome"],
    registry=REGISTRY,
)
DEVBOXES = Gauge("devboxd_devboxes", "Devboxes by status (all tenants).", ["status"], registry=REGISTRY)
WARM_POOL_READY = Gauge("devboxd_warm_pool_ready", "Warm containers ready to be claimed.", registry=REGISTRY)


@contextmanager
def docker_call(operation: str) -> Iterator[None]:
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    finally:
        DOCKER_CALLS.labels(operation, outcome).observe(time.perf_counter() - started)


def render(devboxes_by_status: dict[str, int], warm_ready: int) -> bytes:
    """The exposition text, with the gauges set from the counts just taken."""
    DEVBOXES.clear()
    for status, count in devboxes_by_status.items():
        DEVBOXES.labels(status).set(count)
    WARM_POOL_READY.set(warm_ready)
    return generate_latest(REGISTRY)
