"""The capture loop: row alignment, episode/event bookkeeping, bootstraps and continuation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from townlet.behaviour.rules import PolicyOutput
from townlet.replay import ReplayData, load_dataset, write_dataset
from townlet.replay.stats import summarise
from townlet.rollout.collect import RolloutCaptureService, RolloutError
from townlet.world.spec import Observation

from .conftest import SPEC
from .fakes import FakeTown, TickPolicy


@pytest.fixture
def rollout() -> ReplayData:
    return RolloutCaptureService().collect(FakeTown(), TickPolicy(), 12)


def test_observation_and_action_share_a_row(rollout: ReplayData) -> None:
    t = np.arange(12)[:, None]
    assert np.array_equal(rollout.features[..., 0], np.broadcast_to(t, (12, 6)))
    assert np.array_equal(rollout.tick, np.broadcast_to(t, (12, 6)))
    assert np.array_equal(rollout.maps[:, :, 0, 0, 0], np.broadcast_to(t, (12, 6)))
    want_actions = (t + np.arange(6)) % SPEC.num_actions
    assert np.array_equal(rollout.actions, want_actions)
    assert np.array_equal(rollout.rewards, want_actions * 0.5)  # reward of *this* row's action
    assert np.array_equal(rollout.teacher_actions, np.zeros((12, 6)))


def test_ids_episodes_and_done_flags(rollout: ReplayData) -> None:
    assert np.array_equal(rollout.env_id[0], [0, 0, 0, 1, 1, 1])
    assert np.array_equal(rollout.agent_id[3], [0, 1, 2, 0, 1, 2])
    assert rollout.truncated[:, 0].nonzero()[0].tolist() == [4, 9]  # ticks 5 and 10 end episodes
    assert rollout.episode_id[:, 0].tolist() == [0] * 5 + [1] * 5 + [2] * 2
    assert rollout.terminated[:, 0].nonzero()[0].tolist() == [2, 5, 8, 11]
    assert not rollout.terminated[:, 1:].any()


def test_values_final_values_and_bootstrap(rollout: ReplayData) -> None:
    assert np.array_equal(rollout.values[:, 0], np.arange(12))
    assert rollout.final_values[4, 0] == 1005.0 and rollout.final_values[9, 2] == 1010.0
    assert np.count_nonzero(rollout.final_values) == 2 * 6
    assert np.array_equal(rollout.bootstrap_values, np.full(6, 1012.0))
    assert rollout.next_obs is not None and rollout.next_obs.features[0, 0] == 12


def test_events_and_episode_stats_travel_with_the_data(tmp_path: Path, rollout: ReplayData) -> None:
    assert rollout.events["queue_conflict_events"] == 12 * 2  # 1 per env per tick
    stats = rollout.episode_stats
    assert stats["agent_episodes"] == 12 and stats["complete"] == 1.0
    returns = rollout.rewards[:10].reshape(2, 5, 6).sum(axis=1)
    assert stats["return_mean"] == pytest.approx(float(returns.mean()))
    assert stats["faints"] == 4 and stats["length_mean"] == 5
    loaded = load_dataset(write_dataset(rollout, tmp_path / "r"))
    assert isinstance(loaded, ReplayData)
    assert loaded.events == rollout.events and loaded.episode_stats == rollout.episode_stats
    assert summarise(loaded)["events"]["conflicts_per_100_agent_ticks"] == pytest.approx(100 * 24 / 72)


def test_continuing_from_next_obs_does_not_reset(rollout: ReplayData) -> None:
    town, svc = FakeTown(), RolloutCaptureService()
    first = svc.collect(town, TickPolicy(), 4)
    second = svc.collect(town, TickPolicy(), 8, start_obs=first.next_obs)
    joined = np.concatenate([first.actions, second.actions])
    assert np.array_equal(joined, rollout.actions)
    assert second.tick[0, 0] == 4


def test_bad_requests_are_clear() -> None:
    with pytest.raises(RolloutError, match="ticks must be positive"):
        RolloutCaptureService().collect(FakeTown(), TickPolicy(), 0)

    class Broken(TickPolicy):
        def act(self, obs: Observation) -> PolicyOutput:
            out = super().act(obs)
            return out._replace(actions=out.actions[:2])

    with pytest.raises(RolloutError, match="shape"):
        RolloutCaptureService().collect(FakeTown(), Broken(), 3)


def test_progress_is_reported() -> None:
    seen: list[int] = []
    RolloutCaptureService().collect(FakeTown(), TickPolicy(), 7, progress=seen.append)
    assert seen == list(range(1, 8))
