"""Running one stage (its context and rollout service) and judging it: the BC accuracy gate, and the
PPO guardrails against their baselines."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from townlet.dto import AnnealStageResultDTO
from townlet.dto.metrics import STAGE_INDEX_KEY, STAGE_KEY
from townlet.promotion.rules import GUARDRAIL_KEYS, GuardrailMetrics, evaluate_flags, return_flag
from townlet.rollout.teacher_mix import TeacherMixRollout
from townlet.runs.rundir import RunDir
from townlet.strategies.anneal.outcome import STAGE_FILE
from townlet.strategies.ppo.records import is_number

if TYPE_CHECKING:
    from townlet.dto import PPOTrainingResultDTO
    from townlet.rollout.collect import RolloutCaptureService
    from townlet.strategies.anneal.outcome import Progress
    from townlet.strategies.anneal.settings import AnnealSettings, Stage
    from townlet.strategies.context import TrainingContext

STAGES_DIR = "stages"


class TaggedMetrics:
    """Adds the stage's tags to every record a stage strategy logs (one shared file): the generic
    ``stage_index``/``stage`` keys loggers split curves by, and the anneal's own ``anneal_cycle``."""

    def __init__(self, inner: Any, tags: Mapping[str, Any]) -> None:
        self._inner = inner
        self._tags = dict(tags)

    def log(self, record: Mapping[str, Any], *, force: bool = False) -> bool:
        return bool(self._inner.log({**self._tags, **dict(record)}, force=force))

    def __getattr__(self, name: str) -> Any:
        if name == "_inner":  # not set yet (a copy or unpickle): no endless lookup
            raise AttributeError(name)
        return getattr(self._inner, name)


def stage_context(
    ctx: TrainingContext, strategy: AnnealSettings, stage: Stage, index: int, init_from: str | None
) -> TrainingContext:
    """The parent context at the stage's directory, its metrics tagged with the stage. Training seeds
    differ per stage (no replayed rollouts); the evaluation seed does not (same episodes for all)."""
    evaluation, is_last = ctx.evaluation, index == len(strategy.stages) - 1
    evaluation = replace(
        evaluation,
        enabled=bool(evaluation.enabled) and (strategy.stage_evaluation or is_last),
        seed_offset=int(evaluation.seed_offset) - 1000 * index,
        baselines=bool(evaluation.baselines) and is_last,
        episodes=strategy.evaluation_episodes or int(evaluation.episodes),
    )
    tags = {STAGE_INDEX_KEY: index, STAGE_KEY: stage.mode, "anneal_cycle": stage.cycle}
    return replace(
        ctx,
        seed=int(ctx.seed) + 1000 * index,
        run_dir=RunDir(ctx.run_dir.path / STAGES_DIR / stage.dirname(index)),
        init_from=None if init_from is None else str(init_from),
        resume=ctx.resume,  # finished stages return their result again, the stopped one continues
        metrics=TaggedMetrics(ctx.metrics, tags),  # type: ignore[arg-type]  # duck-typed writer
        evaluation=evaluation,
    )


def with_teacher_mix(child: TrainingContext, stage: Stage, strategy: Any) -> TrainingContext:
    """Give a PPO stage the teacher-mixed rollout service (``townlet.rollout.teacher_mix``: the
    scripted action is executed with probability ``bc_weight``), unless PPO mixes natively."""
    if stage.mode != "ppo" or stage.bc_weight <= 0.0 or hasattr(strategy, "teacher_mix"):
        return child
    if str(getattr(strategy, "data_mode", "rollout")) == "replay":
        child.log.warning("anneal: bc_weight=%.2f has no effect in PPO replay mode", stage.bc_weight)
        return child
    rollout = getattr(child.services, "rollout", None)
    if rollout is None:
        return child
    # a drop-in for the rollout service: its own collect(), everything else delegated to ``rollout``
    mixed = cast("RolloutCaptureService", TeacherMixRollout(rollout, stage.bc_weight, seed=child.seed))
    return replace(child, services=replace(child.services, rollout=mixed))


def mean_return(dto: Any) -> float | None:
    """The evaluated mean return of a stage's policy (None when the stage was not evaluated)."""
    evaluation = getattr(dto, "evaluation", None)
    policy = getattr(evaluation, "policy", None)
    value = getattr(policy, "mean_return", None)
    return None if value is None or not math.isfinite(float(value)) else float(value)


def bc_result(stage: Stage, dto: Any, threshold: float) -> AnnealStageResultDTO:
    """A BC stage passes when its validation accuracy (training accuracy without a validation
    split) reaches ``threshold``."""
    accuracy = dto.val_accuracy if dto.val_accuracy is not None else dto.accuracy
    loss = dto.val_loss if dto.val_loss is not None else dto.loss
    return AnnealStageResultDTO(
        duration_sec=dto.duration_sec,
        cycle=stage.cycle,
        mode="bc",
        epochs=stage.epochs,
        accuracy=accuracy,
        loss=loss,
        threshold=threshold,
        passed=accuracy is not None and float(accuracy) >= threshold,
        bc_weight=stage.bc_weight,
        rolled_back=False,
        mean_return=mean_return(dto),
        bc=dto,
    )


def judge_ppo(
    child: TrainingContext,
    stage: Stage,
    dto: PPOTrainingResultDTO,
    label: str,
    progress: Progress,
    baseline: GuardrailMetrics | None,
    strategy: AnnealSettings,
) -> tuple[AnnealStageResultDTO, PPOTrainingResultDTO]:
    """The stage's verdict and its PPO result with the ``anneal_*`` fields filled in (so PPO needs no
    notion of a stage); one metrics record per stage carries the baselines and flags (not again for a
    stage judged before a stop); the stage's metrics become what later stages and runs compare with."""
    b = baseline or GuardrailMetrics()
    reference = None if progress.best is None else progress.best.mean_return
    baselines = {
        "anneal_loss_baseline": b.loss_total,
        "anneal_queue_baseline": b.queue_conflict_events,
        "anneal_intensity_baseline": b.queue_conflict_intensity_sum,
    }
    tags: dict[str, Any] = {
        "anneal_cycle": float(stage.cycle),
        "anneal_stage": stage.mode,
        "anneal_dataset": label,
        "anneal_bc_accuracy": progress.bc_accuracy,
        "anneal_bc_threshold": strategy.accuracy_threshold,
        "anneal_bc_passed": progress.bc_passed,
        **baselines,
    }
    numbers = {k: float(v) for k, v in tags.items() if is_number(v)}
    dto = dto.model_copy(update={**tags, "best": {**dto.best, **numbers}})
    current = GuardrailMetrics.from_mapping({k: getattr(dto, k) for k in GUARDRAIL_KEYS})
    flags = evaluate_flags(current, baseline, strategy.guardrails)
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
        return_baseline=reference,
        anneal_return_flag=return_flag(value, reference, strategy.guardrails),
        ppo=dto,
    )
    if not (child.resume and (child.run_dir.path / STAGE_FILE).is_file()):
        child.metrics.log(
            {
                "strategy": "anneal",
                **baselines,
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
    progress.observed[stage.cycle] = current
    # new values win; a metric this stage did not report keeps its old baseline
    previous = progress.previous.as_dict() if progress.previous else {}
    progress.previous = GuardrailMetrics.from_mapping({**previous, **current.as_dict()})
    return result, dto
