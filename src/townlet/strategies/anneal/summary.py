"""How the run ended, reported three ways: the summary DTO (``result.json``), ``anneal_results.json``
(the promotion CLI's input) and the closing metrics record and log lines."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from townlet.promotion.rules import AnnealStatus
from townlet.runs.atomic import atomic_write_json

if TYPE_CHECKING:
    from townlet.dto import AnnealStageResultDTO, AnnealSummaryDTO
    from townlet.strategies.context import TrainingContext

RESULTS_FILE = "anneal_results.json"


@dataclass(frozen=True)
class Outcome:
    """The run's verdict and what it ends with."""

    status: AnnealStatus
    reasons: list[str]
    label: str
    stages: list[AnnealStageResultDTO]
    final_stage_index: int | None  # None: the run ends with the policy it started from
    final_checkpoint: Path | None
    evaluation: Any
    baselines: dict[str, dict[str, float]]  # this run's PPO-stage metrics, by baseline key
    stored_baselines: dict[str, dict[str, float]]  # what the stages were compared with
    promotion: dict[str, Any] | None  # the promotion state after this run, when recorded
    state_dir: Path | None

    def promotion_field(self, key: str) -> Any:
        return None if self.promotion is None else self.promotion[key]


def summarize(context: TrainingContext, outcome: Outcome, duration_sec: float) -> AnnealSummaryDTO:
    from townlet.dto import AnnealSummaryDTO

    final = outcome.final_checkpoint
    return AnnealSummaryDTO(
        duration_sec=duration_sec,
        seed=context.seed,
        device=getattr(context, "device_str", None),
        checkpoint=None if final is None else str(final),
        init_from=None if context.init_from is None else str(context.init_from),
        evaluation=outcome.evaluation,
        stages=outcome.stages,
        status=outcome.status.value,
        dataset_label=outcome.label,
        baselines=outcome.baselines,
        promotion_pass_streak=outcome.promotion_field("pass_streak"),
        promotion_candidate_ready=outcome.promotion_field("candidate_ready"),
        promotion_state=outcome.promotion_field("state"),
    )


def write_results(context: TrainingContext, outcome: Outcome) -> None:
    """``anneal_results.json``: the stages without their nested BC/PPO results, plus what the
    verdict was judged against and where the run's state lives."""
    final, state_dir = outcome.final_checkpoint, outcome.state_dir
    atomic_write_json(
        context.run_dir.path / RESULTS_FILE,
        {
            "status": outcome.status.value,
            "reasons": outcome.reasons,
            "dataset_label": outcome.label,
            "stages": [r.model_dump(mode="json", exclude={"bc", "ppo"}) for r in outcome.stages],
            "baselines": outcome.baselines,
            "stored_baselines": outcome.stored_baselines,
            "promotion": outcome.promotion,
            "final_checkpoint": None if final is None else str(final),
            "final_stage_index": outcome.final_stage_index,
            "state_dir": None if state_dir is None else str(state_dir),
            "run_dir": str(context.run_dir.path),
        },
    )


def log_outcome(context: TrainingContext, outcome: Outcome, summary: AnnealSummaryDTO) -> None:
    status, reasons = outcome.status.value, outcome.reasons
    context.metrics.log(
        {
            "strategy": "anneal",
            "anneal_status": status,
            "anneal_reasons": reasons,
            "anneal_dataset": outcome.label,
            "promotion_pass_streak": summary.promotion_pass_streak,
            "promotion_candidate_ready": summary.promotion_candidate_ready,
        },
        force=True,
    )
    context.log.info("anneal: status %s%s", status, f" ({', '.join(reasons)})" if reasons else "")
    snapshot = outcome.promotion
    if snapshot is not None:
        context.log.info(
            "promotion: state=%s pass_streak=%d/%d candidate_ready=%s",
            snapshot["state"],
            snapshot["pass_streak"],
            snapshot["required_passes"],
            snapshot["candidate_ready"],
        )
