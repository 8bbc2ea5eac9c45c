"""Every strategy sizes its run through ``plan(world)``, the one home of iteration sizing."""

from __future__ import annotations

from types import SimpleNamespace

from townlet.config.schema.strategy_ppo import DataMode
from townlet.strategies.bc import BCStrategy
from townlet.strategies.ppo import PPOStrategy

WORLD = SimpleNamespace(num_envs=2, num_agents=2)


def test_ppo_rollout_plan_counts_iterations_of_the_rollout_rows() -> None:
    plan = PPOStrategy(n_steps=32, total_steps=384).plan(WORLD)
    assert (plan.units, plan.unit, plan.rows_per_iteration) == (3, "it", 128)
    assert PPOStrategy(n_steps=32, total_steps=384, num_envs=4).plan(WORLD).rows_per_iteration == 256


def test_ppo_replay_plan_is_its_epochs() -> None:
    plan = PPOStrategy(data_mode=DataMode.replay, epochs=2).plan(WORLD)
    assert (plan.units, plan.rows_per_iteration) == (2, None)


def test_bc_plan_is_its_epochs() -> None:
    plan = BCStrategy(epochs=3).plan(WORLD)
    assert (plan.units, plan.unit) == (3, "epoch")
