"""The anneal's settings, validated when Hydra builds ``AnnealStrategy`` (``run.py`` adds ``run``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from townlet.config.plan import RunPlan
from townlet.config.schema.strategy_anneal import AnnealStrategyConfig
from townlet.promotion.rules import GuardrailTolerances
from townlet.strategies.anneal.schedule import (
    AnnealConfigError,
    Stage,
    parse_schedule,
    plain,
    stage_overrides,
)
from townlet.strategies.anneal.stages import build_stage_strategy
from townlet.strategies.base import StrategyBase

if TYPE_CHECKING:
    from townlet.strategies.context import TrainingContext

BASELINE_UPDATES = ("on_pass", "always", "never")
PROMOTION_KEYS = ("record", "required_passes", "hold_resets_streak")
#: The defaults' one home is the schema; a Python caller that leaves a keyword out gets the same value
#: as ``strategy=anneal`` does.
SCHEMA = AnnealStrategyConfig()


class AnnealSettings(StrategyBase):
    """``strategy=anneal``'s settings; keywords are ``AnnealStrategyConfig``'s fields.

    ``bc`` and ``ppo`` are the stage strategies' config nodes (or already-built strategies): each
    stage builds one with only its own overrides, so they stay overridable as usual.
    """

    name = "anneal"
    requires_torch = True

    def __init__(
        self,
        bc: Any,
        ppo: Any,
        schedule: Sequence[Any],
        accuracy_threshold: float = SCHEMA.accuracy_threshold,
        tolerances: Mapping[str, Any] | None = None,  # None: the schema's
        promotion: Mapping[str, Any] | None = None,  # None: the schema's
        baseline_update: str = SCHEMA.baseline_update,
        dataset_label: str | None = SCHEMA.dataset_label,
        stage_evaluation: bool = SCHEMA.stage_evaluation,
        chain_stages: bool = SCHEMA.chain_stages,
        bc_loss_coef: float = SCHEMA.bc_loss_coef,
        teacher_mix: bool = SCHEMA.teacher_mix,
        evaluation_episodes: int | None = SCHEMA.evaluation_episodes,
    ) -> None:
        stages = parse_schedule(schedule)
        _check_settings(accuracy_threshold, bc_loss_coef, evaluation_episodes, baseline_update)
        promo = _promotion_settings(promotion)
        for key, node in (("bc", bc), ("ppo", ppo)):
            if any(s.mode == key for s in stages) and node is None:
                raise AnnealConfigError(f"the schedule has {key} stages but strategy.{key} is not set")
        self.schedule: list[Stage] = stages
        self.bc = bc
        self.ppo = ppo
        self.accuracy_threshold = float(accuracy_threshold)
        self.tolerances = GuardrailTolerances.from_mapping(
            plain(tolerances) if tolerances is not None else asdict(SCHEMA.tolerances)
        )
        self.record_promotion = bool(promo["record"])
        self.required_passes = int(promo["required_passes"])
        self.hold_resets_streak = bool(promo["hold_resets_streak"])
        self.baseline_update = str(baseline_update)
        self.dataset_label = dataset_label
        self.stage_evaluation = bool(stage_evaluation)
        self.chain_stages = bool(chain_stages)
        self.bc_loss_coef = float(bc_loss_coef)
        self.teacher_mix = bool(teacher_mix)
        self.evaluation_episodes = None if evaluation_episodes is None else int(evaluation_episodes)

    def plan(self, world: Any) -> RunPlan:
        """The stages in run order, each sized in its own unit (BC epochs, PPO iterations)."""
        stages = tuple((stage.mode, stage.epochs) for stage in self.schedule)
        return RunPlan(units=sum(units for _, units in stages), stages=stages)

    def build_stage_strategy(self, stage: Stage, context: TrainingContext) -> Any:
        """The BC or PPO strategy for one stage, from its config node with the stage's overrides."""
        overrides = stage_overrides(
            stage, self.ppo, context, bc_loss_coef=self.bc_loss_coef, teacher_mix=self.teacher_mix
        )
        return build_stage_strategy(self.bc if stage.mode == "bc" else self.ppo, overrides)


def _check_settings(
    accuracy_threshold: float, bc_loss_coef: float, evaluation_episodes: int | None, baseline_update: str
) -> None:
    if not 0.0 <= float(accuracy_threshold) <= 1.0:
        raise AnnealConfigError(f"strategy.accuracy_threshold must be in [0, 1], got {accuracy_threshold}")
    if not (math.isfinite(float(bc_loss_coef)) and float(bc_loss_coef) >= 0):
        raise AnnealConfigError(f"strategy.bc_loss_coef must be >= 0, got {bc_loss_coef}")
    if evaluation_episodes is not None and int(evaluation_episodes) < 1:
        raise AnnealConfigError(
            f"strategy.evaluation_episodes must be >= 1 or null, got {evaluation_episodes}"
        )
    if str(baseline_update) not in BASELINE_UPDATES:
        raise AnnealConfigError(
            f"strategy.baseline_update must be one of {list(BASELINE_UPDATES)}, got {baseline_update!r}"
        )


def _promotion_settings(promotion: Mapping[str, Any] | None) -> dict[str, Any]:
    """The schema's promotion settings with ``promotion``'s on top."""
    given = dict(plain(promotion) or {})
    unknown = sorted(set(given) - set(PROMOTION_KEYS))
    if unknown:
        raise AnnealConfigError(f"strategy.promotion has unknown key(s) {unknown}")
    promo = {**asdict(SCHEMA.promotion), **given}
    if int(promo["required_passes"]) < 1:
        raise AnnealConfigError("strategy.promotion.required_passes must be >= 1")
    return promo
