"""A restored town continues exactly where its snapshot was taken: the basis of PPO's exact resume."""

from __future__ import annotations

import numpy as np
import pytest

from townlet.world import load_world_config, make_town
from townlet.world.config import WorldConfigError
from townlet.world.vectown import DYNAMIC_ARRAYS, VecTown


def _random_actions(town: VecTown, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 8, size=town.n_agents)


def _town(world: str) -> VecTown:
    cfg = load_world_config(world, {"num_envs": 3, "episode_length": 40})
    return make_town(cfg, seed=5)


@pytest.mark.parametrize("world", ["default", "queue_conflict", "employment_punctuality"])
def test_restored_town_steps_identically(world: str) -> None:
    rng = np.random.default_rng(0)
    town = _town(world)
    town.reset()
    for _ in range(27):
        town.step(_random_actions(town, rng))
    state = town.snapshot()
    twin = _town(world)
    twin.restore(state)
    np.testing.assert_array_equal(twin.observe().features, town.observe().features)
    for _ in range(50):  # crosses an episode end (40 ticks) and its auto-reset
        actions = _random_actions(town, rng)
        a, b = town.step(actions), twin.step(actions)
        np.testing.assert_array_equal(a.rewards, b.rewards)
        np.testing.assert_array_equal(a.terminated, b.terminated)
        np.testing.assert_array_equal(a.truncated, b.truncated)
        np.testing.assert_array_equal(a.obs.maps, b.obs.maps)
        np.testing.assert_array_equal(a.obs.features, b.obs.features)
        np.testing.assert_array_equal(a.obs.action_mask, b.obs.action_mask)
    assert town.episode == twin.episode == 1


def test_every_changing_array_is_in_the_snapshot() -> None:
    """A new state array added to the rules must join DYNAMIC_ARRAYS, or resumes drift silently."""
    town = _town("employment_punctuality")
    town.reset()
    before = {k: v.copy() for k, v in vars(town).items() if isinstance(v, np.ndarray)}
    rng = np.random.default_rng(1)
    for _ in range(30):
        town.step(_random_actions(town, rng))
    changed = {k for k, v in before.items() if not np.array_equal(v, getattr(town, k))}
    assert changed, "the town did not change in 30 ticks"
    assert changed <= set(DYNAMIC_ARRAYS)


def test_snapshot_of_another_world_is_refused() -> None:
    small = _town("default")
    other = make_town(load_world_config("default", {"num_envs": 2, "episode_length": 40}), seed=5)
    with pytest.raises(WorldConfigError, match="shape"):
        other.restore(small.snapshot())
    state = small.snapshot()
    del state["wallet"]
    with pytest.raises(WorldConfigError, match="lacks wallet"):
        small.restore(state)
