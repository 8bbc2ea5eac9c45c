"""Format v1 manifest: built, parsed and checked before any shard is touched. A dataset is a directory of
``manifest.json`` and ``shard-NNNNN.npz`` files cut along time, so trajectory segments survive sharding."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from townlet.replay.columns import column_schema
from townlet.replay.errors import DatasetError
from townlet.runs.atomic import json_safe, loads_json
from townlet.world.spec import ObservationSpec

FORMAT_NAME = "townlet-replay"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"


def stable_hash(payload: Any, length: int = 16) -> str:
    """sha256 of canonical JSON (sorted keys): the cache key and the world-config hash."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def file_sha256(path: Path) -> str:
    """Hash in fixed chunks so checking a shard never holds a second copy of it in memory."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@dataclass(frozen=True)
class ShardEntry:
    file: str
    tick_start: int
    ticks: int
    rows: int
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Manifest:
    """Parsed and checked manifest; ``raw`` keeps everything for `inspect`."""

    path: Path  # the manifest file
    spec: ObservationSpec
    ticks: int
    agents: int
    shards: tuple[ShardEntry, ...]
    bootstrap_values: np.ndarray
    meta: dict[str, Any]
    events: dict[str, float]
    episode_stats: dict[str, float]
    stats: dict[str, Any]
    raw: dict[str, Any]

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def transitions(self) -> int:
        return self.ticks * self.agents

    @property
    def max_shard_rows(self) -> int:
        return max((s.rows for s in self.shards), default=0)


def build_manifest(
    *,
    spec: ObservationSpec,
    ticks: int,
    agents: int,
    shards: list[ShardEntry],
    bootstrap_values: np.ndarray,
    meta: dict[str, Any],
    stats: dict[str, Any],
) -> dict[str, Any]:
    """The manifest document; ``stats`` holds the capture's ``events`` and ``episodes`` too."""
    meta = dict(json_safe(meta, default=str))  # plain json.dump writes the manifest
    world: dict[str, Any] = meta["world"] if isinstance(meta.get("world"), dict) else {}
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "world": {"name": world.get("name"), "config": world.get("config"), "hash": world.get("hash")},
        "behaviour": {"name": meta.get("behaviour"), "epsilon": meta.get("epsilon")},
        "seed": meta.get("seed"),
        "counts": {
            "ticks": ticks,
            "agents": agents,
            "num_envs": meta.get("num_envs"),
            "num_agents": meta.get("num_agents"),
            "transitions": ticks * agents,
            "shards": len(shards),
        },
        "observation_spec": {
            **spec.to_dict(),
            "map_shape": list(spec.map_shape),
            "feature_dim": spec.feature_dim,
            "num_actions": spec.num_actions,
            "fingerprint": spec.fingerprint(),
        },
        "columns": column_schema(spec),
        "shards": [dataclasses.asdict(s) for s in shards],
        "bootstrap_values": [float(v) for v in np.asarray(bootstrap_values, np.float32)],
        "stats": json_safe(stats, default=str),
        "meta": meta,
    }


def _get(doc: dict[str, Any], key: str, kind: type | tuple[type, ...], where: Path) -> Any:
    if key not in doc:
        raise DatasetError(f"manifest is missing the key {key!r}", file=where)
    value = doc[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise DatasetError(f"manifest key {key!r} has the wrong type ({type(value).__name__})", file=where)
    return value


def _load_document(mpath: Path) -> dict[str, Any]:
    """The manifest's JSON object, after checking it exists and has this build's format/version."""
    if not mpath.parent.exists():
        raise DatasetError("dataset directory does not exist", file=mpath.parent)
    if not mpath.is_file():
        raise DatasetError(
            "no manifest.json here",
            file=mpath.parent,
            hint="is this a dataset directory written by townlet-capture?",
        )
    try:
        doc = loads_json(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"manifest is not valid JSON ({exc})", file=mpath) from None
    if not isinstance(doc, dict):
        raise DatasetError("manifest must be a JSON object", file=mpath)
    if doc.get("format") != FORMAT_NAME:
        raise DatasetError(
            f"not a {FORMAT_NAME} manifest (format={doc.get('format')!r})",
            file=mpath,
            hint="original per-agent .npz captures can be converted with `townlet-dataset import`",
        )
    version = _get(doc, "format_version", int, mpath)
    if version != FORMAT_VERSION:
        raise DatasetError(
            f"format version {version} is not supported (this build reads version {FORMAT_VERSION})",
            file=mpath,
        )
    return doc


def _read_spec(doc: dict[str, Any], mpath: Path, expect_spec: ObservationSpec | None) -> ObservationSpec:
    """The observation spec, consistent with itself and (if given) with ``expect_spec``."""
    spec_doc = _get(doc, "observation_spec", dict, mpath)
    try:
        spec = ObservationSpec.from_dict(spec_doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"observation_spec is malformed ({exc})", file=mpath) from None
    if list(spec.map_shape) != spec_doc.get("map_shape", list(spec.map_shape)):
        raise DatasetError(
            f"observation_spec map_shape {spec_doc.get('map_shape')} disagrees with channels/window",
            file=mpath,
        )
    if len(set(spec.feature_names)) != len(spec.feature_names):
        raise DatasetError("observation_spec feature_names has duplicates", file=mpath)
    if spec_doc.get("feature_dim", spec.feature_dim) != spec.feature_dim:
        raise DatasetError(
            f"observation_spec lists {spec.feature_dim} feature names "
            f"but feature_dim is {spec_doc.get('feature_dim')}",
            file=mpath,
        )
    if expect_spec is not None and (diff := expect_spec.describe_mismatch(spec)):
        raise DatasetError(
            f"dataset observation spec does not match the expected one: {diff}",
            file=mpath,
            hint="re-capture the dataset with the current world, or pick the matching world",
        )
    return spec


def _check_columns(doc: dict[str, Any], spec: ObservationSpec, mpath: Path) -> None:
    """Every column of ``spec``'s schema is listed with exactly that schema."""
    columns = _get(doc, "columns", dict, mpath)
    for name, schema in column_schema(spec).items():
        if name not in columns:
            raise DatasetError(f"column {name!r} is missing from the manifest schema", file=mpath)
        if name == "features" and columns[name] != schema:
            raise DatasetError(
                f"feature list has {spec.feature_dim} names but the features column is {columns[name]}",
                file=mpath,
                hint="the manifest's feature_names were edited or belong to another world",
            )
        if columns[name] != schema:
            raise DatasetError(f"column {name!r} schema {columns[name]} != expected {schema}", file=mpath)


def _read_shards(doc: dict[str, Any], ticks: int, agents: int, mpath: Path) -> list[ShardEntry]:
    """The shard list: plain file names, contiguous ticks, ``ticks * agents`` rows, ``ticks`` in all."""
    shards = []
    tick = 0
    for i, s in enumerate(_get(doc, "shards", list, mpath)):
        if not isinstance(s, dict):
            raise DatasetError(f"shard entry {i} is not an object", file=mpath)
        keys = (f.name for f in dataclasses.fields(ShardEntry))
        entry = ShardEntry(**{k: _get(s, k, str if k in ("file", "sha256") else int, mpath) for k in keys})
        if Path(entry.file).name != entry.file or entry.file.startswith("."):
            raise DatasetError(f"shard file name {entry.file!r} must be a plain file name", file=mpath)
        if entry.tick_start != tick or entry.rows != entry.ticks * agents:
            raise DatasetError(f"shard {entry.file} covers inconsistent ticks/rows", file=mpath)
        tick += entry.ticks
        shards.append(entry)
    if tick != ticks:
        raise DatasetError(f"shards cover {tick} ticks but counts.ticks is {ticks}", file=mpath)
    return shards


def read_manifest(path: str | Path, *, expect_spec: ObservationSpec | None = None) -> Manifest:
    """Parse and check a manifest: format/version, spec, column schema, shard list consistency."""
    mpath = Path(path)
    if mpath.suffix != ".json":  # the dataset directory
        mpath = mpath / MANIFEST_NAME
    doc = _load_document(mpath)
    spec = _read_spec(doc, mpath, expect_spec)
    _check_columns(doc, spec, mpath)
    counts = _get(doc, "counts", dict, mpath)
    ticks, agents = _get(counts, "ticks", int, mpath), _get(counts, "agents", int, mpath)
    shards = _read_shards(doc, ticks, agents, mpath)
    boot = np.asarray(_get(doc, "bootstrap_values", list, mpath), dtype=np.float64)
    if boot.shape != (agents,) or not np.isfinite(boot).all():
        raise DatasetError(f"bootstrap_values must be {agents} finite numbers", file=mpath)
    stats: dict[str, Any] = doc["stats"] if isinstance(doc.get("stats"), dict) else {}
    meta: dict[str, Any] = doc["meta"] if isinstance(doc.get("meta"), dict) else {}
    events = {k: float(v or 0.0) for k, v in (stats.get("events") or {}).items()}
    return Manifest(
        path=mpath,
        spec=spec,
        ticks=ticks,
        agents=agents,
        shards=tuple(shards),
        bootstrap_values=boot.astype(np.float32),
        meta=meta,
        events=events,
        episode_stats={k: float(v or 0.0) for k, v in (stats.get("episodes") or {}).items()},
        stats=stats,
        raw=doc,
    )
