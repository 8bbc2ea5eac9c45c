"""What the stages leave behind: progress, the final stage (the last passing one, or after a return
flag the best-evaluated), baselines and promotion streak for later runs, and the verdict.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from townlet.dto import AnnealSummaryDTO
from townlet.nets.checkpoints import BEST, LAST, resolve_checkpoint_path
from townlet.promotion.rules import AnnealStatus, GuardrailMetrics, status_reasons
from townlet.runs.atomic import atomic_write_bytes, atomic_write_json
from townlet.strategies.anneal.settings import as_data

if TYPE_CHECKING:
    from townlet.dto import AnnealStageResultDTO
    from townlet.promotion.baselines import BaselineStore
    from townlet.strategies.anneal.settings import Stage
    from townlet.strategies.context import TrainingContext

STAGE_FILE = "stage.json"
RESULTS_FILE = "anneal_results.json"


@dataclass(frozen=True)
class Passing:
    """A stage whose policy the run may end with: its index, evaluated return, checkpoint, evaluation."""

    index: int
    mean_return: float | None
    checkpoint: str | None
    evaluation: Any


@dataclass
class Progress:
    """What the stages run so far have left for the next one and for the end of the run."""

    checkpoint: str | None  # what the next stage starts from
    last_passing: Passing  # where a failed BC stage rolls back to
    best: Passing | None = None  # the best-evaluated passing stage: where a return flag rolls back to
    evaluation: Any = None  # the latest stage evaluation
    bc_accuracy: float | None = None
    bc_passed: bool = True
    previous: GuardrailMetrics | None = None  # the PPO stages' metrics so far (chain_stages baseline)
    observed: dict[int, GuardrailMetrics] = field(default_factory=dict)  # per cycle: next baselines
    results: list[AnnealStageResultDTO] = field(default_factory=list)
    stage_dirs: list[Path] = field(default_factory=list)

    def record(self, result: AnnealStageResultDTO, child: TrainingContext) -> None:
        """Keep the stage's verdict and write it to its ``stage.json``."""
        self.results.append(result)
        self.stage_dirs.append(child.run_dir.path)
        write_stage(child.run_dir.path, result)

    def advance(self, index: int, result: AnnealStageResultDTO, dto: Any) -> None:
        """Move past a stage the run may end with: the next stage starts from its checkpoint."""
        self.checkpoint = getattr(dto, "checkpoint", None) or self.checkpoint
        self.evaluation = getattr(dto, "evaluation", None) or self.evaluation
        self.last_passing = Passing(index, result.mean_return, self.checkpoint, self.evaluation)
        value, best = result.mean_return, self.best
        # at least as good as the best so far (ties go to the later, longer-trained stage)
        improves = best is None or (
            value is not None and (best.mean_return is None or value >= best.mean_return)
        )
        if not result.anneal_return_flag and improves:
            self.best = self.last_passing


def write_stage(stage_dir: Path, result: AnnealStageResultDTO) -> None:
    """``stage.json``: the stage's result, rewritten if a later rollback marks it."""
    atomic_write_json(stage_dir / STAGE_FILE, result.model_dump(mode="json"))


def final_stage(progress: Progress, log: logging.Logger) -> Passing:
    """The stage whose policy the run ends with: the last passing one, unless a PPO stage lost
    return; then the best-evaluated passing stage, and every stage after it is marked rolled back
    (in the results and in its ``stage.json``)."""
    best = progress.best
    if best is None or not any(r.anneal_return_flag for r in progress.results):
        return progress.last_passing
    results = progress.results
    for i in range(best.index + 1, len(results)):
        results[i] = results[i].model_copy(update={"rolled_back": True})
        write_stage(progress.stage_dirs[i], results[i])
    log.warning(
        "anneal: return flag raised; the final policy rolls back to stage %d (return %s)",
        best.index + 1,
        best.mean_return,
    )
    return best


def install_final_checkpoint(context: TrainingContext, source: str | None) -> Path | None:
    """Copy the final (or rolled-back-to) stage checkpoint to the run's ``checkpoints/{best,last}.pt``,
    so ``init_from=<run dir>``, ``townlet-eval`` and promotion all see the anneal's real outcome."""
    if source is None:
        return None
    data = resolve_checkpoint_path(source).read_bytes()
    folder = context.run_dir.checkpoints
    for name in (LAST, BEST):
        atomic_write_bytes(folder / name, data)
    return folder / BEST


def final_evaluation(progress: Progress, chosen: Passing, status: AnnealStatus) -> Any:
    """The run's evaluation block: the last stage's, unless the run ends with another stage's policy;
    then the chosen stage's policy row next to the scripted/random rows of the last evaluated stage
    (same seeds and episodes, so comparable)."""
    last, picked = progress.evaluation, chosen.evaluation
    if (chosen is progress.last_passing and status is not AnnealStatus.FAIL) or picked is None:
        return last
    if last is None or getattr(picked, "scripted", None) is not None:
        return picked
    return last.model_copy(update={"policy": picked.policy})


def default_dataset_label(context: TrainingContext) -> str:
    """``<dataset kind>/<world name>-<hash of the world config>``: baselines are only comparable
    between runs on the same data source and the same world."""
    kind = getattr(context.dataset, "kind", None) or getattr(context.dataset, "name", None) or "dataset"
    world = context.world
    digest = hashlib.sha1(json.dumps(as_data(world), sort_keys=True, default=str).encode()).hexdigest()[:8]
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


def load_baselines(
    store: BaselineStore | None, label: str, schedule: Sequence[Stage]
) -> dict[int, GuardrailMetrics]:
    """The stored baselines of the schedule's PPO cycles (cycles without one are left out)."""
    if store is None:
        return {}
    found = {s.cycle: store.get(baseline_key(label, s.cycle)) for s in schedule if s.mode == "ppo"}
    return {cycle: GuardrailMetrics.from_mapping(e) for cycle, e in found.items() if e}


def report(
    context: TrainingContext,
    progress: Progress,
    chosen: Passing,
    stored: dict[int, GuardrailMetrics],
    status: AnnealStatus,
    label: str,
    final: Path | None,
    promotion: dict[str, Any] | None,
    duration_sec: float,
) -> AnnealSummaryDTO:
    """The summary DTO; also writes ``anneal_results.json`` (the stages without their nested BC/PPO
    results, plus what the verdict was judged against and where the run's state lives) and logs the
    closing record and lines. ``promotion`` is the promotion state after this run, when recorded."""
    snapshot, reasons = promotion or {}, status_reasons(progress.results)
    state_dir = state_dir_of(context)
    baselines = {baseline_key(label, c): m.as_dict() for c, m in progress.observed.items()}
    summary = AnnealSummaryDTO(
        duration_sec=duration_sec,
        seed=context.seed,
        device=getattr(context, "device_str", None),
        checkpoint=None if final is None else str(final),
        init_from=None if context.init_from is None else str(context.init_from),
        evaluation=final_evaluation(progress, chosen, status),
        stages=progress.results,
        status=status.value,
        dataset_label=label,
        baselines=baselines,
        promotion_pass_streak=snapshot.get("pass_streak"),
        promotion_candidate_ready=snapshot.get("candidate_ready"),
        promotion_state=snapshot.get("state"),
    )
    atomic_write_json(
        context.run_dir.path / RESULTS_FILE,
        {
            "status": status.value,
            "reasons": reasons,
            "dataset_label": label,
            "stages": [r.model_dump(mode="json", exclude={"bc", "ppo"}) for r in progress.results],
            "baselines": baselines,
            "stored_baselines": {baseline_key(label, c): m.as_dict() for c, m in stored.items()},
            "promotion": promotion,
            "final_checkpoint": None if final is None else str(final),
            "final_stage_index": None if chosen.index < 0 else chosen.index,
            "state_dir": None if state_dir is None else str(state_dir),
            "run_dir": str(context.run_dir.path),
        },
    )
    context.metrics.log(
        {
            "strategy": "anneal",
            "anneal_status": status.value,
            "anneal_reasons": reasons,
            "anneal_dataset": label,
            "promotion_pass_streak": summary.promotion_pass_streak,
            "promotion_candidate_ready": summary.promotion_candidate_ready,
        },
        force=True,
    )
    context.log.info("anneal: status %s%s", status.value, f" ({', '.join(reasons)})" if reasons else "")
    if promotion is not None:
        context.log.info(
            "promotion: state=%s pass_streak=%d/%d candidate_ready=%s",
            snapshot["state"],
            snapshot["pass_streak"],
            snapshot["required_passes"],
            snapshot["candidate_ready"],
        )
    return summary
