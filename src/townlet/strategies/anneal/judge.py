"""Judging a stage: the BC accuracy gate, and the PPO guardrails against their baselines."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from townlet.promotion.rules import GuardrailMetrics, GuardrailTolerances, evaluate_flags, return_flag

if TYPE_CHECKING:
    from townlet.dto import AnnealStageResultDTO
    from townlet.strategies.anneal.schedule import Stage
    from townlet.strategies.context import TrainingContext


def mean_return(dto: Any) -> float | None:
    """The evaluated mean return of a stage's policy (None when the stage was not evaluated)."""
    evaluation = getattr(dto, "evaluation", None)
    policy = getattr(evaluation, "policy", None)
    value = getattr(policy, "mean_return", None)
    return None if value is None or not math.isfinite(float(value)) else float(value)


def bc_result(stage: Stage, dto: Any, threshold: float) -> tuple[AnnealStageResultDTO, bool]:
    """A BC stage passes when its validation accuracy (training accuracy without a validation
    split) reaches ``threshold``."""
    from townlet.dto import AnnealStageResultDTO

    accuracy = dto.val_accuracy if dto.val_accuracy is not None else dto.accuracy
    loss = dto.val_loss if dto.val_loss is not None else dto.loss
    passed = accuracy is not None and float(accuracy) >= threshold
    result = AnnealStageResultDTO(
        duration_sec=dto.duration_sec,
        cycle=stage.cycle,
        mode="bc",
        epochs=stage.epochs,
        accuracy=accuracy,
        loss=loss,
        threshold=threshold,
        passed=passed,
        bc_weight=stage.bc_weight,
        rolled_back=False,
        mean_return=mean_return(dto),
        bc=dto,
    )
    return result, passed


def ppo_result(
    stage: Stage,
    dto: Any,
    baseline: GuardrailMetrics | None,
    return_reference: float | None,
    tolerances: GuardrailTolerances,
) -> tuple[AnnealStageResultDTO, GuardrailMetrics]:
    """The stage's guardrail flags from the shared rules (whatever PPO itself logged per iteration),
    and its metrics, which later stages and runs compare with."""
    from townlet.dto import AnnealStageResultDTO

    current = GuardrailMetrics.from_mapping(
        {
            "loss_total": dto.loss_total,
            "queue_conflict_events": dto.queue_conflict_events,
            "queue_conflict_intensity_sum": dto.queue_conflict_intensity_sum,
        }
    )
    flags = evaluate_flags(current, baseline, tolerances)
    value = mean_return(dto)
    result = AnnealStageResultDTO(
        duration_sec=dto.duration_sec,
        cycle=stage.cycle,
        mode="ppo",
        epochs=stage.epochs,
        bc_weight=stage.bc_weight,
        loss_total=dto.loss_total,
        loss_policy=dto.loss_policy,
        loss_value=dto.loss_value,
        queue_conflict_events=dto.queue_conflict_events,
        queue_conflict_intensity_sum=dto.queue_conflict_intensity_sum,
        anneal_loss_flag=flags.loss,
        anneal_queue_flag=flags.queue,
        anneal_intensity_flag=flags.intensity,
        mean_return=value,
        return_baseline=return_reference,
        anneal_return_flag=return_flag(value, return_reference, tolerances),
        ppo=dto,
    )
    return result, current


def log_guardrails(
    child: TrainingContext, stage: Stage, result: AnnealStageResultDTO, baseline: GuardrailMetrics | None
) -> None:
    """One metrics record per PPO stage with its baselines and flags, tagged like the stage's own."""
    b = baseline or GuardrailMetrics()
    child.metrics.log(
        {
            "strategy": "anneal",
            "anneal_loss_baseline": b.loss_total,
            "anneal_queue_baseline": b.queue_conflict_events,
            "anneal_intensity_baseline": b.queue_conflict_intensity_sum,
            "anneal_loss_flag": result.anneal_loss_flag,
            "anneal_queue_flag": result.anneal_queue_flag,
            "anneal_intensity_flag": result.anneal_intensity_flag,
            "anneal_return": result.mean_return,
            "anneal_return_baseline": result.return_baseline,
            "anneal_return_flag": result.anneal_return_flag,
            "anneal_bc_weight": stage.bc_weight,
        },
        force=True,
    )


def merge(old: GuardrailMetrics | None, new: GuardrailMetrics) -> GuardrailMetrics:
    """New values win; a metric the new stage did not report keeps its old baseline."""
    merged = {**(old.as_dict() if old else {}), **new.as_dict()}
    return GuardrailMetrics.from_mapping(merged)
