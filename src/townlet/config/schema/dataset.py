"""Dataset schema: *captured* on first use and cached by the hash of what produced it (a fresh machine needs
nothing prepared), or *given* (``manifest``: an existing format v1 directory)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DatasetKind(StrEnum):
    scripted = "scripted"  # scripted teacher in the run's world
    random = "random"  # uniform over unmasked actions in the run's world
    manifest = "manifest"  # an existing dataset directory (dataset.path)
    queue_conflict = "queue_conflict"  # scripted teacher in the queue_conflict scenario


@dataclass
class DatasetConfig:
    """Where training data comes from: captured on first use (and cached by hash) or a manifest path."""

    kind: DatasetKind = DatasetKind.scripted
    name: str = "scripted"  # label recorded in results
    ticks: int = 400  # capture length; rows = ticks * num_envs * num_agents
    epsilon: float = 0.0  # scripted exploration; teacher_actions stay the scripted choice
    seed: int | None = None  # capture seed; None = 0 (independent of the run seed, so sweeps share a cache)
    world: str | None = None  # capture in this world scenario instead of the run's (e.g. queue_conflict)
    path: str | None = None  # kind=manifest: dataset directory (or its manifest.json)
    shard_rows: int = 65_536  # transitions per shard on disk; bounds streaming memory
    compress: bool = False  # deflate shards (smaller, slower to write and read)
    streaming: bool = False  # resolve to a StreamingDataset (shard at a time) instead of ReplayData
    cache: bool = True  # False: capture in memory every run, write nothing
    verify: bool = True  # check sha256 and finiteness when loading

    def __post_init__(self) -> None:
        """Refuse a capture that would be empty, before any capture runs."""
        if self.ticks < 1:
            raise ValueError(f"dataset.ticks must be >= 1, got {self.ticks}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"dataset.epsilon must be in [0, 1], got {self.epsilon}")
        if self.shard_rows < 1:
            raise ValueError(f"dataset.shard_rows must be >= 1, got {self.shard_rows}")
