"""What carries over between runs, under ``paths.state_dir``: the PPO guardrail baselines of each
dataset/world label and cycle, and the promotion streak."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from townlet.promotion.rules import AnnealStatus, GuardrailMetrics
from townlet.strategies.anneal.schedule import plain

if TYPE_CHECKING:
    from townlet.promotion.baselines import BaselineStore
    from townlet.strategies.anneal.schedule import Stage
    from townlet.strategies.anneal.settings import AnnealSettings
    from townlet.strategies.context import TrainingContext


def default_dataset_label(context: TrainingContext) -> str:
    """``<dataset kind>/<world name>-<hash of the world config>``: baselines are only comparable
    between runs on the same data source and the same world."""
    kind = getattr(context.dataset, "kind", None) or getattr(context.dataset, "name", None) or "dataset"
    world = context.world
    raw = asdict(world) if is_dataclass(world) and not isinstance(world, type) else plain(world)
    digest = hashlib.sha1(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{getattr(kind, 'value', kind)}/{getattr(world, 'name', 'world')}-{digest}"


def baseline_key(label: str, cycle: int) -> str:
    """Baselines are kept per label *and* cycle: a stage is compared with the same stage (same
    bc_weight, same place in the schedule) of earlier runs, i.e. like with like."""
    return f"{label}@cycle{cycle}"


def state_dir_of(context: TrainingContext) -> Path | None:
    """The promotion service's state directory, else ``paths.state_dir`` from the run metadata."""
    service = getattr(context.services, "promotion", None)
    value = getattr(service, "state_dir", None) or context.metadata.get("state_dir")
    return None if value is None else Path(value)


def baseline_store(state_dir: Path | None) -> BaselineStore | None:
    if state_dir is None:
        return None
    from townlet.promotion.baselines import BaselineStore

    return BaselineStore(state_dir)


def load_baselines(
    store: BaselineStore | None, label: str, schedule: Sequence[Stage]
) -> dict[int, GuardrailMetrics]:
    """The stored baselines of the schedule's PPO cycles (cycles without one are left out)."""
    stored: dict[int, GuardrailMetrics] = {}
    for s in schedule:
        entry = store.get(baseline_key(label, s.cycle)) if store is not None and s.mode == "ppo" else None
        if entry:
            stored[s.cycle] = GuardrailMetrics.from_mapping(entry)
    return stored


def _should_store(baseline_update: str, status: AnnealStatus, has_stored: bool) -> bool:
    if baseline_update == "always":
        return True
    if baseline_update == "never":
        return False
    return status is AnnealStatus.PASS or not has_stored


def store_baselines(
    store: BaselineStore | None,
    context: TrainingContext,
    label: str,
    observed: dict[int, GuardrailMetrics],
    stored: dict[int, GuardrailMetrics],
    *,
    baseline_update: str,
    status: AnnealStatus,
) -> None:
    """Make this run's PPO-stage metrics the baselines of later runs, as ``baseline_update`` says:
    ``on_pass`` only after a PASS run, or for a cycle that has no baseline yet."""
    for cycle, metrics in observed.items():
        if store is not None and _should_store(baseline_update, status, cycle in stored):
            store.put(baseline_key(label, cycle), metrics.as_dict(), run_dir=context.run_dir.path)


def record_promotion(
    strategy: AnnealSettings,
    context: TrainingContext,
    state_dir: Path | None,
    status: AnnealStatus,
    final: Path | None,
    label: str,
) -> dict[str, Any] | None:
    """Add the run's PASS/HOLD/FAIL to the file-locked promotion state; its snapshot, or None
    when promotion is not recorded."""
    rules = strategy.promotion_rules
    if not rules.record or state_dir is None:
        return None
    from townlet.promotion.state import PromotionService

    service = PromotionService(
        state_dir, required_passes=rules.required_passes, hold_resets_streak=rules.hold_resets_streak
    )
    return service.record_evaluation(
        status.value,
        run_dir=context.run_dir.path,
        checkpoint=final,
        detail={"dataset_label": label, "cycle": strategy.stages[-1].cycle},
    )
