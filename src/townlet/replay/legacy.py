"""Import datasets in the original system's per-agent ``.npz`` + JSON sidecar layout.

The original wrote one sample per agent: ``<stem>.npz`` holding ``map`` (T,C,H,W) float32,
``features`` (T,F), ``actions``, ``old_log_probs``, ``value_preds`` (T or T+1), ``rewards`` and
``dones`` (all (T,)), a sidecar ``<stem>.json`` (``feature_names`` required, ``map_shape``,
``action_lookup``, ``metrics`` …), and a manifest that is either a plain list of
``{sample, meta[, dto]}`` / path strings or ``{metadata, samples: [...]}``; capture directories
hold ``rollout_sample_manifest.json`` (+ optional ``rollout_sample_metrics.json``).

Conversion rules (why: format v1 is time-major, compact and has a fixed, named vocabulary):

* one agent sample = one column of N; samples are stacked along the agent axis **only when their
  length T matches**. Samples of different lengths form separate length groups
  (:func:`import_legacy_groups`, lossless); :func:`import_legacy` returns one dataset and by default
  refuses ragged input rather than padding (padding would invent transitions) — ``ragged="truncate"``
  cuts every sample to the shortest T (bootstrapping from the value at the cut) and
  ``ragged="largest"`` keeps the group with the most transitions;
* maps become uint8 only when every value is an integer in [0, 255]; anything else is refused;
* map channels are named from the sidecar's ``map_channels`` when it lists C names, else
  ``legacy_0..C-1``; actions are named ``legacy_action_<id>`` (the original had no stable
  vocabulary), the mask allows exactly the ids seen anywhere in the import;
* ``old_log_probs`` → ``log_probs``, ``value_preds`` → ``values`` (+ ``bootstrap_values`` from a
  T+1-th entry, else 0), ``dones`` → ``terminated`` (``truncated`` False), ``teacher_actions`` =
  ``actions``; ``tick`` counts from 0 within the sample, ``episode_id`` counts earlier dones.

Torch-free; every problem is one :class:`DatasetError` naming the offending file.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from townlet.replay.data import ReplayData
from townlet.replay.errors import DatasetError
from townlet.world.spec import EVENT_COUNTERS, ObservationSpec

SpecPolicy = Literal["strict", "skip"]
RaggedPolicy = Literal["error", "truncate", "largest"]

DEFAULT_MANIFEST = "rollout_sample_manifest.json"
REQUIRED_ARRAYS = ("map", "features", "actions", "old_log_probs", "value_preds", "rewards", "dones")
_STEP_ARRAYS = ("actions", "old_log_probs", "rewards", "dones")


@dataclass(frozen=True)
class LegacyEntry:
    """One manifest entry: the sample and its sidecar (``dto`` is recorded, never read: it can be huge)."""

    sample: Path
    meta: Path
    dto: Path | None = None


@dataclass
class LegacySample:
    """One agent's trajectory, already converted to v1 dtypes (maps uint8)."""

    entry: LegacyEntry
    maps: np.ndarray  # uint8 [T, C, W, W]
    features: np.ndarray  # float32 [T, F]
    actions: np.ndarray  # int64 [T]
    log_probs: np.ndarray  # float32 [T]
    values: np.ndarray  # float32 [T + 1] when the sample had a bootstrap value, else [T]
    rewards: np.ndarray  # float32 [T]
    dones: np.ndarray  # bool [T]
    channel_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    sidecar: dict[str, Any] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return int(self.actions.shape[0])

    @property
    def layout(self) -> tuple[tuple[str, ...], int, tuple[str, ...]]:
        return (self.channel_names, int(self.maps.shape[-1]), self.feature_names)

    def cut(self, length: int) -> LegacySample:
        """First ``length`` steps; the value at the cut becomes the bootstrap value."""
        return LegacySample(
            entry=self.entry,
            maps=self.maps[:length],
            features=self.features[:length],
            actions=self.actions[:length],
            log_probs=self.log_probs[:length],
            values=self.values[: length + 1],
            rewards=self.rewards[:length],
            dones=self.dones[:length],
            channel_names=self.channel_names,
            feature_names=self.feature_names,
            sidecar=self.sidecar,
        )


# ---------------------------------------------------------------------------------- manifests
def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise DatasetError(f"{what} does not exist", file=path)
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix in (".yaml", ".yml"):
            import yaml  # only the original's YAML manifests need it

            return yaml.safe_load(text)
        return json.loads(text)
    except Exception as exc:  # OSError, UnicodeDecodeError, JSONDecodeError, yaml.YAMLError
        raise DatasetError(f"{what} cannot be parsed ({exc})", file=path) from None


def _resolve(raw: object, base: Path, manifest: Path) -> Path:
    if not isinstance(raw, str) or not raw:
        raise DatasetError(f"manifest entry path {raw!r} is not a non-empty string", file=manifest)
    p = Path(raw)
    if p.is_absolute():
        return p
    for candidate in (base / p, Path.cwd() / p):
        if candidate.exists():
            return candidate
    return base / p  # fails later with the sample's name in the message


def find_manifest(directory: Path) -> Path | None:
    """A directory's capture manifest: ``rollout_sample_manifest.json`` or the only ``*_manifest.json``."""
    default = directory / DEFAULT_MANIFEST
    if default.is_file():
        return default
    found = sorted(directory.glob("*_manifest.json"))
    if len(found) > 1:
        raise DatasetError(
            f"several manifests here ({', '.join(p.name for p in found)})",
            file=directory,
            hint="pass the manifest file itself",
        )
    return found[0] if found else None


def read_entries(src: str | Path) -> tuple[list[LegacyEntry], dict[str, Any], dict[str, Any]]:
    """Entries, manifest-level metadata and the per-sample metrics map of a manifest, directory or .npz.

    A directory without a manifest imports every ``*.npz`` in it (name order), as the BC capture
    script wrote no manifest.
    """
    path = Path(src)
    if not path.exists():
        raise DatasetError("legacy source does not exist", file=path)
    if path.suffix == ".npz":
        return [LegacyEntry(path, path.with_suffix(".json"))], {}, {}
    if path.is_dir():
        manifest = find_manifest(path)
        if manifest is None:
            samples = sorted(path.glob("*.npz"))
            if not samples:
                raise DatasetError("no manifest (*_manifest.json) and no .npz samples here", file=path)
            return [LegacyEntry(p, p.with_suffix(".json")) for p in samples], {}, {}
        path = manifest
    doc = _read_json(path, "manifest")
    metadata: dict[str, Any] = {}
    if isinstance(doc, dict):
        if not isinstance(doc.get("samples"), list):
            raise DatasetError("manifest object has no 'samples' list", file=path)
        metadata = dict(doc.get("metadata") or {})
        items = doc["samples"]
    elif isinstance(doc, list):
        items = doc
    else:
        raise DatasetError("manifest must be a list of samples or an object with 'samples'", file=path)
    if not items:
        raise DatasetError("manifest lists no samples", file=path)
    base = path.parent
    entries = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            sample = _resolve(item, base, path)
            entries.append(LegacyEntry(sample, sample.with_suffix(".json")))
        elif isinstance(item, dict) and "sample" in item:
            sample = _resolve(item["sample"], base, path)
            meta = _resolve(item["meta"], base, path) if item.get("meta") else sample.with_suffix(".json")
            dto = _resolve(item["dto"], base, path) if item.get("dto") else None
            entries.append(LegacyEntry(sample, meta, dto))
        else:
            raise DatasetError(f"manifest entry {i} is neither a path nor an object with 'sample'", file=path)
    return entries, metadata, _read_metrics(path)


def _read_metrics(manifest: Path) -> dict[str, Any]:
    """``<prefix>_metrics.json`` next to ``<prefix>_manifest.json``: a plain dict or {metadata, samples}."""
    if not manifest.name.endswith("_manifest.json"):
        return {}
    mfile = manifest.with_name(manifest.name[: -len("_manifest.json")] + "_metrics.json")
    if not mfile.is_file():
        return {}
    doc = _read_json(mfile, "metrics file")
    if not isinstance(doc, dict):
        raise DatasetError("metrics file must be a JSON object", file=mfile)
    if isinstance(doc.get("samples"), dict):
        return {"__metadata__": doc.get("metadata") or {}, **doc["samples"]}
    return doc


# ---------------------------------------------------------------------------------- one sample
def _as_steps(arr: np.ndarray, key: str, sample: Path) -> np.ndarray:
    arr = arr.reshape(1) if arr.ndim == 0 else arr
    if arr.ndim != 1:
        raise DatasetError(f"array {key!r} must be 1-D (T,), got shape {list(arr.shape)}", file=sample)
    return arr


def _finite(arr: np.ndarray, key: str, sample: Path) -> None:
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))
        raise DatasetError(
            f"array {key!r} holds {bad.shape[0]} NaN/Inf value(s), first at index "
            f"{tuple(int(i) for i in bad[0])}",
            file=sample,
            hint="the capture is corrupt; re-capture it or drop this sample from the manifest",
        )


def _map_to_uint8(m: np.ndarray, sample: Path) -> np.ndarray:
    """Exact conversion or refusal: format v1 stores maps as uint8 and must not silently round."""
    if m.dtype == np.uint8:
        return m
    if m.dtype == np.bool_:
        return m.astype(np.uint8)
    if np.issubdtype(m.dtype, np.floating):
        frac = m != np.floor(m)
        if frac.any():
            idx = tuple(int(i) for i in np.argwhere(frac)[0])
            raise DatasetError(
                f"map holds non-integral values (e.g. {float(m[idx])!r} at index {idx}); format v1 "
                "stores maps as uint8",
                file=sample,
                hint="only maps whose values are integers in [0, 255] (e.g. 0/1 occupancy) can be imported",
            )
    elif not np.issubdtype(m.dtype, np.integer):
        raise DatasetError(f"map has unsupported dtype {m.dtype}", file=sample)
    if m.size and (m.min() < 0 or m.max() > 255):
        raise DatasetError(
            f"map values span [{m.min()}, {m.max()}], outside the uint8 range [0, 255] of format v1",
            file=sample,
            hint="rescale the map channels to integers in [0, 255] before importing",
        )
    return m.astype(np.uint8)


def _names(value: object, count: int, prefix: str) -> tuple[str, ...]:
    if (
        isinstance(value, list)
        and len(value) == count
        and all(isinstance(v, str) and v for v in value)
        and len(set(value)) == count
    ):
        return tuple(value)
    return tuple(f"{prefix}{i}" for i in range(count))


def load_legacy_sample(entry: LegacyEntry) -> LegacySample:
    """Read, check and convert one sample; raises DatasetError naming the npz or sidecar."""
    path = entry.sample
    if not path.is_file():
        raise DatasetError("sample file does not exist", file=path, hint="fix the manifest entry")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in REQUIRED_ARRAYS if k not in npz.files]
            if missing:
                raise DatasetError(
                    f"missing required array(s) {missing} (has {sorted(npz.files)})",
                    file=path,
                    hint=f"an original replay sample holds {list(REQUIRED_ARRAYS)}",
                )
            arrays = {k: np.asarray(npz[k]) for k in REQUIRED_ARRAYS}
    except DatasetError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"not a readable .npz without pickled objects ({exc})", file=path) from None

    steps = {k: _as_steps(arrays[k], k, path) for k in _STEP_ARRAYS}
    t = steps["actions"].shape[0]
    bad = {k: int(v.shape[0]) for k, v in steps.items() if v.shape[0] != t}
    if bad:
        raise DatasetError(f"step arrays disagree on T: actions has {t}, but {bad}", file=path)
    if t == 0:
        raise DatasetError("sample holds no steps (T = 0)", file=path)
    m, feats, vp = arrays["map"], arrays["features"], _as_steps(arrays["value_preds"], "value_preds", path)
    m = m[None] if m.ndim == 3 and t == 1 else m
    if m.ndim != 4 or m.shape[0] != t:
        raise DatasetError(f"map must be (T={t}, C, H, W), got shape {list(m.shape)}", file=path)
    if m.shape[2] != m.shape[3]:
        raise DatasetError(
            f"map window is {m.shape[2]}x{m.shape[3]}; format v1 needs a square window", file=path
        )
    feats = feats[None] if feats.ndim == 1 and t == 1 else feats
    if feats.ndim != 2 or feats.shape[0] != t:
        raise DatasetError(f"features must be (T={t}, F), got shape {list(feats.shape)}", file=path)
    if vp.shape[0] not in (t, t + 1):
        raise DatasetError(f"value_preds has length {vp.shape[0]}; expected T={t} or T+1={t + 1}", file=path)
    for key, arr in (
        ("map", m),
        ("features", feats),
        ("old_log_probs", steps["old_log_probs"]),
        ("value_preds", vp),
        ("rewards", steps["rewards"]),
    ):
        _finite(arr, key, path)
    actions = steps["actions"]
    if not np.issubdtype(actions.dtype, np.integer) and (
        not np.issubdtype(actions.dtype, np.floating) or (actions != np.floor(actions)).any()
    ):
        raise DatasetError(f"actions must be integer ids, got dtype {actions.dtype}", file=path)
    if actions.min() < 0:
        raise DatasetError(f"actions holds negative id {int(actions.min())}", file=path)
    dones = steps["dones"]
    if dones.dtype != np.bool_ and not np.isin(dones, (0, 1)).all():
        raise DatasetError("dones must be booleans (or 0/1)", file=path)

    sidecar = _read_json(entry.meta, "sidecar JSON (needed for feature_names)")
    if not isinstance(sidecar, dict):
        raise DatasetError("sidecar JSON must be an object", file=entry.meta)
    fnames = sidecar.get("feature_names")
    if not isinstance(fnames, list) or not fnames or not all(isinstance(n, str) for n in fnames):
        raise DatasetError(
            "sidecar has no 'feature_names' list",
            file=entry.meta,
            hint="the original loader required it too; add the capture's feature names",
        )
    if len(fnames) != feats.shape[1]:
        raise DatasetError(
            f"sidecar lists {len(fnames)} feature_names but {path.name} has F={feats.shape[1]} features",
            file=entry.meta,
        )
    if len(set(fnames)) != len(fnames):
        raise DatasetError("sidecar feature_names has duplicates", file=entry.meta)
    shape = sidecar.get("map_shape")
    if shape is not None and list(shape) != list(m.shape[1:]):
        raise DatasetError(
            f"sidecar map_shape {list(shape)} != map array (C, H, W) {list(m.shape[1:])} in {path.name}",
            file=entry.meta,
        )
    return LegacySample(
        entry=entry,
        maps=_map_to_uint8(m, path),
        features=feats.astype(np.float32),
        actions=actions.astype(np.int64),
        log_probs=steps["old_log_probs"].astype(np.float32),
        values=vp.astype(np.float32),
        rewards=steps["rewards"].astype(np.float32),
        dones=dones.astype(bool),
        channel_names=_names(sidecar.get("map_channels"), int(m.shape[1]), "legacy_"),
        feature_names=tuple(fnames),
        sidecar=sidecar,
    )


# ---------------------------------------------------------------------------------- assembly
def _events(samples: Sequence[LegacySample], *dataset_level: Mapping[str, Any]) -> dict[str, float]:
    """Event counters: dataset-level metadata wins; else per-sample metrics are summed. Empty = unknown."""

    def pick(d: Mapping[str, Any]) -> dict[str, float]:
        out = {k: float(d[k]) for k in EVENT_COUNTERS if isinstance(d.get(k), int | float)}
        if "chat_quality_sum" not in out and isinstance(d.get("chat_quality_mean"), int | float):
            out["chat_quality_sum"] = float(d["chat_quality_mean"]) * out.get("chat_success_events", 0.0)
        return out

    for level in dataset_level:
        if found := pick(level):
            return found
    total: dict[str, float] = {}
    for s in samples:
        for source in (s.sidecar, s.sidecar.get("metrics") or {}):
            if isinstance(source, Mapping):
                for k, v in pick(source).items():
                    total[k] = total.get(k, 0.0) + v
    return total


def _assemble(
    samples: Sequence[LegacySample],
    num_actions: int,
    seen: np.ndarray,
    base_meta: Mapping[str, Any],
    metrics: Mapping[str, Any],
    manifest_meta: Mapping[str, Any],
) -> ReplayData:
    """Stack equal-length samples along the agent axis into one time-major ReplayData."""
    first = samples[0]
    t, n = first.length, len(samples)
    spec = ObservationSpec(
        map_channels=first.channel_names,
        window=int(first.maps.shape[-1]),
        feature_names=first.feature_names,
        action_names=tuple(f"legacy_action_{i}" for i in range(num_actions)),
    )
    terminated = np.stack([s.dones for s in samples], axis=1)
    actions = np.stack([s.actions for s in samples], axis=1)
    cols = {
        "maps": np.stack([s.maps for s in samples], axis=1),
        "features": np.stack([s.features for s in samples], axis=1),
        "action_mask": np.ascontiguousarray(np.broadcast_to(seen, (t, n, num_actions))),
        "actions": actions,
        "teacher_actions": actions.copy(),
        "log_probs": np.stack([s.log_probs for s in samples], axis=1),
        "values": np.stack([s.values[:t] for s in samples], axis=1),
        "final_values": np.zeros((t, n), np.float32),
        "rewards": np.stack([s.rewards for s in samples], axis=1),
        "terminated": terminated,
        "truncated": np.zeros((t, n), bool),
        "env_id": np.zeros((t, n), np.int32),
        "agent_id": np.ascontiguousarray(np.broadcast_to(np.arange(n, dtype=np.int32), (t, n))),
        "episode_id": (np.cumsum(terminated, axis=0) - terminated).astype(np.int32),
        "tick": np.ascontiguousarray(np.broadcast_to(np.arange(t, dtype=np.int32)[:, None], (t, n))),
    }
    boot = np.array([s.values[t] if s.values.shape[0] > t else 0.0 for s in samples], np.float32)
    sample_meta = []
    for s in samples:
        name = s.entry.sample.name
        m = metrics.get(name, s.sidecar.get("metrics"))
        sample_meta.append(
            {
                "sample": str(s.entry.sample),
                "meta": str(s.entry.meta),
                "dto": str(s.entry.dto) if s.entry.dto else None,
                "agent_id": s.sidecar.get("agent_id"),
                "frames": s.length,
                "bootstrap_from_value_preds": bool(s.values.shape[0] > t),
                "metrics": m if isinstance(m, dict) else {},
            }
        )
    meta = {
        **base_meta,
        "ticks": t,
        "num_agents": n,
        "legacy": {**dict(base_meta.get("legacy") or {}), "samples": sample_meta},
    }
    dataset_meta = metrics.get("__metadata__")
    events = _events(samples, manifest_meta, dataset_meta if isinstance(dataset_meta, dict) else {})
    return ReplayData.from_columns(spec, cols, bootstrap_values=boot, meta=meta, events=events)


def _load_all(
    src: str | Path, spec_policy: SpecPolicy
) -> tuple[list[LegacySample], dict[str, Any], dict[str, Any], list[dict[str, str]]]:
    if spec_policy not in ("strict", "skip"):
        raise ValueError(f"spec_policy must be 'strict' or 'skip', got {spec_policy!r}")
    entries, manifest_meta, metrics = read_entries(src)
    samples: list[LegacySample] = []
    skipped: list[dict[str, str]] = []
    for entry in entries:
        s = load_legacy_sample(entry)
        if samples and s.layout != samples[0].layout:
            ref = samples[0]
            diff = ObservationSpec(*ref.layout).describe_mismatch(ObservationSpec(*s.layout))
            if spec_policy == "strict":
                raise DatasetError(
                    f"observation layout differs from {ref.entry.sample.name}: {diff}",
                    file=entry.sample,
                    hint="import such samples separately, or pass spec_policy='skip' (--spec-policy skip)",
                )
            skipped.append({"sample": str(entry.sample), "reason": diff or "layout differs"})
            continue
        samples.append(s)
    return samples, manifest_meta, metrics, skipped


def _base_meta(
    src: str | Path, manifest_meta: Mapping[str, Any], skipped: list[dict[str, str]]
) -> dict[str, Any]:
    scenario = manifest_meta.get("scenario_name")
    seed = manifest_meta.get("seed")
    return {
        "behaviour": "legacy",
        "epsilon": None,
        "seed": seed if isinstance(seed, int) else None,
        "num_envs": 1,
        "world": {"name": scenario if isinstance(scenario, str) else "legacy", "config": None, "hash": None},
        "legacy": {
            "source": str(Path(src)),
            "capture_metadata": json.loads(json.dumps(dict(manifest_meta), default=str)),
            "skipped": skipped,
        },
    }


def _vocabulary(samples: Sequence[LegacySample]) -> tuple[int, np.ndarray, dict[str, Any]]:
    ids = np.unique(np.concatenate([s.actions for s in samples]))
    num_actions = int(ids.max()) + 1
    seen = np.zeros(num_actions, bool)
    seen[ids] = True
    lookup: dict[str, Any] = {}
    for s in samples:
        if isinstance(s.sidecar.get("action_lookup"), dict):
            lookup.update(s.sidecar["action_lookup"])
    return num_actions, seen, lookup


def import_legacy_groups(src: str | Path, *, spec_policy: SpecPolicy = "strict") -> list[ReplayData]:
    """Lossless import: one ReplayData per distinct sample length T (longest first).

    All groups share one action vocabulary (ids seen anywhere in the import).
    """
    samples, manifest_meta, metrics, skipped = _load_all(src, spec_policy)
    num_actions, seen, lookup = _vocabulary(samples)
    base = _base_meta(src, manifest_meta, skipped)
    base["legacy"]["action_lookup"] = lookup
    lengths = sorted({s.length for s in samples}, reverse=True)
    return [
        _assemble([s for s in samples if s.length == t], num_actions, seen, base, metrics, manifest_meta)
        for t in lengths
    ]


def import_legacy(
    manifest_or_dir: str | Path,
    *,
    spec_policy: SpecPolicy = "strict",
    ragged: RaggedPolicy = "error",
) -> ReplayData:
    """Convert an original capture (manifest file, capture directory or single .npz) into one ReplayData.

    ``spec_policy``: ``"strict"`` refuses samples whose map channels/window/feature names differ from
    the first sample's; ``"skip"`` leaves them out (listed in ``meta["legacy"]["skipped"]``).
    ``ragged``: what to do when samples differ in length — ``"error"`` (default, nothing is
    invented or dropped silently), ``"truncate"`` (cut all to the shortest T) or ``"largest"`` (keep
    the length group with the most transitions). Use :func:`import_legacy_groups` to keep everything.
    """
    if ragged not in ("error", "truncate", "largest"):
        raise ValueError(f"ragged must be 'error', 'truncate' or 'largest', got {ragged!r}")
    samples, manifest_meta, metrics, skipped = _load_all(manifest_or_dir, spec_policy)
    num_actions, seen, lookup = _vocabulary(samples)
    base = _base_meta(manifest_or_dir, manifest_meta, skipped)
    base["legacy"]["action_lookup"] = lookup
    lengths = sorted({s.length for s in samples})
    if len(lengths) > 1:
        counts = {t: sum(s.length == t for s in samples) for t in lengths}
        if ragged == "error":
            raise DatasetError(
                f"samples have different lengths (T: count = {counts}); format v1 stacks agents that share T",
                file=manifest_or_dir,
                hint="pass ragged='truncate' or 'largest', or use import_legacy_groups (CLI: --ragged split)",
            )
        if ragged == "truncate":
            dropped = sum(s.length - lengths[0] for s in samples)
            samples = [s.cut(lengths[0]) for s in samples]
            base["legacy"]["ragged"] = {"policy": "truncate", "length": lengths[0], "rows_dropped": dropped}
        else:
            keep = max(lengths, key=lambda t: (t * counts[t], t))
            left = [str(s.entry.sample) for s in samples if s.length != keep]
            samples = [s for s in samples if s.length == keep]
            base["legacy"]["ragged"] = {"policy": "largest", "length": keep, "samples_dropped": left}
    return _assemble(samples, num_actions, seen, base, metrics, manifest_meta)


__all__ = [
    "DEFAULT_MANIFEST",
    "REQUIRED_ARRAYS",
    "LegacyEntry",
    "LegacySample",
    "find_manifest",
    "import_legacy",
    "import_legacy_groups",
    "load_legacy_sample",
    "read_entries",
]
