"""The PettingZoo ParallelEnv face of one town passes PettingZoo's own API, seed, render and state tests."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from pettingzoo.test import parallel_api_test, parallel_seed_test, render_test
from pettingzoo.test.state_test import test_parallel_env as parallel_state_test
from pettingzoo.utils.conversions import parallel_to_aec

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


def test_parallel_seed_test_passes() -> None:
    parallel_seed_test(lambda: TownParallelEnv(small("queue_conflict", episode_length=30)), num_cycles=40)


def test_render_test_passes_in_every_mode_and_human_prints(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = small("default", episode_length=30)
    assert TownParallelEnv.metadata["render_modes"] == ["human", "rgb_array", "ansi"]
    render_test(lambda render_mode=None: parallel_to_aec(TownParallelEnv(cfg, render_mode=render_mode)))
    human = TownParallelEnv(cfg, seed=0, render_mode="human")
    human.reset(seed=0)
    capsys.readouterr()
    assert human.render() is None
    assert capsys.readouterr().out.startswith("tick 0/30")


def test_state_is_every_agents_features_in_its_space() -> None:
    env = TownParallelEnv(small("queue_conflict", episode_length=10), seed=0)
    parallel_state_test(env)
    obs, _ = env.reset(seed=0)
    state = env.state()
    assert state.shape == env.state_space.shape
    want = np.concatenate([obs[name]["features"] for name in env.possible_agents])
    assert np.array_equal(state, want)


def test_reset_without_a_seed_starts_a_new_episode() -> None:
    env = TownParallelEnv(small("default", episode_length=3), seed=4)
    first, _ = env.reset(seed=4)
    again, _ = env.reset()  # after a reset without steps: still a new episode
    assert not data_equivalence(first, again)
    while env.agents:
        env.step({a: 0 for a in env.agents})
    after_end, _ = env.reset()  # the episode the town rolled into at truncation, not a replay
    assert not data_equivalence(after_end, first) and not data_equivalence(after_end, again)
    assert data_equivalence(env.reset(seed=4)[0], first)  # a seed replays from its episode 0
    fresh = TownParallelEnv(small("default", episode_length=3), seed=4)
    assert data_equivalence(fresh.reset()[0], first)  # the first reset of a new env is the seed's episode 0
