"""Schema of ``strategy=bc`` (behaviour cloning); the fields are ``BCStrategy``'s constructor keywords."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BCStrategyConfig:
    _target_: str = "townlet.strategies.bc.BCStrategy"
    lr: float = 3e-3  # 1e-3 needs ~2x the samples to pass 0.95 on the scripted data
    batch_size: int = 512  # 512-1024 is the CPU sweet spot (docs/performance.md)
    epochs: int = 5  # maximum; early stopping may end sooner
    weight_decay: float = 0.0
    val_fraction: float = 0.125  # share of agent trajectories held out (split by agent, never by row)
    early_stopping_patience: int = 2  # epochs without val improvement before stopping; 0 = off
    min_delta: float = 0.0  # val-accuracy gain that counts as an improvement
    target: str = (
        "teacher_actions"  # teacher_actions (scripted choice) | actions (executed, with exploration)
    )
    eval_greedy: bool = True  # evaluate the trained policy with argmax actions
    value_coef: float = 0.5  # weight of the value-head warm-up on returns-to-go (0 = policy head only)
    gamma: float = 0.99  # discount of those returns; keep it equal to strategy=ppo's gamma
    value_trunk: bool = False  # true: the value loss also trains the shared trunk (slows imitation)
