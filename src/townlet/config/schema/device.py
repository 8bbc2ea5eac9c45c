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

    def __post_init__(self) -> None:
        """Refuse values torch would only reject once the run dir exists (or silently clamp)."""
        if self.num_threads < 1:
            raise ValueError(f"device.num_threads must be >= 1, got {self.num_threads}")
        if self.index is not None and self.index < 0:
            raise ValueError(f"device.index must be >= 0 or null, got {self.index}")
