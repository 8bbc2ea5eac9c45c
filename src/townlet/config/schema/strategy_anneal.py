"""Schema of ``strategy=anneal`` (``conf/strategy/anneal.yaml``): a BC → PPO schedule with guardrails.

``bc`` and ``ppo`` are the full BC and PPO strategy nodes (``_target_`` + hyper-parameters); the
anneal strategy builds one of them per stage, overriding only ``epochs`` (and, for PPO, the
``bc_weight``-driven parameters). ``_recursive_: false`` keeps them as config nodes until then.
Initial version by FOUNDATION; owned by ANNEAL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from townlet.config.schema.strategy_bc import BCStrategyConfig
from townlet.config.schema.strategy_ppo import PPOStrategyConfig


class StageMode(StrEnum):
    bc = "bc"
    ppo = "ppo"


class FlagDirection(StrEnum):
    """Which movement of a metric away from its baseline raises the flag."""

    drop = "drop"
    rise = "rise"
    both = "both"


class BaselineUpdate(StrEnum):
    """When a run's last PPO-stage metrics replace the stored baselines of its label."""

    on_pass = "on_pass"  # only after a PASS run (or when the label has no baseline yet)
    always = "always"
    never = "never"


@dataclass
class AnnealStageConfig:
    cycle: int = 0
    mode: StageMode = StageMode.bc
    epochs: int = 1  # BC: training epochs; PPO: update iterations (rollout+update rounds)
    bc_weight: float = 1.0  # PPO: kickstarting weight (and teacher share with teacher_mix); docs/anneal.md


@dataclass
class GuardrailTolerancesConfig:
    """Relative tolerances of the PPO-stage flags (``townlet.promotion.rules``)."""

    loss: float = 0.10
    queue: float = 0.15
    intensity: float = 0.15
    eval_return: float = 0.05  # evaluated return vs the best earlier passing stage (BC's first)
    loss_direction: FlagDirection = FlagDirection.both
    queue_direction: FlagDirection = FlagDirection.both
    intensity_direction: FlagDirection = FlagDirection.both
    eval_return_direction: FlagDirection = FlagDirection.drop
    min_abs_baseline: float = 1e-8


@dataclass
class AnnealPromotionConfig:
    """How each run is recorded in the persisted promotion state (``paths.state_dir``)."""

    record: bool = True
    required_passes: int = 2
    hold_resets_streak: bool = True  # false: only FAIL resets the pass streak


def _default_schedule() -> list[AnnealStageConfig]:
    return [
        AnnealStageConfig(cycle=0, mode=StageMode.bc, epochs=6, bc_weight=1.0),
        AnnealStageConfig(cycle=1, mode=StageMode.ppo, epochs=3, bc_weight=0.5),
        AnnealStageConfig(cycle=2, mode=StageMode.ppo, epochs=3, bc_weight=0.0),
    ]


@dataclass
class AnnealStrategyConfig:
    _target_: str = "townlet.strategies.anneal.AnnealStrategy"
    _recursive_: bool = False
    bc: BCStrategyConfig = field(default_factory=BCStrategyConfig)
    ppo: PPOStrategyConfig = field(default_factory=PPOStrategyConfig)
    schedule: list[AnnealStageConfig] = field(default_factory=_default_schedule)
    accuracy_threshold: float = 0.9
    tolerances: GuardrailTolerancesConfig = field(default_factory=GuardrailTolerancesConfig)
    promotion: AnnealPromotionConfig = field(default_factory=AnnealPromotionConfig)
    baseline_update: BaselineUpdate = BaselineUpdate.on_pass
    dataset_label: str | None = None  # default: "<dataset kind>/<world name>-<world hash>"
    stage_evaluation: bool = True  # evaluate every stage's policy (same seeds) for the comparison
    chain_stages: bool = False  # no stored baseline for a cycle: compare with the previous PPO stage
    bc_loss_coef: float = 1.0  # PPO stage's bc_coef (kickstarting weight) = bc_weight * bc_loss_coef
    teacher_mix: bool = False  # also execute the teacher's action with probability bc_weight in rollouts
    evaluation_episodes: int | None = 16  # per-stage evaluation episodes; None = evaluation.episodes
