"""Import datasets in the legacy per-agent ``.npz`` + JSON sidecar layout into format v1.

The layout and the checks on each sample are in :mod:`townlet_tools.legacy.read`. Conversion rules
(why: format v1 is time-major, compact and has a fixed, named vocabulary):

* one agent sample = one column of N; samples are stacked along the agent axis **only when their
  length T matches**. Samples of different lengths form separate length groups
  (:func:`import_legacy_groups`, lossless); :func:`import_legacy` returns one dataset and by default
  refuses ragged input rather than padding (padding would invent transitions) — ``ragged="truncate"``
  cuts every sample to the shortest T (bootstrapping from the value at the cut) and
  ``ragged="largest"`` keeps the group with the most transitions;
* maps become uint8 only when every value is an integer in [0, 255]; anything else is refused;
* map channels are named from the sidecar's ``map_channels`` when it lists C names, else
  ``legacy_0..C-1``; actions are named ``legacy_action_<id>`` (the legacy layout has no stable
  action vocabulary), the mask allows exactly the ids seen anywhere in the import;
* ``old_log_probs`` → ``log_probs``, ``value_preds`` → ``values`` (+ ``bootstrap_values`` from a
  T+1-th entry, else 0), ``dones`` → ``terminated`` (``truncated`` False), ``teacher_actions`` =
  ``actions``; ``tick`` counts from 0 within the sample, ``episode_id`` counts earlier dones.

Torch-free; every problem is one :class:`DatasetError` naming the offending file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from townlet.replay.data import ReplayData
from townlet.replay.errors import DatasetError
from townlet.world.spec import EVENT_COUNTERS, ObservationSpec
from townlet_tools.legacy.read import (
    DEFAULT_MANIFEST,
    REQUIRED_ARRAYS,
    LegacyEntry,
    LegacySample,
    find_manifest,
    load_legacy_sample,
    read_entries,
)

SpecPolicy = Literal["strict", "skip"]
RaggedPolicy = Literal["error", "truncate", "largest"]


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
    """Convert a legacy capture (manifest file, capture directory or single .npz) into one ReplayData.

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
