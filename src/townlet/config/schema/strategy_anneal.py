"""Schema of ``strategy=anneal``: a BC → PPO schedule with guardrails. ``bc`` and ``ppo`` stay config nodes
(``_recursive_: false``) until each stage builds one with its own ``epochs`` and ``bc_weight`` settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial

from townlet.config.schema.strategy_bc import BCStrategyConfig
from townlet.config.schema.strategy_ppo import LRSchedule, PPOStrategyConfig


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
    """Relative tolerances and directions of the PPO-stage flags: queue flags watch both ways (a surge of
    conflicts is as suspicious as a collapse); ``eval_return`` keeps PPO from undoing the clone unnoticed."""

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
    """BC, then pure PPO from the clone: any kickstarting weight (``bc_weight`` > 0) held the policy
    near the teacher it has to outgrow; 140 PPO iterations x 4,096 agent-steps = 573,440."""
    return [
        AnnealStageConfig(cycle=0, mode=StageMode.bc, epochs=3, bc_weight=1.0),
        AnnealStageConfig(cycle=1, mode=StageMode.ppo, epochs=20, bc_weight=0.0),
        AnnealStageConfig(cycle=2, mode=StageMode.ppo, epochs=120, bc_weight=0.0),
    ]


@dataclass
class AnnealStrategyConfig:
    _target_: str = "townlet.strategies.anneal.AnnealStrategy"
    _recursive_: bool = False
    # BC's value_trunk stays off: through the shared trunk the critic warm-up held the PPO stages on a
    # plateau near -1.6 instead of +2.5 (docs/anneal.md)
    bc: BCStrategyConfig = field(default_factory=BCStrategyConfig)
    # Where the PPO stages differ from strategy=ppo (docs/anneal.md): a clone needs less exploration
    # (entropy 0.01, not 0.03); from a clone gamma 0.995 did worse than 0.99 (BC's critic warm-up uses
    # it too). Like strategy=ppo, a PPO stage is judged on the stochastic policy it trained: the argmax
    # of the same weights did worse in the weakest runs (docs/anneal.md). PPO's lr 1e-3 decays linearly,
    # restarting in each stage (3e-4 and 5e-4 left some seeds never using the bed; a constant 1e-3
    # left 5 of 16 runs below teacher + 10, docs/anneal.md). Three update epochs and 140 iterations rather
    # than four and 120: a higher median under both instruction sets, in less time (docs/anneal.md).
    ppo: PPOStrategyConfig = field(
        default_factory=partial(
            PPOStrategyConfig,
            entropy_coef=0.01,
            gamma=0.99,
            lr_schedule=LRSchedule.linear,
            update_epochs=3,
        )
    )
    schedule: list[AnnealStageConfig] = field(default_factory=_default_schedule)  # run in cycle order
    accuracy_threshold: float = 0.9  # a BC stage passes when its validation accuracy >= this
    tolerances: GuardrailTolerancesConfig = field(default_factory=GuardrailTolerancesConfig)
    promotion: AnnealPromotionConfig = field(default_factory=AnnealPromotionConfig)
    baseline_update: BaselineUpdate = BaselineUpdate.on_pass
    dataset_label: str | None = None  # default: "<dataset kind>/<world name>-<world hash>"
    stage_evaluation: bool = True  # evaluate every stage's policy (same seeds) for the comparison
    chain_stages: bool = False  # no stored baseline for a cycle: compare with the previous PPO stage
    bc_loss_coef: float = 1.0  # PPO stage's bc_coef (kickstarting weight) = bc_weight * bc_loss_coef
    teacher_mix: bool = False  # also execute the teacher's action with probability bc_weight in rollouts
    # per-stage evaluation episodes (None = evaluation.episodes); the return guardrail compares stages on
    # these, so they must be more than a couple
    evaluation_episodes: int | None = 16
