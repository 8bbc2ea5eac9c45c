"""PPO hyper-parameters: the one home of every ``strategy=ppo`` setting, default and range. ``PPOStrategy``
*is* this dataclass plus ``run()``, so the object Hydra builds carries the settings typed and whole."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class DataMode(StrEnum):
    rollout = "rollout"  # the current network acts in vectorised towns (on-policy PPO)
    replay = "replay"  # offline PPO on a replay dataset, ratios against its recorded behaviour log-probs
    mixed = "mixed"  # every minibatch blends rollout rows and replay rows at ``mix_ratio``


class LRSchedule(StrEnum):
    constant = "constant"
    linear = "linear"  # decays linearly to lr / iterations at the last iteration


class SocialStage(StrEnum):
    OFF = "OFF"
    C1 = "C1"
    C2 = "C2"
    C3 = "C3"


@dataclass
class SocialRewardScheduleEntry:
    cycle: int = 0
    stage: SocialStage = SocialStage.OFF


class PPOConfigError(ValueError):
    """A PPO hyper-parameter outside its valid range; the message names the key and the range."""


def check_ranges(node: Any, error: type[ValueError], rules: dict[str, tuple[bool, str]]) -> None:
    """Raise ``error`` naming the first ``strategy.<key>`` whose rule (``holds``, as stated) fails."""
    for key, (holds, rule) in rules.items():
        if not holds:
            raise error(f"strategy.{key} must be {rule}, got {getattr(node, key)!r}")


def schedule_field(entry: Any, key: str, default: Any) -> Any:
    """A schedule entry's field: a plain dict from Python callers, an attribute-style node from Hydra."""
    return entry.get(key, default) if isinstance(entry, dict) else getattr(entry, key, default)


@dataclass
class PPOStrategyConfig:
    _target_: str = "townlet.strategies.ppo.PPOStrategy"
    # --- the clipped-surrogate update ---
    lr: float = 1e-3  # from scratch, 3e-4 stayed on a plateau near -18 (docs/ppo.md)
    clip_param: float = 0.2
    value_loss_coef: float = 0.5
    # A strong exploration bonus: from scratch at 0.01 the policy settled on the fridge and never found
    # the shower or the bed (docs/ppo.md)
    entropy_coef: float = 0.03
    # A long horizon: from scratch at 0.99 some seeds never learned to walk to the bed before energy ran
    # out (a faint looked cheaper than the trip); 0.98 lost even the shower (docs/ppo.md)
    gamma: float = 0.995
    gae_lambda: float = 0.95
    # A faint cuts the agent's return (no bootstrap through it). false: its future goes on, as it does
    # in the town (the agent respawns at home in the same episode; the faint's penalty stays)
    faint_is_terminal: bool = True
    max_grad_norm: float = 0.5  # 0 disables clipping (the norm is still reported)
    value_clip: float = 0.2  # 0 disables value clipping
    advantage_normalization: bool = True
    update_epochs: int = 4  # passes over each iteration's data
    minibatch_size: int = 512  # docs/performance.md
    num_minibatches: int | None = None  # if set: minibatch = min(minibatch_size, rows // num_minibatches)
    # --- data ---
    data_mode: DataMode = DataMode.rollout
    num_envs: int | None = None  # rollout towns; None = world.num_envs
    num_agents: int | None = None  # agents per town; None = world.num_agents
    n_steps: int = 64  # ticks collected per iteration (rows = n_steps * num_envs * num_agents)
    total_steps: int = 1_048_576  # agent-steps to collect in rollout/mixed mode
    epochs: int = 1  # replay mode: iterations (each a full PPO update over the dataset)
    mix_ratio: float = 0.5  # mixed mode: share of every minibatch drawn from the replay dataset
    # --- schedules, normalisation and guards ---
    # Constant, not linear to zero: a run's late jump (it lands anywhere from 330k to 920k agent-steps)
    # got ever smaller steps, and 4 of 16 runs had not made it at 1M (docs/anneal.md)
    lr_schedule: LRSchedule = LRSchedule.constant
    entropy_schedule: LRSchedule = LRSchedule.constant  # linear: entropy_coef decays to 0 at the end
    reward_scaling: bool = False  # divide rewards by the running std of the discounted return
    feature_normalisation: bool = False  # standardise features by running mean/std (std floored at 0.1)
    target_kl: float | None = None  # stop an update's epochs once the epoch's mean KL exceeds it
    bc_coef: float = 0.0  # weight of the cross-entropy to the scripted teacher's action (kickstarting)
    social_reward_stage: SocialStage | None = None  # stage before the schedule applies; None = world's
    social_reward_schedule: list[SocialRewardScheduleEntry] = field(default_factory=list)
    # --- run artefacts ---
    checkpoint_every: int = 1  # iterations between checkpoints/last.pt writes (the final one always)
    log_frequency: int | None = None  # overrides logger.log_frequency for this run when set
    max_log_entries: int | None = None  # overrides logger.max_log_entries for this run when set
    eval_greedy: bool = False  # argmax actions at evaluation (PPO trains a stochastic policy)

    def __post_init__(self) -> None:
        modes, schedules, stages = ([m.value for m in enum] for enum in (DataMode, LRSchedule, SocialStage))

        def positive_or_null(value: int | None) -> bool:
            return value is None or value >= 1

        rules = {
            "lr": (self.lr > 0, "> 0"),
            "clip_param": (0 <= self.clip_param <= 1, "in [0, 1]"),
            "value_loss_coef": (self.value_loss_coef >= 0, ">= 0"),
            "entropy_coef": (self.entropy_coef >= 0, ">= 0"),
            "gamma": (0 <= self.gamma <= 1, "in [0, 1]"),
            "gae_lambda": (0 <= self.gae_lambda <= 1, "in [0, 1]"),
            "max_grad_norm": (self.max_grad_norm >= 0, ">= 0 (0 disables clipping)"),
            "value_clip": (0 <= self.value_clip <= 1, "in [0, 1] (0 disables it)"),
            "update_epochs": (1 <= self.update_epochs <= 64, "in [1, 64]"),
            "minibatch_size": (self.minibatch_size >= 1, ">= 1"),
            "num_minibatches": (positive_or_null(self.num_minibatches), ">= 1 or null"),
            "data_mode": (str(self.data_mode) in modes, f"one of {modes}"),
            "num_envs": (positive_or_null(self.num_envs), ">= 1 or null"),
            "num_agents": (positive_or_null(self.num_agents), ">= 1 or null"),
            "n_steps": (self.n_steps >= 1, ">= 1"),
            "total_steps": (self.total_steps >= 1, ">= 1"),
            "epochs": (self.epochs >= 1, ">= 1"),
            "mix_ratio": (0 < self.mix_ratio < 1, "in (0, 1) (the replay share of each minibatch)"),
            "lr_schedule": (str(self.lr_schedule) in schedules, f"one of {schedules}"),
            "entropy_schedule": (str(self.entropy_schedule) in schedules, f"one of {schedules}"),
            "target_kl": (self.target_kl is None or self.target_kl > 0, "> 0 or null"),
            "bc_coef": (math.isfinite(self.bc_coef) and self.bc_coef >= 0, ">= 0"),
            "social_reward_stage": (
                self.social_reward_stage is None or str(self.social_reward_stage) in stages,
                f"one of {stages} or null",
            ),
            "checkpoint_every": (self.checkpoint_every >= 1, ">= 1"),
            "log_frequency": (positive_or_null(self.log_frequency), ">= 1 or null"),
        }
        check_ranges(self, PPOConfigError, rules)
        for entry in self.social_reward_schedule or []:
            stage, cycle = schedule_field(entry, "stage", ""), schedule_field(entry, "cycle", 0)
            if not (str(stage) in stages and int(cycle) >= 0):
                rule = f"a list of {{cycle >= 0, stage in {stages}}}"
                raise PPOConfigError(f"strategy.social_reward_schedule must be {rule}, got {entry!r}")
        # Strings from Python callers become the enums the annotations promise.
        self.data_mode = DataMode(self.data_mode)
        self.lr_schedule = LRSchedule(self.lr_schedule)
        self.entropy_schedule = LRSchedule(self.entropy_schedule)
        if self.social_reward_stage is not None:
            self.social_reward_stage = SocialStage(self.social_reward_stage)
