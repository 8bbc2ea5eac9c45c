"""Reading format v1 shards: size and sha256 are checked before parsing (``allow_pickle=False``)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from townlet.replay.columns import COLUMN_NAMES, allocate, check_columns
from townlet.replay.data import ReplayData
from townlet.replay.errors import DatasetError
from townlet.replay.manifest import Manifest, ShardEntry, file_sha256, read_manifest
from townlet.world.spec import ObservationSpec


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
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            out = {name: npz[name] for name in COLUMN_NAMES} if keys == set(COLUMN_NAMES) else {}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise DatasetError(
            f"shard cannot be parsed as .npz ({type(exc).__name__}: {exc})", file=path
        ) from None
    if keys != set(COLUMN_NAMES):
        raise DatasetError(
            f"shard columns differ from format v1 (missing {sorted(set(COLUMN_NAMES) - keys)}, "
            f"unexpected {sorted(keys - set(COLUMN_NAMES))})",
            file=path,
        )
    check_columns(out, manifest.spec, ticks=entry.ticks, agents=manifest.agents, source=path, values=verify)
    return out


def load_replay_data(manifest: Manifest, *, verify: bool = True) -> ReplayData:
    """Every shard in one preallocated [T, N] buffer, so the peak is the dataset plus one shard."""
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
