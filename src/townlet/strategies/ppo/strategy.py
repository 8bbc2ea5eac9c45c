"""The ``strategy=ppo`` object Hydra builds: validated hyper-parameters and the sizes derived from them.

It stays torch-free so that ``--cfg job`` and config validation work without torch; ``run`` hands
over to ``PPORun``, which imports torch.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from townlet.config.schema.strategy_ppo import DataMode, LRSchedule, SocialStage
from townlet.strategies.base import StrategyBase
from townlet.strategies.ppo.schedules import schedule_field

if TYPE_CHECKING:
    from townlet.dto import PPOTrainingResultDTO
    from townlet.strategies.context import TrainingContext

__all__ = ["PPOConfigError", "PPOStrategy"]


class PPOConfigError(ValueError):
    """A PPO hyper-parameter outside its valid range; the message names the key and the range."""


class PPOStrategy(StrategyBase):
    """``strategy=ppo``; constructor keywords are the fields of ``PPOStrategyConfig``."""

    name = "ppo"
    requires_torch = True

    def __init__(
        self,
        lr: float = 3e-4,
        clip_param: float = 0.2,
        value_loss_coef: float = 0.5,
        entropy_coef: float = 0.01,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        max_grad_norm: float = 0.5,
        value_clip: float = 0.2,
        advantage_normalization: bool = True,
        update_epochs: int = 4,
        minibatch_size: int = 512,
        num_minibatches: int | None = None,
        data_mode: str = "rollout",
        num_envs: int | None = None,
        num_agents: int | None = None,
        n_steps: int = 64,
        total_steps: int = 65_536,
        epochs: int = 1,
        mix_ratio: float = 0.5,
        lr_schedule: str = "constant",
        target_kl: float | None = None,
        bc_coef: float = 0.0,
        social_reward_stage: str | None = None,
        social_reward_schedule: list[Any] | None = None,
        checkpoint_every: int = 1,
        log_frequency: int | None = None,
        max_log_entries: int | None = None,
        eval_greedy: bool = False,
    ) -> None:
        def check(ok: bool, key: str, rule: str, value: Any) -> None:
            if not ok:
                raise PPOConfigError(f"strategy.{key} must be {rule}, got {value!r}")

        check(lr > 0, "lr", "> 0", lr)
        check(0 <= clip_param <= 1, "clip_param", "in [0, 1]", clip_param)
        check(value_loss_coef >= 0, "value_loss_coef", ">= 0", value_loss_coef)
        check(entropy_coef >= 0, "entropy_coef", ">= 0", entropy_coef)
        check(0 <= gamma <= 1, "gamma", "in [0, 1]", gamma)
        check(0 <= gae_lambda <= 1, "gae_lambda", "in [0, 1]", gae_lambda)
        check(max_grad_norm >= 0, "max_grad_norm", ">= 0 (0 disables clipping)", max_grad_norm)
        check(0 <= value_clip <= 1, "value_clip", "in [0, 1] (0 disables it)", value_clip)
        check(1 <= update_epochs <= 64, "update_epochs", "in [1, 64]", update_epochs)
        check(minibatch_size >= 1, "minibatch_size", ">= 1", minibatch_size)
        check(
            num_minibatches is None or num_minibatches >= 1,
            "num_minibatches",
            ">= 1 or null",
            num_minibatches,
        )
        modes = [m.value for m in DataMode]
        check(str(data_mode) in modes, "data_mode", f"one of {modes}", data_mode)
        check(num_envs is None or num_envs >= 1, "num_envs", ">= 1 or null", num_envs)
        check(num_agents is None or num_agents >= 1, "num_agents", ">= 1 or null", num_agents)
        check(n_steps >= 1, "n_steps", ">= 1", n_steps)
        check(total_steps >= 1, "total_steps", ">= 1", total_steps)
        check(epochs >= 1, "epochs", ">= 1", epochs)
        check(0 < mix_ratio < 1, "mix_ratio", "in (0, 1) (the replay share of each minibatch)", mix_ratio)
        schedules = [s.value for s in LRSchedule]
        check(str(lr_schedule) in schedules, "lr_schedule", f"one of {schedules}", lr_schedule)
        check(target_kl is None or target_kl > 0, "target_kl", "> 0 or null", target_kl)
        check(math.isfinite(bc_coef) and bc_coef >= 0, "bc_coef", ">= 0", bc_coef)
        stages = [s.value for s in SocialStage]
        check(
            social_reward_stage is None or str(social_reward_stage) in stages,
            "social_reward_stage",
            f"one of {stages} or null",
            social_reward_stage,
        )
        for entry in social_reward_schedule or []:
            check(
                str(schedule_field(entry, "stage", "")) in stages
                and int(schedule_field(entry, "cycle", 0)) >= 0,
                "social_reward_schedule",
                f"a list of {{cycle >= 0, stage in {stages}}}",
                entry,
            )
        check(checkpoint_every >= 1, "checkpoint_every", ">= 1", checkpoint_every)
        check(log_frequency is None or log_frequency >= 1, "log_frequency", ">= 1 or null", log_frequency)

        self.lr = float(lr)
        self.clip_param = float(clip_param)
        self.value_loss_coef = float(value_loss_coef)
        self.entropy_coef = float(entropy_coef)
        self.gamma = float(gamma)
        self.gae_lambda = float(gae_lambda)
        self.max_grad_norm = float(max_grad_norm)
        self.value_clip = float(value_clip)
        self.advantage_normalization = bool(advantage_normalization)
        self.update_epochs = int(update_epochs)
        self.minibatch_size = int(minibatch_size)
        self.num_minibatches = None if num_minibatches is None else int(num_minibatches)
        self.data_mode = str(data_mode)
        self.num_envs = num_envs
        self.num_agents = num_agents
        self.n_steps = int(n_steps)
        self.total_steps = int(total_steps)
        self.epochs = int(epochs)
        self.mix_ratio = float(mix_ratio)
        self.lr_schedule = str(lr_schedule)
        self.target_kl = None if target_kl is None else float(target_kl)
        self.bc_coef = float(bc_coef)
        self.social_reward_stage = None if social_reward_stage is None else str(social_reward_stage)
        self.social_reward_schedule = list(social_reward_schedule or [])
        self.checkpoint_every = int(checkpoint_every)
        self.log_frequency = log_frequency
        self.max_log_entries = max_log_entries
        self.eval_greedy = bool(eval_greedy)

    def minibatch_rows(self, rows: int) -> int:
        """Rows per minibatch: ``minibatch_size``, or ``rows // num_minibatches`` if that is smaller.

        Never more rows than there are, never fewer than one, so tiny batches still train.
        """
        if self.num_minibatches is None:
            return max(1, min(self.minibatch_size, rows))
        return max(1, min(self.minibatch_size, rows // min(self.num_minibatches, max(rows, 1))))

    def hyper_params(self, rows: int) -> Any:
        """The update's ``PPOHyperParams`` for a primary batch of ``rows`` rows."""
        from townlet.algorithms.update import PPOHyperParams

        return PPOHyperParams(
            clip_param=self.clip_param,
            value_loss_coef=self.value_loss_coef,
            entropy_coef=self.entropy_coef,
            max_grad_norm=self.max_grad_norm,
            value_clip=self.value_clip,
            update_epochs=self.update_epochs,
            minibatch_size=self.minibatch_rows(rows),
            target_kl=self.target_kl,
            bc_coef=self.bc_coef,
        )

    def planned_iterations(self, rows_per_iteration: int) -> int:
        """Replay runs ``epochs`` iterations; rollout and mixed run until ``total_steps`` agent-steps."""
        if self.data_mode == DataMode.replay:
            return self.epochs
        return max(1, math.ceil(self.total_steps / max(rows_per_iteration, 1)))

    def run(self, context: TrainingContext) -> PPOTrainingResultDTO:
        self.ensure_torch()
        # Imported here: PPORun's modules import this one for PPOConfigError.
        from townlet.strategies.ppo.run import PPORun

        return PPORun(self, context).execute()
