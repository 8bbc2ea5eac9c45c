"""Device schema (``conf/device/{cpu,cuda,auto}.yaml``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum


class DeviceType(StrEnum):
    cpu = "cpu"
    cuda = "cuda"
    auto = "auto"


@dataclass
class DeviceConfig:
    """Where torch runs; ``num_threads`` (a number or ``auto``) is set by launchers so jobs x threads stays
    within the cores. Results are reproducible for a given thread count."""

    type: DeviceType = DeviceType.cpu
    index: int | None = None
    num_threads: int | str = "auto"
    deterministic: bool = True

    def __post_init__(self) -> None:
        """Refuse values torch would only reject once the run dir exists (or silently clamp)."""
        resolve_threads(self.num_threads)
        if self.index is not None and self.index < 0:
            raise ValueError(f"device.index must be >= 0 or null, got {self.index}")


def resolve_threads(num_threads: int | str) -> int:
    """``auto`` -> ``OMP_NUM_THREADS`` where set (launchers, batch jobs), else the usable cores."""
    if num_threads == "auto":
        pinned = os.environ.get("OMP_NUM_THREADS", "")
        if pinned.isdigit() and int(pinned) >= 1:
            return int(pinned)
        return usable_cores()
    if isinstance(num_threads, int) and not isinstance(num_threads, bool) and num_threads >= 1:
        return num_threads
    raise ValueError(f"device.num_threads must be a number >= 1 or auto, got {num_threads!r}")


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
