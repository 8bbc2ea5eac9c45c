"""Guardrail baselines kept per dataset/world label across runs (torch-free), in
``paths.state_dir/anneal_baselines.json``: even the first PPO stage of a new run is judged against
earlier runs. Updated under a file lock, like the promotion state."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from townlet.promotion.files import BaselineFile, StateFileError, locked, read_state_file, reset_command
from townlet.promotion.rules import GuardrailMetrics
from townlet.promotion.state import PromotionError
from townlet.runs.atomic import atomic_write_text


class BaselineStoreError(StateFileError):
    """The baseline file is unreadable; the message names it and how to recover."""


@dataclass
class BaselineStore:
    """``label → {loss_total, queue_conflict_events, queue_conflict_intensity_sum}`` on disk."""

    state_dir: str | Path
    lock_timeout_s: float = 120.0

    @property
    def path(self) -> Path:
        return Path(self.state_dir).expanduser() / "anneal_baselines.json"

    def all(self) -> dict[str, dict[str, Any]]:
        """Validated entries; a corrupt or mistyped file raises and is never written over."""
        fix = f"move it aside and start without baselines: {reset_command(self.state_dir)}"
        stored = read_state_file(
            self.path, BaselineFile, what="baseline store", fix=fix, error=BaselineStoreError
        )
        return {} if stored is None else {k: v.model_dump(exclude_none=True) for k, v in stored.root.items()}

    def get(self, label: str) -> dict[str, float] | None:
        return GuardrailMetrics.from_mapping(self.all().get(label)).as_dict() or None

    def put(self, label: str, metrics: Mapping[str, Any], *, run_dir: str | Path | None = None) -> None:
        """Replace ``label``'s entry with the finite guardrail metrics given (others are dropped)."""
        clean = GuardrailMetrics.from_mapping(metrics).as_dict()
        if not clean:
            return
        with locked(self.path.with_suffix(".lock"), self.lock_timeout_s, PromotionError):
            data = self.all()
            data[label] = {
                **clean,
                "run_dir": None if run_dir is None else str(run_dir),
                "updated_at": round(time.time(), 3),
            }
            atomic_write_text(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")
