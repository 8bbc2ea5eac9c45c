"""Running one stage: its context, its strategy, and the record it leaves in its directory."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import is_dataclass, replace
from typing import TYPE_CHECKING, Any, cast

from townlet.dto.metrics import STAGE_INDEX_KEY, STAGE_KEY
from townlet.promotion.rules import GuardrailMetrics
from townlet.strategies.anneal.schedule import is_config_node, plain

if TYPE_CHECKING:
    from townlet.dto import PPOTrainingResultDTO
    from townlet.rollout.collect import RolloutCaptureService
    from townlet.strategies.anneal.progress import Progress
    from townlet.strategies.anneal.schedule import Stage
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
        return getattr(self._inner, name)


def tag_ppo_result(
    dto: PPOTrainingResultDTO,
    stage: Stage,
    label: str,
    progress: Progress,
    baseline: GuardrailMetrics | None,
    *,
    threshold: float,
) -> PPOTrainingResultDTO:
    """The PPO stage's result with its ``anneal_*`` fields: the stage's identity and the baselines its
    guardrails are judged against (the numeric ones also in ``best``, the best iteration's figures).
    The anneal fills them in, so PPO needs no notion of a stage."""
    b = baseline or GuardrailMetrics()
    fields: dict[str, Any] = {
        "anneal_cycle": float(stage.cycle),
        "anneal_stage": stage.mode,
        "anneal_dataset": label,
        "anneal_bc_accuracy": progress.bc_accuracy,
        "anneal_bc_threshold": threshold,
        "anneal_bc_passed": progress.bc_passed,
        "anneal_loss_baseline": b.loss_total,
        "anneal_queue_baseline": b.queue_conflict_events,
        "anneal_intensity_baseline": b.queue_conflict_intensity_sum,
    }
    numbers = {k: float(v) for k, v in fields.items() if _is_number(v)}
    return dto.model_copy(update={**fields, "best": {**dto.best, **numbers}})


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))


def stage_context(
    context: TrainingContext,
    stage: Stage,
    index: int,
    init_from: str | None,
    *,
    evaluate: bool,
    is_last: bool,
    episodes: int | None,
) -> TrainingContext:
    """The parent context re-pointed at the stage's directory and checkpoint, with a metrics writer
    that tags every line with the stage.

    Training seeds differ per stage (two PPO stages must not replay the same rollouts); the
    evaluation seed does not, so every stage's policy is judged on the same episodes (as many as
    ``episodes``, when set: the return guardrail needs more than a couple). Only the last stage
    compares with the scripted/random baselines, and only it is evaluated unless ``evaluate``.
    """
    from townlet.runs.rundir import RunDir

    evaluation = context.evaluation
    if is_dataclass(evaluation) and not isinstance(evaluation, type):
        evaluation = replace(
            evaluation,
            enabled=bool(evaluation.enabled) and (evaluate or is_last),
            seed_offset=int(evaluation.seed_offset) - 1000 * index,
            baselines=bool(evaluation.baselines) and is_last,
            episodes=episodes or int(evaluation.episodes),
        )
    tags = {STAGE_INDEX_KEY: index, STAGE_KEY: stage.mode, "anneal_cycle": stage.cycle}
    return replace(
        context,
        seed=int(context.seed) + 1000 * index,
        run_dir=RunDir(context.run_dir.path / STAGES_DIR / stage.dirname(index)),
        init_from=None if init_from is None else str(init_from),
        resume=context.resume,  # finished stages return their result again, the stopped one continues
        metrics=TaggedMetrics(context.metrics, tags),  # type: ignore[arg-type]  # duck-typed writer
        evaluation=evaluation,
    )


def build_stage_strategy(node: Any, overrides: Mapping[str, Any]) -> Any:
    """The stage's strategy: built from its config node, or a copy of an already-built strategy
    (tests, Python callers); an override the strategy does not take is dropped."""
    if is_config_node(node):
        from townlet.config.instantiate import build

        # the node holds every setting its strategy takes (its schema's fields): a key it lacks is not one
        accepted = {key for key in plain(node) if not str(key).startswith("_")}
        return build(node, **{k: v for k, v in overrides.items() if k in accepted})
    strategy = copy.copy(node)
    for key, value in overrides.items():
        if hasattr(strategy, key):
            setattr(strategy, key, value)
    return strategy


def with_teacher_mix(child: TrainingContext, stage: Stage, strategy: Any) -> TrainingContext:
    """Give a PPO stage the teacher-mixed rollout service, unless PPO mixes natively (``teacher_mix``).

    ``bc_weight`` = probability that the scripted action is executed; the mixture's exact log-prob is
    recorded, so PPO's ratios stay correct (see ``townlet.rollout.teacher_mix``).
    """
    if stage.mode != "ppo" or stage.bc_weight <= 0.0 or hasattr(strategy, "teacher_mix"):
        return child
    if str(getattr(strategy, "data_mode", "rollout")) == "replay":
        child.log.warning("anneal: bc_weight=%.2f has no effect in PPO replay mode", stage.bc_weight)
        return child
    rollout = getattr(child.services, "rollout", None)
    if rollout is None:
        return child
    from townlet.rollout.teacher_mix import TeacherMixRollout

    # a drop-in for the rollout service: its own collect(), everything else delegated to ``rollout``
    mixed = cast("RolloutCaptureService", TeacherMixRollout(rollout, stage.bc_weight, seed=child.seed))
    return replace(child, services=replace(child.services, rollout=mixed))
