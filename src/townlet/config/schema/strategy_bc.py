"""Behaviour-cloning hyper-parameters: the one home of every ``strategy=bc`` setting and its range, refused
when the strategy is built rather than mid-run (``BCStrategy`` *is* this dataclass plus ``run()``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from townlet.config.schema.strategy_ppo import PPOStrategyConfig, check_ranges

TARGETS = ("teacher_actions", "actions")


class BCConfigError(ValueError): ...


@dataclass
class BCStrategyConfig:
    _target_: str = "townlet.strategies.bc.BCStrategy"
    lr: float = 3e-3  # 1e-3 needs ~2x the samples to pass 0.95 val accuracy on the scripted data
    batch_size: int = 512  # docs/performance.md
    epochs: int = 5  # maximum; early stopping may end sooner
    weight_decay: float = 0.0
    val_fraction: float = 0.125  # share of agent trajectories held out (split by agent, never by row)
    early_stopping_patience: int = 2  # epochs without val improvement (accuracy, then loss); 0 = off
    min_delta: float = 0.0  # val-accuracy gain that counts as an improvement
    target: str = "teacher_actions"  # the scripted choice | actions (executed, exploration included)
    eval_greedy: bool = True  # evaluate the trained policy with argmax actions
    # Value-head warm-up on the data's discounted returns-to-go (0 = policy head only), so a PPO run
    # warm-started from this checkpoint begins with a trained critic.
    value_coef: float = 0.5
    gamma: float = PPOStrategyConfig.gamma  # PPO's, so the warmed-up critic is the one PPO starts from
    # true: the value loss also trains the shared trunk (slower imitation: val acc 0.916 vs 0.988
    # after epoch 1 on the default data); false: value head only
    value_trunk: bool = False

    def __post_init__(self) -> None:
        value_coef = self.value_coef
        rules = {
            "lr": (self.lr > 0, "> 0"),
            "batch_size": (self.batch_size > 0, "> 0"),
            "epochs": (self.epochs > 0, "> 0"),
            "weight_decay": (self.weight_decay >= 0, ">= 0"),
            "val_fraction": (0.0 <= self.val_fraction < 1.0, "in [0, 1)"),
            "target": (self.target in TARGETS, f"one of {list(TARGETS)}"),
            "early_stopping_patience": (self.early_stopping_patience >= 0, ">= 0"),
            "value_coef": (math.isfinite(value_coef) and value_coef >= 0, ">= 0 (0 = policy head only)"),
            "gamma": (0.0 <= self.gamma <= 1.0, "in [0, 1]"),
        }
        check_ranges(self, BCConfigError, rules)
