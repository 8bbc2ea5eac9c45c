"""Discounted returns-to-go of recorded trajectories (NumPy, torch-free).

Why: behaviour cloning fits only the policy head, so a PPO stage warm-started from a clone used to
begin with an untrained critic and followed noisy advantages. BC can train the value head on the
dataset's own rewards; this module turns time-major [T, N] reward columns into the regression
targets, with the same episode-end rules as GAE (``algorithms/gae.py``):

* ``terminated`` (faint): the future is cut, no bootstrap;
* ``truncated`` (the fixed-length episode ran out) and the end of the recording: the future is not
  zero, so the return bootstraps from the value *after* that row (the "cut").

A return is linear in the bootstrap value of its cut, so :func:`returns_to_go_parts` splits it into
``base + discount * V_after_cut``. Callers can then plug in recorded values (a capture by a network)
or the critic being trained (a scripted capture records 0), re-evaluating only the few cut rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ReturnsToGoParts", "cut_bootstrap_values", "returns_to_go", "returns_to_go_parts"]


@dataclass(frozen=True)
class ReturnsToGoParts:
    """``G[t, n] = base[t, n] + discount[t, n] * B[cut_row[t, n], n]``, B = value after a cut row.

    ``discount`` is 0 for rows whose trajectory piece ends in a termination (nothing to bootstrap);
    ``cut_row`` is then the terminating row (unused). ``is_cut`` marks the rows whose successor value
    is needed: truncations and the last recorded row, unless they also terminate.
    """

    base: np.ndarray  # float64 [T, N]
    discount: np.ndarray  # float64 [T, N]
    cut_row: np.ndarray  # int64 [T, N]
    is_cut: np.ndarray  # bool [T, N]

    def returns(self, after_cut: np.ndarray) -> np.ndarray:
        """Returns [T, N] given ``after_cut`` [T, N] (only its cut rows are read)."""
        boot = np.take_along_axis(np.asarray(after_cut, np.float64), self.cut_row, axis=0)
        return self.base + self.discount * boot


def returns_to_go_parts(
    rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray, gamma: float
) -> ReturnsToGoParts:
    """Backward recursion over T (each step vectorised over the N agent trajectories).

    G_t = r_t + gamma * (0 if terminated_t else B_t if cut_t else G_{t+1}), cut = truncated | last row.
    """
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


def returns_to_go(
    rewards: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    gamma: float,
    final_values: np.ndarray | None = None,
    bootstrap_values: np.ndarray | None = None,
) -> np.ndarray:
    """Discounted returns-to-go [T, N] bootstrapped from recorded values (0 where none are given)."""
    parts = returns_to_go_parts(rewards, terminated, truncated, gamma)
    shape = parts.base.shape
    fv = np.zeros(shape) if final_values is None else final_values
    bv = np.zeros(shape[1]) if bootstrap_values is None else bootstrap_values
    return parts.returns(cut_bootstrap_values(truncated, fv, bv))
