"""Generalised advantage estimation over time-major [T, N] tensors.

The recursion loops over T only, each step a handful of [N]-wide tensor ops (no host syncs, so it runs
unchanged on a GPU), and the two ways an episode can end are kept apart:

* ``terminated`` (an agent fainted): the future is cut -- no bootstrap, no advantage carried over;
* ``truncated`` (the fixed-length episode ran out): the future is *not* zero, so the step bootstraps
  from the value of the final observation, and only the carried-over advantage is cut (the next row
  in the buffer already belongs to a fresh episode).
"""

from __future__ import annotations

import torch

__all__ = ["compute_gae", "next_values_for"]


def next_values_for(
    values: torch.Tensor,
    bootstrap_values: torch.Tensor,
    truncated: torch.Tensor,
    final_values: torch.Tensor | None,
) -> torch.Tensor:
    """V(s_{t+1}) as each transition sees it, [T, N].

    ``values`` [T, N] are V(s_t); ``bootstrap_values`` [N] is V of the observation after the last row;
    at a truncated row the next row belongs to a new episode, so ``final_values`` [T, N] (V of the
    episode's final observation) is used there. Without final values (e.g. a replay dataset that did
    not record them) the truncated row falls back to its own V(s_t): a one-step-stale estimate that is
    far better than bootstrapping from zero, and exact in expectation for a stationary need state.
    """
    nxt = torch.empty_like(values)
    nxt[:-1] = values[1:]
    nxt[-1] = bootstrap_values
    replacement = final_values if final_values is not None else values
    return torch.where(truncated, replacement, nxt)


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns, both [T, N] float32.

    delta_t = r_t + gamma * V(s_{t+1}) * (1 - terminated_t) - V(s_t)
    A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1},   done = terminated | truncated
    R_t     = A_t + V(s_t)
    """
    if rewards.dim() != 2:
        raise ValueError(
            f"GAE expects time-major [T, N] tensors, got rewards of shape {tuple(rewards.shape)}"
        )
    for name, col in (("values", values), ("next_values", next_values), ("terminated", terminated)):
        if col.shape != rewards.shape:
            raise ValueError(f"GAE: {name} has shape {tuple(col.shape)}, rewards {tuple(rewards.shape)}")
    if truncated.shape != rewards.shape:
        raise ValueError(f"GAE: truncated has shape {tuple(truncated.shape)}, rewards {tuple(rewards.shape)}")
    rewards = rewards.float()
    values = values.float()
    alive = (~terminated.bool()).float()
    carry = (~(terminated.bool() | truncated.bool())).float() * (gamma * lam)
    deltas = rewards + gamma * next_values.float() * alive - values
    adv = torch.empty_like(deltas)
    running = torch.zeros_like(deltas[0])
    for t in range(deltas.shape[0] - 1, -1, -1):
        running = deltas[t] + carry[t] * running
        adv[t] = running
    return adv, adv + values
