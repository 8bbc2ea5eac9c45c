"""Replay dataset service: a `dataset=` config to data, captured once (file lock) into a directory
named after the hash of all its inputs, so a changed world never gets a stale dataset."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from filelock import FileLock

import townlet
from townlet.replay import (
    FORMAT_VERSION,
    DatasetError,
    DatasetExistsError,
    ReplayData,
    StreamingDataset,
    load_dataset,
    stable_hash,
)
from townlet.rollout.collect import RolloutCaptureService, world_provenance
from townlet.world import build_spec, load_world_config, to_world_config

log = logging.getLogger(__name__)

CAPTURE_KINDS: dict[str, str] = {"scripted": "scripted", "random": "random", "queue_conflict": "scripted"}
DEFAULT_WORLD_FOR_KIND: dict[str, str] = {"queue_conflict": "queue_conflict"}


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    value = cfg.get(key, default) if isinstance(cfg, dict) else getattr(cfg, key, default)
    return default if value is None else value


def _kind(cfg: Any) -> str:
    kind = _get(cfg, "kind", "scripted")
    return str(getattr(kind, "value", kind))


def default_data_dir() -> Path:
    """``$TOWNLET_ROOT/data`` or the checkout's data/ (what conf/paths/default.yaml resolves to)."""
    root = os.environ.get("TOWNLET_ROOT")
    return Path(root) / "data" if root else Path(__file__).resolve().parents[3] / "data"


class ReplayDatasetService:
    """``resolve(dataset_cfg, world_cfg, data_dir)`` -> ReplayData (or StreamingDataset)."""

    def __init__(self, data_dir: str | None = None) -> None:
        self.data_dir = data_dir

    def resolve(
        self, dataset_cfg: Any, world_cfg: Any, data_dir: str | Path | None = None
    ) -> ReplayData | StreamingDataset:
        kind = _kind(dataset_cfg)
        streaming = bool(_get(dataset_cfg, "streaming", False))
        verify = bool(_get(dataset_cfg, "verify", True))
        if kind == "manifest":
            path = _get(dataset_cfg, "path")
            if not path:
                raise DatasetError(
                    "dataset=manifest needs a path", hint="add dataset.path=/path/to/dataset_dir"
                )
            data = load_dataset(Path(str(path)).expanduser(), streaming=streaming, verify=verify)
            data.meta.setdefault("path", str(path))
            return data
        if kind not in CAPTURE_KINDS:
            raise DatasetError(
                f"unknown dataset kind {kind!r}", hint=f"use one of {[*CAPTURE_KINDS, 'manifest']}"
            )
        # the run's world, or the scenario the dataset names (``dataset.world`` / the kind's default)
        scenario = _get(dataset_cfg, "world") or DEFAULT_WORLD_FOR_KIND.get(kind)
        world = load_world_config(str(scenario)) if scenario else world_cfg
        request = self.capture_request(dataset_cfg, world)
        if not _get(dataset_cfg, "cache", True):
            return self._capture(request, world, None)
        root = Path(data_dir or self.data_dir or default_data_dir()).expanduser()
        name = f"{request['behaviour']}-t{request['ticks']}-s{request['seed']}-{stable_hash(request)}"
        return self._cached(request, world, root / name, streaming=streaming, verify=verify)

    def capture_request(self, dataset_cfg: Any, world_cfg: Any) -> dict[str, Any]:
        """Everything that determines the captured bytes: its hash is the cache key."""
        kind = _kind(dataset_cfg)
        return {
            "world_hash": world_provenance(world_cfg)["hash"],
            # The observation layout and code version are part of what produced the bytes: a cache
            # written by an older feature set must never be served to a newer network.
            "observation_spec": build_spec(to_world_config(world_cfg)).fingerprint(),
            "townlet_version": townlet.__version__,
            "behaviour": CAPTURE_KINDS[kind],
            "epsilon": float(_get(dataset_cfg, "epsilon", 0.0)),
            "ticks": int(_get(dataset_cfg, "ticks", 400)),
            "seed": int(_get(dataset_cfg, "seed", 0)),
            "format_version": FORMAT_VERSION,
            "shard_rows": int(_get(dataset_cfg, "shard_rows", 65_536)),
            "compress": bool(_get(dataset_cfg, "compress", False)),
        }

    def _capture(self, request: dict[str, Any], world: Any, target: Path | None) -> ReplayData:
        data = RolloutCaptureService().capture(
            world,
            behaviour=request["behaviour"],
            ticks=request["ticks"],
            seed=request["seed"],
            epsilon=request["epsilon"],
            output_dir=target,
            shard_rows=request["shard_rows"],
            compress=request["compress"],
        )
        data.meta["cache_key"] = stable_hash(request)
        return data

    def _cached(
        self, request: dict[str, Any], world: Any, target: Path, *, streaming: bool, verify: bool
    ) -> ReplayData | StreamingDataset:
        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock"):
            if target.exists():
                try:
                    data = load_dataset(target, streaming=streaming, verify=verify)
                    log.info("dataset: using cached %s", target)
                    data.meta.setdefault("path", str(target))
                    return data
                except DatasetError as exc:
                    log.warning("dataset: cached copy is unusable (%s); capturing again", exc)
                    trash = target.parent / f".{target.name}.bad-{uuid.uuid4().hex[:8]}"
                    os.rename(target, trash)
                    shutil.rmtree(trash, ignore_errors=True)
            log.info("dataset: capturing %s into %s", request, target)
            try:
                data = self._capture(request, world, target)
            except DatasetExistsError:  # another process (without the lock) won the rename
                return load_dataset(target, streaming=streaming, verify=verify)
        if streaming:
            return load_dataset(target, streaming=True, verify=verify)
        return data
