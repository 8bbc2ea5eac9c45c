"""Device schema (``conf/device/{cpu,cuda,auto}.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DeviceType(StrEnum):
    cpu = "cpu"
    cuda = "cuda"
    auto = "auto"


@dataclass
class DeviceConfig:
    """Where torch runs and how: 1 thread by default (2 threads collapse when the other core is busy)."""

    type: DeviceType = DeviceType.cpu
    index: int | None = None
    num_threads: int = 1
    deterministic: bool = True
