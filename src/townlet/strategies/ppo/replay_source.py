"""The replay data of each PPO iteration: the whole dataset, or one shard of a streamed one.

``dataset.streaming=true`` promises memory bounded by one shard. PPO re-values its replay data with
the current critic every iteration and needs whole segments for GAE, so a streamed dataset gives
each iteration one shard, visited in a fresh seeded order on every pass; in replay mode an epoch is
still one pass over the data (``epochs`` x shards iterations). A shard's last tick bootstraps from
its own value, the one approximation streaming adds.
"""

from __future__ import annotations

from typing import Any

from townlet.replay import ReplayData, StreamingDataset
from townlet.replay.data import epoch_rng

__all__ = ["ReplaySource"]


class ReplaySource:
    """``for_iteration(it)`` hands out the replay data of iteration ``it`` (1-based)."""

    def __init__(self, data: ReplayData | StreamingDataset, seed: int) -> None:
        self.data = data
        self.seed = int(seed)

    @property
    def spec(self) -> Any:
        return self.data.spec

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self.data.meta)

    @property
    def num_transitions(self) -> int:
        return int(self.data.num_transitions)

    @property
    def passes_per_epoch(self) -> int:
        """Iterations that make one pass over the data (the shard count when streamed)."""
        return self.data.num_shards if isinstance(self.data, StreamingDataset) else 1

    def first(self) -> ReplayData:
        """Data for the input scaling of a network trained from scratch: the first iteration's."""
        return self.for_iteration(1)

    def for_iteration(self, iteration: int) -> ReplayData:
        if not isinstance(self.data, StreamingDataset):
            return self.data
        n = self.data.num_shards
        visit, slot = divmod(iteration - 1, n)
        order = epoch_rng(self.seed, visit).permutation(n)
        return self.data.shard(int(order[slot]))
