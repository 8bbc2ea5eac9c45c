"""Running statistics behind PPO's reward scaling and feature normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from townlet.algorithms.returns import ReturnScaler, RunningMoments


def test_running_moments_of_batches_equal_the_moments_of_all_rows() -> None:
    rng = np.random.default_rng(0)
    parts = [rng.normal(3.0, 2.0, size=(n, 4)) for n in (5, 17, 1, 40)]
    moments = RunningMoments((4,))
    for part in parts:
        moments.update(part)
    rows = np.concatenate(parts)
    assert moments.mean == pytest.approx(rows.mean(axis=0), rel=1e-5)  # the 1e-4 prior count
    assert moments.var == pytest.approx(rows.var(axis=0), rel=1e-4)  # the 1e-4 prior count


def test_return_scaler_uses_the_spread_of_discounted_returns_and_resets_at_episode_ends() -> None:
    rewards = np.ones((4, 2))
    ends = np.zeros((4, 2), bool)
    ends[1, 0] = True  # agent 0's episode ends after tick 1
    scaler = ReturnScaler(gamma=0.5, num_agents=2)
    factor = scaler.update(rewards, ends)
    seen = np.array([[1.0, 1.0], [1.5, 1.5], [1.0, 1.75], [1.5, 1.875]])  # by hand
    assert factor == pytest.approx(1.0 / np.sqrt(seen.var() + 1e-8), rel=1e-3)
    restored = ReturnScaler(gamma=0.5, num_agents=2)
    restored.load_state(scaler.state())
    assert restored.update(rewards, ends) == scaler.update(rewards, ends)
