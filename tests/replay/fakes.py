"""A tiny deterministic stand-in for VecTown, so the capture loop's bookkeeping is tested exactly.

It is not a world: observation feature 0 is the tick, feature 1 the agent index, and the reward is
the action just taken; that makes "the observation and the action chosen from it share a row" and
the reward/episode/event accounting checkable by arithmetic.
"""

from __future__ import annotations

import numpy as np

from townlet.behaviour.rules import PolicyOutput
from townlet.world.spec import EVENT_COUNTERS, Observation, StepResult

from .conftest import SPEC


class FakeTown:
    def __init__(self, num_envs: int = 2, num_agents: int = 3, episode_length: int = 5) -> None:
        self.spec = SPEC
        self.num_envs, self.num_agents = num_envs, num_agents
        self.n_agents = num_envs * num_agents
        self.episode_length = episode_length
        self.tick = 0

    def _obs(self) -> Observation:
        n = self.n_agents
        feats = np.zeros((n, SPEC.feature_dim), np.float32)
        feats[:, 0] = self.tick
        feats[:, 1] = np.arange(n)
        maps = np.full((n, *SPEC.map_shape), self.tick % 256, np.uint8)
        mask = np.ones((n, SPEC.num_actions), bool)
        return Observation(maps, feats, mask)

    def reset(self) -> Observation:
        self.tick = 0
        return self._obs()

    def step(self, actions: np.ndarray) -> StepResult:
        self.tick += 1
        rewards = actions.astype(np.float32) * 0.5
        terminated = (np.arange(self.n_agents) == 0) & (self.tick % 3 == 0)
        end = self.tick % self.episode_length == 0
        truncated = np.full(self.n_agents, end)
        final = self._obs() if end else None
        events = {name: np.full(self.num_envs, 1.0) for name in EVENT_COUNTERS}
        return StepResult(self._obs(), rewards, terminated, truncated, final, events)


class TickPolicy:
    """Acts (tick + agent) % A from the observation; values = feature 0 so bootstraps are checkable."""

    name = "tick"

    def act(self, obs: Observation) -> PolicyOutput:
        a = (obs.features[:, 0].astype(np.int64) + obs.features[:, 1].astype(np.int64)) % SPEC.num_actions
        teacher = np.zeros_like(a)
        return PolicyOutput(a, np.full(len(a), -1.0, np.float32), obs.features[:, 0].copy(), teacher)

    def value(self, obs: Observation) -> np.ndarray:
        return obs.features[:, 0] + 1000.0
