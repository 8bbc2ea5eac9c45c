"""The PettingZoo ParallelEnv face of one town passes PettingZoo's own API test."""

from __future__ import annotations

import numpy as np
from pettingzoo.test import parallel_api_test

from townlet.world.pz import TownParallelEnv

from .conftest import small


def test_parallel_api_test_passes() -> None:
    env = TownParallelEnv(small("queue_conflict", episode_length=40), seed=0)
    parallel_api_test(env, num_cycles=60)


def test_masks_in_infos_and_truncation_at_episode_end() -> None:
    env = TownParallelEnv(small("default", episode_length=5), seed=1)
    obs, infos = env.reset(seed=1)
    assert set(obs) == set(env.possible_agents)
    first = next(iter(infos))
    assert np.array_equal(infos[first]["action_mask"], obs[first]["action_mask"])
    assert env.observation_space(first)["map"].contains(obs[first]["map"])
    for _ in range(5):
        obs, _rew, term, trunc, infos = env.step({a: 0 for a in env.agents})
    assert all(trunc.values()) and not any(term.values())
    assert env.agents == []
