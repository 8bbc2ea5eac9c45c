"""Writing format v1 datasets into a hidden temp directory renamed into place when complete: a reader never
sees half a dataset, and of two writers racing for one cache key the loser gets DatasetExistsError."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from townlet.replay.columns import COLUMN_NAMES, check_columns
from townlet.replay.data import ReplayData
from townlet.replay.errors import DatasetError
from townlet.replay.manifest import MANIFEST_NAME, ShardEntry, build_manifest, file_sha256
from townlet.replay.stats import StatsAccumulator
from townlet.runs.atomic import atomic_write_text
from townlet.world.spec import ObservationSpec

DEFAULT_SHARD_ROWS = 1 << 17  # 131,072 transitions: ~100 MB at 11x11 maps with 8 channels


class DatasetExistsError(DatasetError):
    """The target directory already holds a dataset (and overwrite was not asked for)."""


class DatasetWriter:
    """Append [t, N, ...] chunks, cut into shards of ``shard_rows // N`` ticks; ``close()`` publishes, an
    exception inside ``with`` discards."""

    def __init__(
        self,
        path: str | Path,
        spec: ObservationSpec,
        *,
        meta: Mapping[str, Any] | None = None,
        shard_rows: int = DEFAULT_SHARD_ROWS,
        compress: bool = False,
        overwrite: bool = False,
    ) -> None:
        if shard_rows <= 0:
            raise ValueError(f"shard_rows must be positive, got {shard_rows}")
        self.path = Path(path)
        self.spec = spec
        self.meta = dict(meta or {})
        self.shard_rows = shard_rows
        self.compress = compress
        self.overwrite = overwrite
        if self.path.exists() and any(self.path.iterdir()) and not overwrite:
            raise DatasetExistsError(
                "target already exists and is not empty",
                file=self.path,
                hint="choose another path or overwrite",
            )
        check_replaceable(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.parent / f".{self.path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir()
        self.agents: int | None = None
        self.ticks = 0
        self._pending: dict[str, np.ndarray] | None = None  # the ticks of a shard not yet full
        self._shards: list[ShardEntry] = []
        self._stats = StatsAccumulator(spec)
        self._closed = False

    def append(self, chunk: Mapping[str, np.ndarray]) -> None:
        t, self.agents = check_columns(chunk, self.spec, agents=self.agents, values=False)
        self._stats.update(chunk)
        block, pending = {k: chunk[k] for k in COLUMN_NAMES}, self._pending
        if pending is not None:
            block = {k: np.concatenate([pending[k], v]) for k, v in block.items()}
            t += pending["actions"].shape[0]
        start, step = 0, max(1, self.shard_rows // self.agents)
        while t - start >= step:  # whole shards as views of the block
            self._write_shard({k: v[start : start + step] for k, v in block.items()})
            start += step
        self._pending = {k: v[start:] for k, v in block.items()} if start < t else None

    def _write_shard(self, block: Mapping[str, np.ndarray]) -> None:
        name = f"shard-{len(self._shards):05d}.npz"
        target = self.tmp / name
        save = np.savez_compressed if self.compress else np.savez
        arrays = {k: np.ascontiguousarray(block[k]) for k in COLUMN_NAMES}
        with open(target, "wb") as fh:
            save(fh, **arrays)  # type: ignore[arg-type]
            fh.flush()
            os.fsync(fh.fileno())
        t = int(block["actions"].shape[0])
        rows = t * int(self.agents or 0)
        self._shards.append(ShardEntry(name, self.ticks, t, rows, file_sha256(target), target.stat().st_size))
        self.ticks += t

    def close(
        self,
        *,
        bootstrap_values: np.ndarray | None = None,
        events: Mapping[str, float] | None = None,
        episode_stats: Mapping[str, float] | None = None,
    ) -> Path:
        if self._closed:
            raise RuntimeError("writer already closed")
        if self.agents is None:
            self.abort()
            raise DatasetError(
                "refusing to write an empty dataset (no transitions were appended)", file=self.path
            )
        if self._pending is not None:
            self._write_shard(self._pending)
        boot = np.zeros(self.agents, np.float32) if bootstrap_values is None else np.asarray(bootstrap_values)
        stats = {**self._stats.result(), "events": dict(events or {}), "episodes": dict(episode_stats or {})}
        manifest = build_manifest(
            spec=self.spec,
            ticks=self.ticks,
            agents=self.agents,
            shards=self._shards,
            bootstrap_values=boot,
            meta=self.meta,
            stats=stats,
        )
        atomic_write_text(self.tmp / MANIFEST_NAME, json.dumps(manifest, indent=1, allow_nan=False))
        self._closed = True
        _publish(self.tmp, self.path, overwrite=self.overwrite)
        return self.path

    def abort(self) -> None:
        self._closed = True
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None and not self._closed:
            self.abort()


def check_replaceable(path: Path) -> None:
    """Overwriting replaces a dataset, nothing else: a folder with files but no manifest (a run dir, a
    home folder) would be deleted whole by the swap in :func:`_publish`."""
    if path.is_dir() and any(path.iterdir()) and not (path / MANIFEST_NAME).is_file():
        raise DatasetExistsError(
            f"holds files but no {MANIFEST_NAME}, and overwriting replaces only a dataset",
            file=path,
            hint="choose another path",
        )


def _publish(tmp: Path, target: Path, *, overwrite: bool) -> None:
    """rename(tmp, target); an existing non-empty target is either kept (race lost) or swapped out."""
    with contextlib.suppress(OSError):
        dfd = os.open(tmp, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)
    old: Path | None = None
    if overwrite and target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(target, old)
    try:
        os.rename(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
            raise DatasetExistsError("another writer published this dataset first", file=target) from None
        raise DatasetError(f"could not move the finished dataset into place ({exc})", file=target) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_dataset(
    data: ReplayData,
    path: str | Path,
    *,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    compress: bool = False,
    overwrite: bool = False,
) -> Path:
    data.validate()
    with DatasetWriter(
        path, data.spec, meta=data.meta, shard_rows=shard_rows, compress=compress, overwrite=overwrite
    ) as writer:
        writer.append(data.columns())
        return writer.close(
            bootstrap_values=data.bootstrap_values, events=data.events, episode_stats=data.episode_stats
        )
