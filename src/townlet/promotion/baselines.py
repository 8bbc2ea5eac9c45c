"""Guardrail baselines kept per dataset/world label across runs (torch-free).

Baselines outlive a run, so even the first PPO stage of a new run is judged against earlier runs.
This store keeps the last accepted PPO-stage metrics (``loss_total``,
``queue_conflict_events``, ``queue_conflict_intensity_sum``) for each label in
``paths.state_dir/anneal_baselines.json``, updated under the same kind of file lock as the
promotion state so parallel sweep jobs do not overwrite each other's entries.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from townlet.promotion.files import BaselineFile, StateFileError, read_state_file, reset_command
from townlet.promotion.state import PromotionError
from townlet.runs.atomic import atomic_write_text, finite_or_none

BASELINE_KEYS: tuple[str, ...] = ("loss_total", "queue_conflict_events", "queue_conflict_intensity_sum")


class BaselineStoreError(StateFileError):
    """The baseline file is unreadable; the message names it and how to recover."""


@dataclass
class BaselineStore:
    """``label → {loss_total, queue_conflict_events, queue_conflict_intensity_sum}`` on disk."""

    state_dir: str | Path
    lock_timeout_s: float = 120.0
    _path: Path = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._path = Path(self.state_dir).expanduser() / "anneal_baselines.json"

    @property
    def path(self) -> Path:
        return self._path

    def _read(self) -> dict[str, dict[str, Any]]:
        """Validated entries; a corrupt or mistyped file raises and is never written over."""
        fix = f"move it aside and start without baselines: {reset_command(self.state_dir)}"
        try:
            stored = read_state_file(self._path, BaselineFile, what="baseline store", fix=fix)
        except StateFileError as exc:
            raise BaselineStoreError(str(exc)) from exc
        if stored is None:
            return {}
        return {label: entry.model_dump(exclude_none=True) for label, entry in stored.root.items()}

    def all(self) -> dict[str, dict[str, Any]]:
        return self._read()

    def get(self, label: str) -> dict[str, float] | None:
        """The stored metrics for ``label`` (only the three guardrail keys), or None."""
        entry = self._read().get(label)
        if not entry:
            return None
        metrics = {k: float(entry[k]) for k in BASELINE_KEYS if finite_or_none(entry.get(k)) is not None}
        return metrics or None

    def put(self, label: str, metrics: Mapping[str, Any], *, run_dir: str | Path | None = None) -> None:
        """Replace ``label``'s entry with the finite guardrail metrics given (others are dropped)."""
        clean = {k: float(metrics[k]) for k in BASELINE_KEYS if finite_or_none(metrics.get(k)) is not None}
        if not clean:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self._path.with_suffix(".lock")), timeout=self.lock_timeout_s)
        try:
            with lock:
                data = self._read()
                data[label] = {
                    **clean,
                    "run_dir": None if run_dir is None else str(run_dir),
                    "updated_at": round(time.time(), 3),
                }
                atomic_write_text(self._path, json.dumps(data, indent=2, sort_keys=True) + "\n")
        except Timeout as exc:
            msg = f"could not lock {lock.lock_file} within {self.lock_timeout_s:.0f}s"
            raise PromotionError(msg) from exc
