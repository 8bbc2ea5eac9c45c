"""``strategy=ppo``: ``PPOStrategy`` (the configs' ``_target_``) is ``PPOStrategyConfig``'s fields and
``run()``; torch is imported inside functions, so config validation works without it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

from townlet.config.plan import RunPlan, ppo_plan
from townlet.config.schema.strategy_ppo import DataMode, PPOConfigError, PPOStrategyConfig
from townlet.strategies.base import StrategyBase
from townlet.strategies.ppo.run import PPORun

if TYPE_CHECKING:
    from townlet.algorithms.update import PPOHyperParams
    from townlet.dto import PPOTrainingResultDTO
    from townlet.strategies.context import TrainingContext


@dataclass
class PPOStrategy(PPOStrategyConfig, StrategyBase):
    """``strategy=ppo``: the settings, what derives from them, and ``run()``."""

    name: ClassVar[str] = "ppo"
    requires_torch: ClassVar[bool] = True

    def run(self, context: TrainingContext) -> PPOTrainingResultDTO:
        self.ensure_torch()
        return PPORun(self, context).execute()

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

    def world_config(self, world: Any) -> Any:
        """A copy of the world config with the strategy's rollout sizes, leaving the context's intact."""
        cfg = copy.deepcopy(world)
        if self.num_envs is not None:
            cfg.num_envs = int(self.num_envs)
        if self.num_agents is not None:
            cfg.num_agents = int(self.num_agents)
        return cfg

    def configure_metrics(self, writer: Any) -> None:
        """Apply the strategy's logging overrides; a ``max_log_entries`` <= 0 means unlimited."""
        if self.log_frequency is not None:
            writer.log_frequency = int(self.log_frequency)
        if self.max_log_entries is not None:
            writer.max_log_entries = int(self.max_log_entries) if self.max_log_entries > 0 else None

    def minibatch_rows(self, rows: int) -> int:
        """Rows per minibatch: ``minibatch_size``, or ``rows // num_minibatches`` if that is smaller;
        never more rows than there are, never fewer than one, so tiny batches still train."""
        if self.num_minibatches is None:
            return max(1, min(self.minibatch_size, rows))
        return max(1, min(self.minibatch_size, rows // min(self.num_minibatches, max(rows, 1))))

    def hyper_params(self, *, minibatch_size: int, entropy_coef: float) -> PPOHyperParams:
        """The update's parameters: the schema's, with this iteration's minibatch rows and entropy weight."""
        from townlet.algorithms.update import PPOHyperParams

        given: dict[str, Any] = {"minibatch_size": minibatch_size, "entropy_coef": entropy_coef}
        names = [f.name for f in fields(PPOHyperParams) if f.name not in given]
        return PPOHyperParams(**given, **{name: getattr(self, name) for name in names})


__all__ = ["PPOConfigError", "PPORun", "PPOStrategy"]
