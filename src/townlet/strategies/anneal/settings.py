"""``strategy=anneal``'s settings: ``AnnealStrategyConfig``'s fields (the schema is their one home),
checked and turned into what the run reads when Hydra builds ``AnnealStrategy`` (``run.py`` adds ``run``).

``bc`` and ``ppo`` are the stage strategies' config nodes (or already-built strategies): each stage
builds one with only its own overrides, so they stay overridable as usual.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from townlet.config.plan import RunPlan
from townlet.config.schema.strategy_anneal import AnnealPromotionConfig, AnnealStrategyConfig
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


@dataclass
class AnnealSettings(AnnealStrategyConfig, StrategyBase):
    """The schema's fields as given, plus the validated ``stages`` (run order), ``guardrails``
    (the flag tolerances) and ``promotion_rules`` derived from them."""

    name: ClassVar[str] = "anneal"
    requires_torch: ClassVar[bool] = True
    stages: list[Stage] = field(init=False, repr=False, compare=False)
    guardrails: GuardrailTolerances = field(init=False, repr=False, compare=False)
    promotion_rules: AnnealPromotionConfig = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.stages = parse_schedule(self.schedule)
        for key, node in (("bc", self.bc), ("ppo", self.ppo)):
            if any(s.mode == key for s in self.stages) and node is None:
                raise AnnealConfigError(f"the schedule has {key} stages but strategy.{key} is not set")
        _check(self)
        self.guardrails = GuardrailTolerances.from_mapping(_as_dict(self.tolerances))
        self.promotion_rules = _promotion(self.promotion)

    def plan(self, world: Any) -> RunPlan:
        """The stages in run order, each sized in its own unit (BC epochs, PPO iterations)."""
        stages = tuple((stage.mode, stage.epochs) for stage in self.stages)
        return RunPlan(units=sum(units for _, units in stages), stages=stages)

    def build_stage_strategy(self, stage: Stage, context: TrainingContext) -> Any:
        """The BC or PPO strategy for one stage, from its config node with the stage's overrides."""
        overrides = stage_overrides(
            stage, self.ppo, context, bc_loss_coef=self.bc_loss_coef, teacher_mix=self.teacher_mix
        )
        return build_stage_strategy(self.bc if stage.mode == "bc" else self.ppo, overrides)


def _as_dict(node: Any) -> dict[str, Any]:
    """A schema dataclass or a config mapping as a plain dict."""
    return asdict(node) if is_dataclass(node) and not isinstance(node, type) else dict(plain(node) or {})


def _check(s: AnnealSettings) -> None:
    if not 0.0 <= float(s.accuracy_threshold) <= 1.0:
        raise AnnealConfigError(f"strategy.accuracy_threshold must be in [0, 1], got {s.accuracy_threshold}")
    if not (math.isfinite(float(s.bc_loss_coef)) and float(s.bc_loss_coef) >= 0):
        raise AnnealConfigError(f"strategy.bc_loss_coef must be >= 0, got {s.bc_loss_coef}")
    if s.evaluation_episodes is not None and int(s.evaluation_episodes) < 1:
        raise AnnealConfigError(
            f"strategy.evaluation_episodes must be >= 1 or null, got {s.evaluation_episodes}"
        )
    if str(s.baseline_update) not in BASELINE_UPDATES:
        raise AnnealConfigError(
            f"strategy.baseline_update must be one of {list(BASELINE_UPDATES)}, got {s.baseline_update!r}"
        )


def _promotion(promotion: Any) -> AnnealPromotionConfig:
    """The schema's promotion settings with ``promotion``'s on top."""
    given = _as_dict(promotion) if promotion is not None else {}
    unknown = sorted(set(given) - set(asdict(AnnealPromotionConfig())))
    if unknown:
        raise AnnealConfigError(f"strategy.promotion has unknown key(s) {unknown}")
    promo = AnnealPromotionConfig(**given)
    if int(promo.required_passes) < 1:
        raise AnnealConfigError("strategy.promotion.required_passes must be >= 1")
    return promo


__all__ = ["BASELINE_UPDATES", "AnnealSettings"]
