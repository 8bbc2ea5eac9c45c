"""PPO's settings as the run reads them: ``PPOStrategyConfig`` plus the sizes derived from it.

``PPOStrategy`` (in ``run.py``) is this class plus ``run()``, so every setting has one home (the
schema: defaults, ranges, checks) and arrives typed and whole. Torch-free, so ``--cfg job`` and
config validation work without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from townlet.config.plan import RunPlan, ppo_plan
from townlet.config.schema.strategy_ppo import DataMode, PPOConfigError, PPOStrategyConfig
from townlet.strategies.base import StrategyBase

__all__ = ["PPOConfigError", "PPOSettings"]


@dataclass
class PPOSettings(PPOStrategyConfig, StrategyBase):
    """``strategy=ppo``'s fields (``PPOStrategyConfig``'s) and what derives from them."""

    name: ClassVar[str] = "ppo"
    requires_torch: ClassVar[bool] = True

    def minibatch_rows(self, rows: int) -> int:
        """Rows per minibatch: ``minibatch_size``, or ``rows // num_minibatches`` if that is smaller.

        Never more rows than there are, never fewer than one, so tiny batches still train.
        """
        if self.num_minibatches is None:
            return max(1, min(self.minibatch_size, rows))
        return max(1, min(self.minibatch_size, rows // min(self.num_minibatches, max(rows, 1))))

    def gae_options(self) -> dict[str, Any]:
        """How ``prepare_batch`` turns a batch's rewards into advantages and value targets."""
        return {
            "gamma": self.gamma,
            "lam": self.gae_lambda,
            "normalise": self.advantage_normalization,
            "faint_is_terminal": self.faint_is_terminal,
        }

    def hyper_params(self, rows: int) -> Any:
        """The update's ``PPOHyperParams`` for a primary batch of ``rows`` rows."""
        from townlet.algorithms.update import PPOHyperParams

        return PPOHyperParams(
            clip_param=self.clip_param,
            value_loss_coef=self.value_loss_coef,
            entropy_coef=self.entropy_coef,  # scheduled per iteration by PPORun
            max_grad_norm=self.max_grad_norm,
            value_clip=self.value_clip,
            update_epochs=self.update_epochs,
            minibatch_size=self.minibatch_rows(rows),
            target_kl=self.target_kl,
            bc_coef=self.bc_coef,
        )

    def plan(self, world: Any) -> RunPlan:
        """Replay runs ``epochs`` iterations; rollout and mixed run until ``total_steps`` agent-steps,
        ``n_steps`` ticks of the strategy's (else the world's) towns and agents per iteration."""
        return ppo_plan(
            n_steps=self.n_steps,
            num_envs=self.num_envs or world.num_envs,
            num_agents=self.num_agents or world.num_agents,
            total_steps=self.total_steps,
            replay_epochs=self.epochs if self.data_mode == DataMode.replay else None,
        )

    def planned_iterations(self, world: Any, replay: Any) -> int:
        """The plan's iterations; a streamed replay epoch is one iteration per shard."""
        units = int(self.plan(world).units or 1)
        return units * (replay.passes_per_epoch if self.data_mode == DataMode.replay and replay else 1)
