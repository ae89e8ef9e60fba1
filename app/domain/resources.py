"""Resource sizes from the spec, the CUSTOM_SIZE rules, and fitting a request onto this host."""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.errors import InvalidRequest

GIB = 1024**3


@dataclass(frozen=True)
class Resources:
    cpus: float
    memory_gb: int
    disk_gb: int


SIZES: dict[str, Resources] = {
    "X_SMALL": Resources(0.5, 1, 4),
    "SMALL": Resources(1, 2, 4),
    "MEDIUM": Resources(2, 4, 8),
    "LARGE": Resources(2, 8, 16),
    "X_LARGE": Resources(4, 16, 16),
    "XX_LARGE": Resources(8, 32, 16),
}
DEFAULT_SIZE = "SMALL"


def requested_resources(size: str | None, cpu: float | None, memory_gb: int | None, disk_gb: int | None) -> Resources:
    """What the launch parameters ask for, validated by the spec's rules (InvalidRequest otherwise)."""
    size = size or DEFAULT_SIZE
    if size != "CUSTOM_SIZE":
        if any(v is not None for v in (cpu, memory_gb, disk_gb)):
            raise InvalidRequest(
                "custom_cpu_cores, custom_gb_memory and custom_disk_size need resource_size_request CUSTOM_SIZE"
            )
        return SIZES[size]
    if cpu is None or memory_gb is None:
        raise InvalidRequest("CUSTOM_SIZE needs custom_cpu_cores and custom_gb_memory")
    if not (cpu in (0.5, 1) or (cpu == int(cpu) and int(cpu) % 2 == 0 and 2 <= cpu <= 16)):
        raise InvalidRequest(f"custom_cpu_cores must be 0.5, 1 or a multiple of 2 up to 16, got {cpu:g}")
    if not (memory_gb == 1 or (memory_gb % 2 == 0 and 2 <= memory_gb <= 64)):
        raise InvalidRequest(f"custom_gb_memory must be 1 or a multiple of 2 up to 64, got {memory_gb}")
    if disk_gb is not None and not (disk_gb % 2 == 0 and 2 <= disk_gb <= 64):
        raise InvalidRequest(f"custom_disk_size must be a multiple of 2 from 2 to 64, got {disk_gb}")
    if not (2 * cpu <= memory_gb <= 8 * cpu):
        raise InvalidRequest(f"the cpu:memory ratio must be between 1:2 and 1:8, got {cpu:g} cpu for {memory_gb} GiB")
    return Resources(cpu, memory_gb, disk_gb if disk_gb is not None else 4)


@dataclass(frozen=True)
class Placement:
    """What the container actually gets; `note` explains any cap applied to fit the host."""

    cpus: float
    memory_bytes: int
    note: str | None


def fit_to_host(wanted: Resources, host_cpus: int, host_memory_bytes: int) -> Placement:
    """Cap a request to what this host can give, rather than letting the engine fail the create."""
    cpus = min(wanted.cpus, float(host_cpus))
    memory = min(wanted.memory_gb * GIB, host_memory_bytes)
    notes = []
    if cpus < wanted.cpus:
        notes.append(f"{wanted.cpus:g} vCPU requested, host has {host_cpus}: capped to {cpus:g}")
    if memory < wanted.memory_gb * GIB:
        notes.append(f"{wanted.memory_gb} GiB requested, host has {host_memory_bytes / GIB:.1f} GiB: capped to that")
    return Placement(cpus, memory, "; ".join(notes) or None)
