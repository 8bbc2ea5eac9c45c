"""Streaming an on-disk dataset with memory bounded by one shard: each epoch visits shards in a (seed, epoch)
order and shuffles rows within each, carrying a short last minibatch into the next shard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from townlet.replay.columns import COLUMN_NAMES
from townlet.replay.data import Batch, ReplayData, epoch_rng
from townlet.replay.errors import DatasetError
from townlet.replay.manifest import Manifest, read_manifest
from townlet.replay.reading import load_replay_data, read_shard
from townlet.replay.stats import dataset_summary
from townlet.world.spec import ObservationSpec


class StreamingDataset:
    """Lazy view of a dataset directory; shards are read (and verified) when iterated."""

    def __init__(self, manifest: Manifest, *, verify: bool = True) -> None:
        self.manifest = manifest
        self.verify = verify
        # shards already checksummed, keyed by file -> (size, mtime_ns): later epochs re-hash only
        # a shard whose file changed, so a multi-epoch stream pays for sha256 once
        self._verified: dict[str, tuple[int, int]] = {}
        self.spec: ObservationSpec = manifest.spec
        self.meta: dict[str, Any] = manifest.meta
        self.events, self.episode_stats = manifest.events, manifest.episode_stats
        self.num_transitions = manifest.transitions

    def __len__(self) -> int:
        return self.num_transitions

    @property
    def num_shards(self) -> int:
        return len(self.manifest.shards)

    def shard(self, index: int) -> ReplayData:
        """Shard ``index`` (file order) as a small ReplayData; its last tick bootstraps from itself."""
        entry = self.manifest.shards[index]
        try:
            st = (self.manifest.root / entry.file).stat()
            stamp: tuple[int, int] | None = (st.st_size, st.st_mtime_ns)
        except OSError:
            stamp = None
        fresh = self.verify and self._verified.get(entry.file) != stamp
        cols = read_shard(self.manifest, entry, verify=fresh)
        if fresh and stamp is not None:
            self._verified[entry.file] = stamp
        last = entry.tick_start + entry.ticks == self.manifest.ticks
        boot = self.manifest.bootstrap_values if last else np.zeros(self.manifest.agents, np.float32)
        # with verify, these bytes were checked (finiteness included) when first read: skip re-checking
        return ReplayData.from_columns(
            self.spec,
            cols,
            bootstrap_values=boot,
            meta={**self.meta, "shard": entry.file, "tick_start": entry.tick_start},
            check_finite=not self.verify,
        )

    def _first_values(self, tick: int) -> np.ndarray:
        """The ``values`` row that segments ending before ``tick`` bootstrap from (only it is read)."""
        path = self.manifest.root / next(s.file for s in self.manifest.shards if s.tick_start == tick)
        if not path.is_file():
            raise DatasetError("shard file is missing", file=path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                return np.asarray(npz["values"][0], dtype=np.float32)
        except (OSError, ValueError, KeyError, IndexError) as exc:
            raise DatasetError(f"cannot read 'values' ({type(exc).__name__}: {exc})", file=path) from None

    def iter_shards(self, seed: int, epoch: int) -> Iterator[ReplayData]:
        """Shards as small ReplayData in a (seed, epoch) permutation."""
        for i in epoch_rng(seed, epoch).permutation(self.num_shards):
            yield self.shard(int(i))

    def iter_minibatches(
        self,
        batch_size: int,
        seed: int,
        epoch: int,
        *,
        drop_last: bool = False,
        columns: tuple[str, ...] | None = None,
    ) -> Iterator[Batch]:
        """Shuffled minibatches across shards; at most one shard (+ a carried tail) in memory."""
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        names = columns or COLUMN_NAMES
        rng = epoch_rng(seed, epoch)
        carry: dict[str, np.ndarray] | None = None
        for shard in self.iter_shards(seed, epoch):
            rows = shard.num_transitions
            sources = {n: shard.flat(n) for n in names}
            perm = rng.permutation(rows)
            start = 0
            while start < rows:  # the carried batch's gap first, then whole batches, then a tail to carry
                filled = 0 if carry is None else carry[names[0]].shape[0]
                idx = np.sort(perm[start : start + batch_size - filled])
                part = {n: np.take(sources[n], idx, axis=0) for n in names}
                carry = part if carry is None else {n: np.concatenate([carry[n], part[n]]) for n in names}
                start += len(idx)
                if carry[names[0]].shape[0] == batch_size:
                    yield carry
                    carry = None
            del shard, sources
        if carry is not None and not drop_last:
            yield carry

    def iter_segments(
        self, segment_length: int, agents_per_segment: int, seed: int, epoch: int
    ) -> Iterator[Batch]:
        """Contiguous [L, n] blocks shard by shard (segments never cross a shard boundary)."""
        for shard in self.iter_shards(seed, epoch):
            start = int(shard.meta["tick_start"])
            end = start + shard.num_ticks
            if end < self.manifest.ticks:  # bootstrap from the next shard's values
                shard.bootstrap_values = self._first_values(end)
            for block in shard.iter_segments(segment_length, agents_per_segment, seed, epoch):
                block["t0"] = np.asarray(int(block["t0"]) + start)
                yield block

    def load(self) -> ReplayData:
        return load_replay_data(self.manifest, verify=self.verify)

    def summarise(self) -> dict[str, Any]:
        """Statistics from the manifest (no shard is read)."""
        m = self.manifest
        episodes = m.stats.get("episodes", {})
        return dataset_summary(
            self.spec, m.ticks, m.agents, m.stats, self.events, episodes, shards=self.num_shards
        )


def load_dataset(
    path: str | Path,
    streaming: bool = False,
    *,
    expect_spec: ObservationSpec | None = None,
    verify: bool = True,
) -> ReplayData | StreamingDataset:
    """A format v1 dataset, loaded fully (``ReplayData``) or lazily (``StreamingDataset``, shard by shard)."""
    manifest = read_manifest(path, expect_spec=expect_spec)
    if streaming:
        return StreamingDataset(manifest, verify=verify)
    return load_replay_data(manifest, verify=verify)
