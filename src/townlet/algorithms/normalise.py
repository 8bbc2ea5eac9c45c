"""Running statistics for PPO's optional input and reward normalisation (NumPy, no torch).

Both keep state that must survive a resume, so each has ``state()`` / ``from_state()`` with plain
floats and lists that fit a checkpoint's ``extra``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class RunningMoments:
    """Mean and variance of every column seen so far (batches merged with Chan's parallel formula)."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4  # a tiny prior count: the first batch sets the statistics

    def update(self, batch: np.ndarray) -> None:
        """Fold ``batch`` ([rows, *shape]) into the statistics."""
        batch = np.asarray(batch, np.float64).reshape(-1, *self.mean.shape)
        n = batch.shape[0]
        if n == 0:
            return
        mean, var = batch.mean(axis=0), batch.var(axis=0)
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + var * n + delta**2 * self.count * n / total) / total
        self.count = total

    def state(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "count": self.count}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RunningMoments:
        out = cls(np.asarray(state["mean"]).shape)
        out.mean = np.asarray(state["mean"], np.float64)
        out.var = np.asarray(state["var"], np.float64)
        out.count = float(state["count"])
        return out


class ReturnScaler:
    """Divides rewards by the running standard deviation of each agent's discounted return.

    The town's rewards are small (about -0.1..+0.15 per tick) and their scale shifts as the policy
    improves; keeping the return's spread near 1 keeps the value loss and the critic's targets on
    one scale for the whole run. The mean is not subtracted: the sign of a reward is information.
    """

    def __init__(self, gamma: float, num_agents: int) -> None:
        self.gamma = float(gamma)
        self.returns = np.zeros(num_agents, np.float64)
        self.moments = RunningMoments()

    def update(self, rewards: np.ndarray, episode_end: np.ndarray) -> float:
        """Fold a [T, N] rollout into the statistics; returns the factor to multiply its rewards by."""
        seen = np.empty(rewards.shape, np.float64)
        for t in range(rewards.shape[0]):
            self.returns = self.returns * self.gamma + rewards[t]
            seen[t] = self.returns
            self.returns[episode_end[t]] = 0.0
        self.moments.update(seen.reshape(-1))
        return float(1.0 / np.sqrt(float(self.moments.var) + 1e-8))

    def state(self) -> dict[str, Any]:
        return {"returns": self.returns.tolist(), "moments": self.moments.state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.returns = np.asarray(state["returns"], np.float64)
        self.moments = RunningMoments.from_state(state["moments"])
