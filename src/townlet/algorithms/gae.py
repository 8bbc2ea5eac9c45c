"""Time-major columns to a device-resident PPO batch: uploaded once per iteration, GAE over [T, N]
without host syncs. A termination (faint) cuts the future; a truncation bootstraps from the final
observation's value and only cuts the carried-over advantage (the next row is a new episode).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from townlet.replay import ReplayData

EPS = 1e-8


def normalise_advantages(adv: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """(a - mean) / (biased std + eps) over all entries; returns the input if the stats are not finite."""
    mean = adv.mean()
    std = adv.std(unbiased=False)
    ok = torch.isfinite(mean) & torch.isfinite(std)
    return torch.where(ok, (adv - mean) / (std + eps), adv)


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
    """1 - Var[R - V] / Var[R]: 1 is a perfect critic, 0 a constant one; NaN when returns are constant."""
    var_r = returns.var(unbiased=False)
    ev = 1.0 - (returns - values).var(unbiased=False) / var_r
    return torch.where(var_r > 0, ev, torch.full_like(ev, float("nan")))


def pearson_corr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson r clamped to [-1, 1] (np.corrcoef can overshoot by an ulp); 0 when either side is constant."""
    x = x.double().flatten()
    y = y.double().flatten()
    xc = x - x.mean()
    yc = y - y.mean()
    denom = (xc.pow(2).sum() * yc.pow(2).sum()).sqrt()
    r = (xc * yc).sum() / denom.clamp_min(1e-300)
    r = torch.where(denom > 0, r, torch.zeros_like(r))
    return r.clamp(-1.0, 1.0).float()


class NonFiniteTrainingError(RuntimeError):
    """A NaN/Inf reached the update; the message names where, so the data or settings can be fixed."""


@dataclass
class PPOBatch:
    """Flat [M, ...] tensors on the training device; advantages already normalised if wanted."""

    maps: torch.Tensor  # uint8 [M, C, W, W]
    features: torch.Tensor  # f32 [M, F]
    action_mask: torch.Tensor  # bool [M, A]
    actions: torch.Tensor  # i64 [M]
    old_log_probs: torch.Tensor  # f32 [M], behaviour log-probs (recorded ones for replay data)
    old_values: torch.Tensor  # f32 [M], critic before this update (the value-clip anchor)
    advantages: torch.Tensor  # f32 [M]
    returns: torch.Tensor  # f32 [M]
    teacher_actions: torch.Tensor | None = None  # i64 [M], the scripted teacher's choice (loss_bc)

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    def take(self, idx: torch.Tensor) -> PPOBatch:
        rows = {f.name: getattr(self, f.name) for f in fields(self)}
        return PPOBatch(
            **{k: None if t is None else t.index_select(0, idx) for k, t in rows.items()}  # type: ignore[arg-type]
        )

    @staticmethod
    def cat(parts: Sequence[PPOBatch]) -> PPOBatch:
        """Row-concatenate; teacher labels survive only if every part has them."""
        if len(parts) == 1:
            return parts[0]
        out: dict[str, torch.Tensor | None] = {}
        for f in fields(PPOBatch):
            cols = [getattr(p, f.name) for p in parts]
            out[f.name] = None if any(c is None for c in cols) else torch.cat(cols)
        return PPOBatch(**out)  # type: ignore[arg-type]  # only the optional field can be None


def next_values_for(
    values: torch.Tensor,
    bootstrap_values: torch.Tensor,
    truncated: torch.Tensor,
    final_values: torch.Tensor | None,
) -> torch.Tensor:
    """V(s_{t+1}) per transition, [T, N]: at a truncation V(final obs), or without final values the
    row's own V(s_t) (one step stale, far better than bootstrapping from zero)."""
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
    """Advantages and returns [T, N]: A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}, R = A + V."""
    if rewards.dim() != 2:
        raise ValueError(
            f"GAE expects time-major [T, N] tensors, got rewards of shape {tuple(rewards.shape)}"
        )
    columns = {"values": values, "next_values": next_values, "terminated": terminated, "truncated": truncated}
    for name, col in columns.items():
        if col.shape != rewards.shape:
            raise ValueError(f"GAE: {name} has shape {tuple(col.shape)}, rewards {tuple(rewards.shape)}")
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


@dataclass
class PreparedBatch:
    """The flat PPO batch plus the [M] raw rewards and the pre-normalisation advantage moments."""

    batch: PPOBatch
    rewards: torch.Tensor
    raw_adv_mean: torch.Tensor
    raw_adv_std: torch.Tensor


def require_finite(tensors: dict[str, torch.Tensor], where: str) -> None:
    """One host sync for several tensors; raise naming every non-finite one."""
    flags = torch.stack([torch.isfinite(t).all() for t in tensors.values()]).tolist()
    bad = [name for name, ok in zip(tensors, flags, strict=True) if not ok]
    if bad:
        raise NonFiniteTrainingError(
            f"PPO found NaN/Inf in {', '.join(bad)} ({where}); the last good checkpoint is kept. "
            "Check the dataset (townlet-dataset inspect) or the reward settings, or lower the learning rate."
        )


def _tensor(arr: np.ndarray, device: torch.device, dtype: Any = None) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=dtype)).to(device)


@torch.no_grad()
def critic_values(
    network: nn.Module, data: ReplayData, device: torch.device, chunk: int = 8192
) -> tuple[torch.Tensor, torch.Tensor]:
    """V(s) of every row under the current network [T, N], and V after the last row (replay data's
    recorded values are a scripted behaviour's zeros, no baseline at all)."""

    def value_of(maps: np.ndarray, feats: np.ndarray, mask: np.ndarray) -> torch.Tensor:
        inputs = _tensor(maps, device), _tensor(feats, device, np.float32), _tensor(mask, device)
        return network(*inputs)[1].float()

    network.eval()
    t_len, n = data.num_ticks, data.num_agents
    maps, feats, mask = data.flat("maps"), data.flat("features"), data.flat("action_mask")
    out = torch.empty(t_len * n, device=device)
    for s in range(0, t_len * n, chunk):
        sl = slice(s, s + chunk)
        out[sl] = value_of(maps[sl], feats[sl], mask[sl])
    values = out.view(t_len, n)
    nxt = data.next_obs
    if nxt is None:
        return values, values[-1].clone()
    return values, value_of(nxt.maps, nxt.features, nxt.action_mask)


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
    """GAE + flattening. ``reward_scale`` scales only GAE's rewards (reported rewards stay as paid);
    replay passes ``use_final_values=False`` (its recorded critic is not the current one)."""
    rewards = _tensor(data.rewards, device, np.float32)
    scaled = rewards if reward_scale is None else rewards * reward_scale
    term = _tensor(data.terminated, device)
    if not faint_is_terminal:
        term = torch.zeros_like(term)
    trunc = _tensor(data.truncated, device)
    old_logp = _tensor(data.log_probs, device, np.float32)
    if values is None:
        values = _tensor(data.values, device, np.float32)
    if bootstrap is None:
        bootstrap = _tensor(data.bootstrap_values, device, np.float32)
    final_values = _tensor(data.final_values, device, np.float32) if use_final_values else None
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
    actions = _tensor(data.flat("actions"), device, np.int64)
    mask = _tensor(data.flat("action_mask"), device)
    # An executed action the mask forbids (a capture/world inconsistency) would get a -1e9 logit and
    # an exp(-1e9) ratio; allow it for that row instead of letting one row dominate the loss.
    mask = mask.scatter(1, actions.unsqueeze(1), True)
    batch = PPOBatch(
        maps=_tensor(data.flat("maps"), device),
        features=_tensor(data.flat("features"), device, np.float32),
        action_mask=mask,
        actions=actions,
        old_log_probs=old_logp.reshape(m),
        old_values=values.reshape(m).float(),
        advantages=adv_flat.contiguous(),
        returns=ret_flat.contiguous(),
        teacher_actions=None
        if teacher_actions is None
        else _tensor(teacher_actions, device, np.int64).reshape(m),
    )
    require_finite({"features": batch.features}, where)
    return PreparedBatch(batch=batch, rewards=rewards.reshape(m), raw_adv_mean=raw_mean, raw_adv_std=raw_std)
