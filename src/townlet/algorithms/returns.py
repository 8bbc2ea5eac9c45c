"""Torch-free maths: returns-to-go (BC's value warm-up targets, split as ``base + discount *
V_after_cut`` so only cut rows need the critic) and PPO's running statistics (plain state for resume).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ReturnsToGoParts:
    """``G[t, n] = base + discount * B[cut_row, n]``; discount is 0 where a termination ends the piece."""

    base: np.ndarray  # float64 [T, N]
    discount: np.ndarray  # float64 [T, N]
    cut_row: np.ndarray  # int64 [T, N]
    is_cut: np.ndarray  # bool [T, N]


def returns_to_go_parts(
    rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray, gamma: float
) -> ReturnsToGoParts:
    """G_t = r_t + gamma * (0 if terminated_t else B_t if cut_t else G_{t+1}), cut = truncated | last row."""
    r = np.asarray(rewards, np.float64)
    if r.ndim != 2:
        raise ValueError(f"returns-to-go expects time-major [T, N] rewards, got shape {r.shape}")
    term = np.asarray(terminated, bool)
    trunc = np.asarray(truncated, bool)
    if term.shape != r.shape or trunc.shape != r.shape:
        raise ValueError(
            f"returns-to-go: terminated {term.shape} / truncated {trunc.shape} differ from rewards {r.shape}"
        )
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"returns-to-go: gamma must be in [0, 1], got {gamma}")
    t_len, n = r.shape
    is_cut = trunc.copy()
    if t_len:
        is_cut[-1] = True
    is_cut &= ~term
    base = np.zeros_like(r)
    disc = np.zeros_like(r)
    cut_row = np.zeros(r.shape, np.int64)
    run_base = np.zeros(n)
    run_disc = np.zeros(n)
    run_cut = np.full(n, max(t_len - 1, 0), np.int64)
    for t in range(t_len - 1, -1, -1):
        ends = term[t] | is_cut[t]  # this row starts a fresh backward piece
        run_base = r[t] + np.where(ends, 0.0, gamma * run_base)
        run_disc = np.where(term[t], 0.0, np.where(is_cut[t], gamma, gamma * run_disc))
        run_cut = np.where(ends, t, run_cut)
        base[t], disc[t], cut_row[t] = run_base, run_disc, run_cut
    return ReturnsToGoParts(base=base, discount=disc, cut_row=cut_row, is_cut=is_cut)


def cut_bootstrap_values(
    truncated: np.ndarray, final_values: np.ndarray, bootstrap_values: np.ndarray
) -> np.ndarray:
    """Recorded value after each cut row, [T, N]: V(final obs) at a truncation (the next recorded row
    is already a new episode), else ``bootstrap_values`` (V of the observation after the last row)."""
    trunc = np.asarray(truncated, bool)
    out = np.zeros(trunc.shape, np.float64)
    if trunc.shape[0]:
        out[-1] = np.asarray(bootstrap_values, np.float64)
    fv = np.asarray(final_values, np.float64)
    return np.where(trunc, fv, out)


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
    """Divides rewards by the running std of the discounted return (not the mean: a sign is information)."""

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
