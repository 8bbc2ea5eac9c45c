"""``faint_is_terminal``: whether GAE cuts an agent's return at a faint or bootstraps through it (the
agent respawns in the same episode). Checked on a real rollout in which random agents faint."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:  # the real module for the checker; at run time the test is skipped without torch
    import torch
else:
    torch = pytest.importorskip("torch")

from townlet.algorithms.gae import prepare_batch
from townlet.behaviour.rules import make_behaviour
from townlet.rollout.collect import RolloutCaptureService
from townlet.world import load_world_config, make_town

GAMMA = 0.9


def test_a_faint_cuts_the_return_only_when_terminal() -> None:
    world = load_world_config("default")
    world.num_envs, world.num_agents, world.episode_length = 2, 4, 400
    town = make_town(world, 0)
    data = RolloutCaptureService().collect(town, make_behaviour("random", town.spec, seed=0), 300)
    assert data.terminated.any(), "random agents should faint within 300 ticks"
    values = torch.linspace(-1.0, 1.0, data.rewards.size, dtype=torch.float32).reshape(data.rewards.shape)
    boot = torch.zeros(data.rewards.shape[1])

    def returns(terminal: bool) -> torch.Tensor:
        prepared = prepare_batch(
            data, torch.device("cpu"), values=values, bootstrap=boot, use_final_values=False, gamma=GAMMA,
            lam=0.0, normalise=False, where="test", faint_is_terminal=terminal,
        )  # fmt: skip
        return prepared.batch.returns.reshape(data.rewards.shape)

    cut, through = returns(True), returns(False)
    fainted = torch.from_numpy(data.terminated & ~data.truncated)
    fainted[-1] = False  # the last row bootstraps from ``boot`` either way
    # TD(0): a faint row's target is r alone when terminal, r + gamma * V(next row) otherwise
    expected = GAMMA * values[1:][fainted[:-1]]
    assert torch.allclose((through - cut)[:-1][fainted[:-1]], expected)
    assert torch.equal(through[~fainted], cut[~fainted])  # every other row is untouched
    assert np.isfinite(through.numpy()).all()
