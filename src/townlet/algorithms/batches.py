"""Turning time-major replay/rollout columns into a device-resident PPO batch.

Upload once per iteration (never once per epoch), run GAE on [T, N],
normalise, check finiteness with a single host sync, then flatten to rows for minibatching.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from townlet.algorithms.gae import compute_gae, next_values_for
from townlet.algorithms.stats import normalise_advantages
from townlet.algorithms.update import NonFiniteTrainingError, PPOBatch

if TYPE_CHECKING:
    from townlet.replay import ReplayData

__all__ = ["PreparedBatch", "critic_values", "prepare_batch", "require_finite"]


@dataclass
class PreparedBatch:
    """The flat PPO batch plus the [M] raw rewards and the pre-normalisation advantage moments."""

    batch: PPOBatch
    rewards: torch.Tensor
    raw_adv_mean: torch.Tensor
    raw_adv_std: torch.Tensor


def require_finite(tensors: dict[str, torch.Tensor], where: str) -> None:
    """One host sync for several tensors; raise naming every non-finite one."""
    if not tensors:
        return
    flags = torch.stack([torch.isfinite(t).all() for t in tensors.values()]).tolist()
    bad = [name for name, ok in zip(tensors, flags, strict=True) if not ok]
    if bad:
        raise NonFiniteTrainingError(
            f"PPO found NaN/Inf in {', '.join(bad)} ({where}); the last good checkpoint is kept. "
            "Check the dataset (townlet-dataset inspect) or the reward settings, or lower the learning rate."
        )


def _col(data: ReplayData, name: str, device: torch.device, dtype: Any = None) -> torch.Tensor:
    arr = getattr(data, name)
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    return torch.from_numpy(np.ascontiguousarray(arr)).to(device)


@torch.no_grad()
def critic_values(
    network: nn.Module, data: ReplayData, device: torch.device, chunk: int = 8192
) -> tuple[torch.Tensor, torch.Tensor]:
    """V(s) of every row under the *current* network, [T, N], and V of the observation after the last row.

    Replay data from a scripted behaviour carries values of 0, which are no baseline at all; the
    current critic is what PPO's value clip and GAE need. Without ``next_obs`` the last row
    bootstraps from its own value.
    """
    network.eval()
    t_len, n = data.num_ticks, data.num_agents
    maps, feats, mask = data.flat("maps"), data.flat("features"), data.flat("action_mask")
    out = torch.empty(t_len * n, device=device)
    for s in range(0, t_len * n, chunk):
        sl = slice(s, s + chunk)
        _, v = network(
            torch.from_numpy(np.ascontiguousarray(maps[sl])).to(device),
            torch.from_numpy(np.ascontiguousarray(feats[sl], dtype=np.float32)).to(device),
            torch.from_numpy(np.ascontiguousarray(mask[sl])).to(device),
        )
        out[sl] = v.float()
    values = out.view(t_len, n)
    if data.next_obs is not None:
        nxt = data.next_obs
        _, boot = network(
            torch.from_numpy(np.ascontiguousarray(nxt.maps)).to(device),
            torch.from_numpy(np.ascontiguousarray(nxt.features, dtype=np.float32)).to(device),
            torch.from_numpy(np.ascontiguousarray(nxt.action_mask)).to(device),
        )
        boot = boot.float()
    else:
        boot = values[-1].clone()
    return values, boot


def prepare_batch(
    data: ReplayData,
    device: torch.device,
    *,
    gamma: float,
    lam: float,
    normalise: bool,
    where: str,
    values: torch.Tensor | None = None,
    bootstrap: torch.Tensor | None = None,
    use_final_values: bool = True,
    teacher_actions: np.ndarray | None = None,
    reward_scale: float | None = None,
    faint_is_terminal: bool = True,
) -> PreparedBatch:
    """GAE + flattening. ``values``/``bootstrap`` default to the recorded behaviour values.

    ``reward_scale`` multiplies the rewards before GAE (``strategy.reward_scaling``); the reported
    rewards stay as the town paid them.

    ``use_final_values``: trust the recorded V(final obs) at truncations (true for on-policy rollouts,
    whose behaviour critic *is* the current one); replay passes False and falls back to V(s_t).
    ``teacher_actions`` ([T, N] or [T*N]): the teacher's action per row, for ``loss_bc``.
    ``faint_is_terminal`` False: GAE bootstraps through faints (the agent lives on in the episode).
    """
    rewards = _col(data, "rewards", device, np.float32)
    scaled = rewards if reward_scale is None else rewards * reward_scale
    term = _col(data, "terminated", device)
    if not faint_is_terminal:
        term = torch.zeros_like(term)
    trunc = _col(data, "truncated", device)
    old_logp = _col(data, "log_probs", device, np.float32)
    if values is None:
        values = _col(data, "values", device, np.float32)
    if bootstrap is None:
        bootstrap = torch.from_numpy(np.asarray(data.bootstrap_values, np.float32)).to(device)
    final_values = _col(data, "final_values", device, np.float32) if use_final_values else None
    require_finite(
        {
            "rewards": rewards,
            "behaviour log_probs": old_logp,
            "values": values,
            "bootstrap_values": bootstrap,
        },
        where,
    )
    nxt = next_values_for(values, bootstrap, trunc, final_values)
    adv, ret = compute_gae(scaled, values, nxt, term, trunc, gamma, lam)
    adv_flat = adv.reshape(-1)
    raw_mean, raw_std = adv_flat.mean(), adv_flat.std(unbiased=False)
    if normalise:
        adv_flat = normalise_advantages(adv_flat)
    ret_flat = ret.reshape(-1)
    require_finite({"advantages": adv_flat, "returns": ret_flat}, where)
    m = data.num_transitions
    actions = torch.from_numpy(np.ascontiguousarray(data.flat("actions"), dtype=np.int64)).to(device)
    mask = torch.from_numpy(np.ascontiguousarray(data.flat("action_mask"))).to(device)
    # An executed action the mask forbids (a capture/world inconsistency) would get a -1e9 logit and
    # an exp(-1e9) ratio; allow it for that row instead of letting one row dominate the loss.
    mask = mask.scatter(1, actions.unsqueeze(1), True)
    batch = PPOBatch(
        maps=torch.from_numpy(np.ascontiguousarray(data.flat("maps"))).to(device),
        features=torch.from_numpy(np.ascontiguousarray(data.flat("features"), dtype=np.float32)).to(device),
        action_mask=mask,
        actions=actions,
        old_log_probs=old_logp.reshape(m),
        old_values=values.reshape(m).float(),
        advantages=adv_flat.contiguous(),
        returns=ret_flat.contiguous(),
        teacher_actions=None
        if teacher_actions is None
        else torch.from_numpy(np.ascontiguousarray(teacher_actions, dtype=np.int64).reshape(m)).to(device),
    )
    require_finite({"features": batch.features}, where)
    return PreparedBatch(batch=batch, rewards=rewards.reshape(m), raw_adv_mean=raw_mean, raw_adv_std=raw_std)
