"""PPO hyper-parameters (``conf/strategy/ppo.yaml``); the fields are ``PPOStrategy``'s constructor keywords.

The clipped-surrogate settings, the data mode (rollout, replay or mixed), rollout sizes, an lr
schedule, ``target_kl`` early stopping and the social reward schedule, all in one typed place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


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


@dataclass
class PPOStrategyConfig:
    _target_: str = "townlet.strategies.ppo.PPOStrategy"
    # --- the clipped-surrogate update ---
    lr: float = 3e-4
    clip_param: float = 0.2
    value_loss_coef: float = 0.5
    entropy_coef: float = 0.01
    gamma: float = 0.99
    gae_lambda: float = 0.95
    max_grad_norm: float = 0.5  # 0 disables clipping (the norm is still reported)
    value_clip: float = 0.2  # 0 disables value clipping
    advantage_normalization: bool = True
    update_epochs: int = 4  # passes over each iteration's data
    minibatch_size: int = 512  # 512-1024 is the CPU sweet spot (docs/performance.md)
    num_minibatches: int | None = None  # if set: minibatch = min(minibatch_size, rows // num_minibatches)
    # --- data ---
    data_mode: DataMode = DataMode.rollout
    num_envs: int | None = None  # rollout towns; None = world.num_envs
    num_agents: int | None = None  # agents per town; None = world.num_agents
    n_steps: int = 64  # ticks collected per iteration (rows = n_steps * num_envs * num_agents)
    total_steps: int = 65_536  # agent-steps to collect in rollout/mixed mode
    epochs: int = 1  # replay mode: iterations (each a full PPO update over the dataset)
    mix_ratio: float = 0.5  # mixed mode: share of every minibatch drawn from the replay dataset
    # --- schedules and guards ---
    lr_schedule: LRSchedule = LRSchedule.constant
    target_kl: float | None = None  # stop an update's epochs once the epoch's mean KL exceeds it
    bc_coef: float = 0.0  # weight of the cross-entropy to the scripted teacher's action (kickstarting)
    social_reward_stage: SocialStage | None = None  # stage before the schedule applies; None = world's
    social_reward_schedule: list[SocialRewardScheduleEntry] = field(default_factory=list)
    # --- run artefacts ---
    checkpoint_every: int = (
        1  # iterations between checkpoints/last.pt writes (the final one is always written)
    )
    log_frequency: int | None = None  # overrides logger.log_frequency for this run when set
    max_log_entries: int | None = None  # overrides logger.max_log_entries for this run when set
    eval_greedy: bool = (
        False  # evaluate with argmax actions instead of sampling (PPO trains a stochastic policy)
    )
