"""Reading the legacy per-agent capture layout: manifests, and one checked, converted sample at a time.

The layout (one sample per agent): ``<stem>.npz`` holding ``map`` (T,C,H,W) float32, ``features``
(T,F), ``actions``, ``old_log_probs``, ``value_preds`` (T or T+1), ``rewards`` and ``dones`` (all
(T,)), a sidecar ``<stem>.json`` (``feature_names`` required, ``map_shape``, ``map_channels``,
``action_lookup``, ``metrics`` …), and a manifest that is either a plain list of
``{sample, meta[, dto]}`` / path strings or ``{metadata, samples: [...]}``; capture directories
hold ``rollout_sample_manifest.json`` (+ optional ``rollout_sample_metrics.json``).

Every problem is one :class:`DatasetError` naming the offending npz, sidecar or manifest, because a
capture of thousands of samples is only fixable when the message says which file to look at.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from townlet.replay.errors import DatasetError

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
            import yaml  # only legacy YAML manifests need it

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
    metadata, items = _manifest_items(path)
    return [_entry(item, i, path) for i, item in enumerate(items)], metadata, _read_metrics(path)


def _manifest_items(path: Path) -> tuple[dict[str, Any], list[Any]]:
    """(metadata, sample items) of a manifest in either of its two shapes."""
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
    return metadata, items


def _entry(item: Any, i: int, manifest: Path) -> LegacyEntry:
    base = manifest.parent
    if isinstance(item, str):
        sample = _resolve(item, base, manifest)
        return LegacyEntry(sample, sample.with_suffix(".json"))
    if isinstance(item, dict) and "sample" in item:
        sample = _resolve(item["sample"], base, manifest)
        meta = _resolve(item["meta"], base, manifest) if item.get("meta") else sample.with_suffix(".json")
        dto = _resolve(item["dto"], base, manifest) if item.get("dto") else None
        return LegacyEntry(sample, meta, dto)
    raise DatasetError(f"manifest entry {i} is neither a path nor an object with 'sample'", file=manifest)


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


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The required arrays of one .npz (pickles refused: a capture file must not run code)."""
    if not path.is_file():
        raise DatasetError("sample file does not exist", file=path, hint="fix the manifest entry")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in REQUIRED_ARRAYS if k not in npz.files]
            if missing:
                raise DatasetError(
                    f"missing required array(s) {missing} (has {sorted(npz.files)})",
                    file=path,
                    hint=f"a legacy replay sample holds {list(REQUIRED_ARRAYS)}",
                )
            return {k: np.asarray(npz[k]) for k in REQUIRED_ARRAYS}
    except DatasetError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"not a readable .npz without pickled objects ({exc})", file=path) from None


def _shaped(arrays: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    """The arrays with checked shapes, keyed by their npz names (a T = 1 sample may omit the T axis)."""
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
    return {**steps, "map": m, "features": feats, "value_preds": vp}


def _check_values(a: dict[str, np.ndarray], path: Path) -> None:
    """No NaN/Inf, integral non-negative action ids, boolean (or 0/1) dones."""
    for key in ("map", "features", "old_log_probs", "value_preds", "rewards"):
        _finite(a[key], key, path)
    actions = a["actions"]
    if not np.issubdtype(actions.dtype, np.integer) and (
        not np.issubdtype(actions.dtype, np.floating) or (actions != np.floor(actions)).any()
    ):
        raise DatasetError(f"actions must be integer ids, got dtype {actions.dtype}", file=path)
    if actions.min() < 0:
        raise DatasetError(f"actions holds negative id {int(actions.min())}", file=path)
    dones = a["dones"]
    if dones.dtype != np.bool_ and not np.isin(dones, (0, 1)).all():
        raise DatasetError("dones must be booleans (or 0/1)", file=path)


def _read_sidecar(entry: LegacyEntry, m: np.ndarray, feats: np.ndarray) -> tuple[dict[str, Any], list[str]]:
    """The sidecar object and its feature names, checked against the sample's arrays."""
    sidecar = _read_json(entry.meta, "sidecar JSON (needed for feature_names)")
    if not isinstance(sidecar, dict):
        raise DatasetError("sidecar JSON must be an object", file=entry.meta)
    fnames = sidecar.get("feature_names")
    if not isinstance(fnames, list) or not fnames or not all(isinstance(n, str) for n in fnames):
        raise DatasetError(
            "sidecar has no 'feature_names' list",
            file=entry.meta,
            hint="the legacy layout requires it; add the capture's feature names",
        )
    if len(fnames) != feats.shape[1]:
        raise DatasetError(
            f"sidecar lists {len(fnames)} feature_names but {entry.sample.name} has F={feats.shape[1]} "
            "features",
            file=entry.meta,
        )
    if len(set(fnames)) != len(fnames):
        raise DatasetError("sidecar feature_names has duplicates", file=entry.meta)
    shape = sidecar.get("map_shape")
    if shape is not None and list(shape) != list(m.shape[1:]):
        raise DatasetError(
            f"sidecar map_shape {list(shape)} != map array (C, H, W) {list(m.shape[1:])} in "
            f"{entry.sample.name}",
            file=entry.meta,
        )
    return sidecar, fnames


def load_legacy_sample(entry: LegacyEntry) -> LegacySample:
    """Read, check and convert one sample; raises DatasetError naming the npz or sidecar."""
    path = entry.sample
    a = _shaped(_read_arrays(path), path)
    _check_values(a, path)
    m, feats = a["map"], a["features"]
    sidecar, fnames = _read_sidecar(entry, m, feats)
    return LegacySample(
        entry=entry,
        maps=_map_to_uint8(m, path),
        features=feats.astype(np.float32),
        actions=a["actions"].astype(np.int64),
        log_probs=a["old_log_probs"].astype(np.float32),
        values=a["value_preds"].astype(np.float32),
        rewards=a["rewards"].astype(np.float32),
        dones=a["dones"].astype(bool),
        channel_names=_names(sidecar.get("map_channels"), int(m.shape[1]), "legacy_"),
        feature_names=tuple(fnames),
        sidecar=sidecar,
    )
