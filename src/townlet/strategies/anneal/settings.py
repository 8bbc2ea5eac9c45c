"""``strategy=anneal``'s settings: ``AnnealStrategyConfig``'s fields (their one home), checked, plus
the validated schedule and each stage's overrides of its BC/PPO strategy node.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from omegaconf import DictConfig, ListConfig, OmegaConf

from townlet.config.instantiate import build
from townlet.config.plan import RunPlan, ppo_plan
from townlet.config.schema.strategy_anneal import (
    AnnealPromotionConfig,
    AnnealStageConfig,
    AnnealStrategyConfig,
    BaselineUpdate,
)
from townlet.config.schema.strategy_ppo import check_ranges
from townlet.promotion.rules import GuardrailTolerances
from townlet.strategies.base import StrategyBase

if TYPE_CHECKING:
    from townlet.strategies.context import TrainingContext

STAGE_KEYS = tuple(f.name for f in fields(AnnealStageConfig))


class AnnealConfigError(ValueError):
    """The anneal schedule or settings are invalid; the message names the key and the fix."""


def plain(node: Any) -> Any:
    """OmegaConf containers → plain Python; anything else unchanged."""
    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def as_data(node: Any) -> Any:
    """A schema dataclass as a dict, else ``plain(node)``."""
    return asdict(node) if is_dataclass(node) and not isinstance(node, type) else plain(node)


def is_config_node(node: Any) -> bool:
    """A ``_target_`` node still to be built (Hydra), as opposed to an already-built strategy."""
    data = plain(node)
    return isinstance(data, Mapping) and "_target_" in data


@dataclass(frozen=True)
class Stage:
    """One schedule entry, validated."""

    cycle: int
    mode: str
    epochs: int
    bc_weight: float

    @classmethod
    def from_any(cls, raw: Any, index: int) -> Stage:
        data = as_data(raw)
        if not isinstance(data, Mapping):
            raise AnnealConfigError(f"strategy.schedule[{index}] must be a mapping, got {raw!r}")
        unknown = sorted(set(data) - set(STAGE_KEYS))
        if unknown:
            raise AnnealConfigError(
                f"strategy.schedule[{index}] has unknown key(s) {unknown}; allowed: {', '.join(STAGE_KEYS)}"
            )
        mode = str(data.get("mode", "")).lower()
        if mode not in ("bc", "ppo"):
            raise AnnealConfigError(
                f"strategy.schedule[{index}].mode must be bc or ppo, got {data.get('mode')!r}"
            )
        try:
            cycle, epochs = int(data.get("cycle", index)), int(data.get("epochs", 1))
            weight = float(data.get("bc_weight", 1.0 if mode == "bc" else 0.0))
        except (TypeError, ValueError) as exc:
            raise AnnealConfigError(f"strategy.schedule[{index}]: {exc}") from exc
        if cycle < 0 or epochs < 1:
            raise AnnealConfigError(
                f"strategy.schedule[{index}] needs cycle >= 0 and epochs >= 1 "
                f"(got cycle={cycle}, epochs={epochs})"
            )
        if not (math.isfinite(weight) and 0.0 <= weight <= 1.0):
            raise AnnealConfigError(f"strategy.schedule[{index}].bc_weight must be in [0, 1], got {weight}")
        return cls(cycle=cycle, mode=mode, epochs=epochs, bc_weight=weight)

    def dirname(self, index: int) -> str:
        """``NN_cK_<mode>``: sorts in run order and says what ran there."""
        return f"{index:02d}_c{self.cycle}_{self.mode}"


def parse_schedule(schedule: Sequence[Any] | None) -> list[Stage]:
    """The validated stages in run order: by cycle, keeping the listed order within a cycle
    (a stable sort, so e.g. BC then PPO in cycle 0 stays that way)."""
    stages = [Stage.from_any(s, i) for i, s in enumerate(plain(schedule) or [])]
    if not stages:
        raise AnnealConfigError(
            "strategy.schedule is empty; give at least one stage, e.g. [{cycle: 0, mode: bc, epochs: 5}]"
        )
    return sorted(stages, key=lambda s: s.cycle)


def build_stage_strategy(node: Any, overrides: Mapping[str, Any]) -> Any:
    """The stage's strategy: built from its config node, or a copy of an already-built strategy
    (tests, Python callers); an override the strategy does not take is dropped."""
    if is_config_node(node):
        # the node holds every setting its strategy takes (its schema's fields): a key it lacks is not one
        accepted = {key for key in plain(node) if not str(key).startswith("_")}
        return build(node, **{k: v for k, v in overrides.items() if k in accepted})
    strategy = copy.copy(node)
    for key, value in overrides.items():
        if hasattr(strategy, key):
            setattr(strategy, key, value)
    return strategy


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
        episodes, coef = self.evaluation_episodes, float(self.bc_loss_coef)
        modes = [b.value for b in BaselineUpdate]
        rules = {
            "accuracy_threshold": (0.0 <= float(self.accuracy_threshold) <= 1.0, "in [0, 1]"),
            "bc_loss_coef": (math.isfinite(coef) and coef >= 0, ">= 0"),
            "evaluation_episodes": (episodes is None or int(episodes) >= 1, ">= 1 or null"),
            "baseline_update": (str(self.baseline_update) in modes, f"one of {modes}"),
        }
        check_ranges(self, AnnealConfigError, rules)
        self.guardrails = GuardrailTolerances.from_mapping(dict(as_data(self.tolerances) or {}))
        given = dict(as_data(self.promotion) or {})
        unknown = sorted(set(given) - set(asdict(AnnealPromotionConfig())))
        if unknown:
            raise AnnealConfigError(f"strategy.promotion has unknown key(s) {unknown}")
        self.promotion_rules = AnnealPromotionConfig(**given)
        if int(self.promotion_rules.required_passes) < 1:
            raise AnnealConfigError("strategy.promotion.required_passes must be >= 1")

    def plan(self, world: Any) -> RunPlan:
        """The stages in run order, each sized in its own unit (BC epochs, PPO iterations)."""
        stages = tuple((stage.mode, stage.epochs) for stage in self.stages)
        return RunPlan(units=sum(units for _, units in stages), stages=stages)

    def build_stage_strategy(self, stage: Stage, context: TrainingContext) -> Any:
        """The BC or PPO strategy for one stage, from its config node with the stage's overrides: BC
        takes PPO's ``gamma`` (its warm-up learns PPO's critic); PPO's ``epochs`` are iterations
        (``total_steps`` sized to match) and ``bc_weight`` sets ``bc_coef``."""
        overrides: dict[str, Any] = {"epochs": stage.epochs}
        cfg: Any = plain(self.ppo) if is_config_node(self.ppo) else vars(self.ppo)
        if stage.mode != "ppo":
            if cfg.get("gamma") is not None:
                overrides["gamma"] = float(cfg["gamma"])
            return build_stage_strategy(self.bc, overrides)
        overrides["bc_coef"] = stage.bc_weight * self.bc_loss_coef
        if self.teacher_mix:
            overrides["teacher_mix"] = stage.bc_weight
        if str(cfg.get("data_mode", "rollout")) != "replay":
            envs = cfg.get("num_envs") or getattr(context.world, "num_envs", 1)
            agents = cfg.get("num_agents") or getattr(context.world, "num_agents", 1)
            plan = ppo_plan(n_steps=cfg["n_steps"], num_envs=envs, num_agents=agents, total_steps=0)
            overrides["total_steps"] = int(stage.epochs) * int(plan.rows_per_iteration or 0)
        return build_stage_strategy(self.ppo, overrides)
