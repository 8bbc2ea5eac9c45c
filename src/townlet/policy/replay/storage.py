"""Writing and reading format v1 datasets.

Writing is atomic at the directory level: shards and manifest go into a hidden temp directory next
to the target, which is renamed into place only when complete, so a reader never sees half a
dataset and two writers racing for the same cache key cannot corrupt each other (the loser gets
:class:`DatasetExistsError` and can simply load the winner's copy).

Reading checks every shard's size and sha256 before parsing it, parses with ``allow_pickle=False``,
and checks names, dtypes, shapes and finiteness; every failure is one :class:`DatasetError`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import shutil
import uuid
import zipfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from townlet.policy.replay.columns import COLUMN_NAMES, COLUMNS, allocate
from townlet.policy.replay.data import ReplayData, check_finite_array
from townlet.policy.replay.errors import DatasetError
from townlet.policy.replay.manifest import (
    MANIFEST_NAME,
    Manifest,
    ShardEntry,
    build_manifest,
    file_sha256,
    read_manifest,
)
from townlet.policy.replay.stats import StatsAccumulator
from townlet.world.spec import ObservationSpec

if TYPE_CHECKING:  # streaming imports this module; import it lazily at runtime
    from townlet.policy.replay.streaming import StreamingDataset

DEFAULT_SHARD_ROWS = 1 << 17  # 131,072 transitions: ~100 MB at 11x11 maps with 8 channels


class DatasetExistsError(DatasetError):
    """The target directory already holds a dataset (and overwrite was not asked for)."""


class DatasetWriter:
    """Append [t, N, ...] chunks; shards are cut every ``shard_rows // N`` ticks and written at once.

    Use as a context manager: an exception discards the temp directory, ``close()`` publishes.
    """

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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.parent / f".{self.path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir()
        self.agents: int | None = None
        self.ticks = 0
        self._pending: list[dict[str, np.ndarray]] = []
        self._pending_ticks = 0
        self._shards: list[ShardEntry] = []
        self._stats = StatsAccumulator(spec)
        self._closed = False

    @property
    def shard_ticks(self) -> int:
        return max(1, self.shard_rows // max(self.agents or 1, 1))

    def append(self, chunk: Mapping[str, np.ndarray]) -> None:
        missing = [n for n in COLUMN_NAMES if n not in chunk]
        if missing:
            raise DatasetError(f"chunk is missing column(s) {missing}")
        t, n = chunk["actions"].shape[:2]
        if self.agents is None:
            self.agents = n
        for col in COLUMNS:
            arr = chunk[col.name]
            if arr.shape != col.shape(self.spec, t, n) or n != self.agents or arr.dtype != col.dtype:
                raise DatasetError(
                    f"chunk column {col.name!r} is {arr.dtype}{list(arr.shape)}, "
                    f"expected {col.dtype}{list(col.shape(self.spec, t, self.agents))}"
                )
        self._stats.update(chunk)
        self._pending.append(dict(chunk))
        self._pending_ticks += t
        while self._pending_ticks >= self.shard_ticks:
            self._write_shard(self._take(self.shard_ticks))

    def _take(self, ticks: int) -> dict[str, np.ndarray]:
        """Pop ``ticks`` ticks from the pending chunks (views when one chunk suffices)."""
        parts: list[dict[str, np.ndarray]] = []
        need = ticks
        while need:
            head = self._pending[0]
            avail = head["actions"].shape[0]
            if avail <= need:
                parts.append(self._pending.pop(0))
                need -= avail
            else:
                parts.append({k: v[:need] for k, v in head.items()})
                self._pending[0] = {k: v[need:] for k, v in head.items()}
                need = 0
        self._pending_ticks -= ticks
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in COLUMN_NAMES}

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
        self._shards.append(
            ShardEntry(
                file=name,
                tick_start=self.ticks,
                ticks=t,
                rows=t * int(self.agents or 0),
                sha256=file_sha256(target),
                bytes=target.stat().st_size,
            )
        )
        self.ticks += t

    def close(
        self,
        *,
        bootstrap_values: np.ndarray | None = None,
        events: Mapping[str, float] | None = None,
        episode_stats: Mapping[str, float] | None = None,
    ) -> Path:
        """Flush the last shard, write the manifest and move the directory into place."""
        if self._closed:
            raise RuntimeError("writer already closed")
        if self.agents is None:
            self.abort()
            raise DatasetError(
                "refusing to write an empty dataset (no transitions were appended)", file=self.path
            )
        if self._pending_ticks:
            self._write_shard(self._take(self._pending_ticks))
        boot = np.zeros(self.agents, np.float32) if bootstrap_values is None else np.asarray(bootstrap_values)
        stats = self._stats.result()
        manifest = build_manifest(
            spec=self.spec,
            ticks=self.ticks,
            agents=self.agents,
            shards=self._shards,
            bootstrap_values=boot,
            meta=self.meta,
            events=dict(events or {}),
            episode_stats=dict(episode_stats or {}),
            stats=stats,
            created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        )
        mfile = self.tmp / MANIFEST_NAME
        with open(mfile, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=1, allow_nan=False)
            fh.flush()
            os.fsync(fh.fileno())
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
    """Write an in-memory dataset as format v1 (atomically)."""
    data.validate()
    with DatasetWriter(
        path, data.spec, meta=data.meta, shard_rows=shard_rows, compress=compress, overwrite=overwrite
    ) as writer:
        writer.append(data.columns())
        return writer.close(
            bootstrap_values=data.bootstrap_values, events=data.events, episode_stats=data.episode_stats
        )


# ---------------------------------------------------------------------------------------- reading
def read_shard(manifest: Manifest, entry: ShardEntry, *, verify: bool = True) -> dict[str, np.ndarray]:
    """Load one shard, checking existence, size, checksum, keys, dtypes, shapes and finiteness."""
    path = manifest.root / entry.file
    if not path.is_file():
        raise DatasetError(
            "shard file is missing", file=path, hint=f"the manifest lists {len(manifest.shards)} shards"
        )
    size = path.stat().st_size
    if size != entry.bytes:
        raise DatasetError(
            f"shard is {size} bytes, the manifest says {entry.bytes} (truncated or replaced)", file=path
        )
    if verify and (digest := file_sha256(path)) != entry.sha256:
        raise DatasetError(
            f"checksum mismatch (sha256 {digest[:12]}… != manifest {entry.sha256[:12]}…): file is corrupted",
            file=path,
            hint="re-capture or re-copy the dataset",
        )
    out: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            if keys != set(COLUMN_NAMES):
                raise DatasetError(
                    f"shard columns differ from format v1 (missing {sorted(set(COLUMN_NAMES) - keys)}, "
                    f"unexpected {sorted(keys - set(COLUMN_NAMES))})",
                    file=path,
                )
            for col in COLUMNS:
                arr = npz[col.name]
                want = col.shape(manifest.spec, entry.ticks, manifest.agents)
                if arr.dtype != col.dtype or arr.shape != want:
                    raise DatasetError(
                        f"column {col.name!r} is {arr.dtype}{list(arr.shape)}, "
                        f"expected {col.dtype}{list(want)}"
                        + (" (feature list and data disagree)" if col.name == "features" else ""),
                        file=path,
                    )
                if verify and col.is_float:
                    check_finite_array(arr, col.name, str(path))
                out[col.name] = arr
    except DatasetError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise DatasetError(
            f"shard cannot be parsed as .npz ({type(exc).__name__}: {exc})", file=path
        ) from None
    if verify:
        num_actions = manifest.spec.num_actions
        for name in ("actions", "teacher_actions"):
            arr = out[name]
            if arr.size and (arr.min() < 0 or arr.max() >= num_actions):
                raise DatasetError(f"column {name!r} holds action ids outside [0, {num_actions})", file=path)
    return out


def load_dataset(
    path: str | Path,
    streaming: bool = False,
    *,
    expect_spec: ObservationSpec | None = None,
    verify: bool = True,
) -> ReplayData | StreamingDataset:
    """Load a format v1 dataset fully (``ReplayData``) or lazily (``StreamingDataset``).

    The streaming form reads and checks one shard at a time, so its memory is bounded by a shard.
    """
    manifest = read_manifest(path, expect_spec=expect_spec)
    if streaming:
        from townlet.policy.replay.streaming import StreamingDataset

        return StreamingDataset(manifest, verify=verify)
    return load_replay_data(manifest, verify=verify)


def load_replay_data(manifest: Manifest, *, verify: bool = True) -> ReplayData:
    """Read every shard into one preallocated [T, N] buffer (peak = dataset + one shard).

    With ``verify`` each shard's floats were checked by :func:`read_shard`; the whole-dataset
    finiteness pass of ``from_columns`` runs only when they were not.
    """
    columns = allocate(manifest.spec, manifest.ticks, manifest.agents)
    for entry in manifest.shards:
        shard = read_shard(manifest, entry, verify=verify)
        t0, t1 = entry.tick_start, entry.tick_start + entry.ticks
        for name, arr in shard.items():
            columns[name][t0:t1] = arr
        del shard
    return ReplayData.from_columns(
        manifest.spec,
        columns,
        bootstrap_values=manifest.bootstrap_values,
        meta=manifest.meta,
        events=manifest.events,
        episode_stats=manifest.episode_stats,
        check_finite=not verify,
    )


def validate_dataset(path: str | Path, *, expect_spec: ObservationSpec | None = None) -> Manifest:
    """Full check of a dataset shard by shard (bounded memory); returns the manifest when valid."""
    manifest = read_manifest(path, expect_spec=expect_spec)
    for entry in manifest.shards:
        read_shard(manifest, entry, verify=True)
    return manifest
