"""The value-head warm-up: returns-to-go targets (cuts bootstrapped from the network being trained), so
a PPO stage after BC starts with a useful critic.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import logging

    import torch

    from townlet.replay import ReplayData
    from townlet.strategies.bc.data import BCTensors


class ValueTargets(NamedTuple):
    """Returns-to-go of one split as ``base + discount * V_after_cut``; ``recorded`` None: the
    ``cut_rows`` are re-valued by the network once per epoch."""

    base: torch.Tensor  # f32 [M]
    discount: torch.Tensor  # f32 [M]
    cut_index: torch.Tensor  # i64 [M], flat row of each row's cut
    cut_rows: torch.Tensor  # i64 [K], the distinct cut rows
    recorded: torch.Tensor | None  # f32 [M], recorded value after the cut (None: use the critic)


def warmup_targets(
    train_data: ReplayData,
    val_data: ReplayData | None,
    value_coef: float,
    gamma: float,
    device: str,
    log: logging.Logger,
) -> tuple[ValueTargets | None, ValueTargets | None]:
    """Targets for the training and validation splits; (None, None) when the value head is not trained
    (``value_coef`` 0, or a dataset without rewards, where every return would be 0)."""
    if not value_coef > 0:
        return None, None
    if not np.any(train_data.rewards != 0):
        log.info("bc: the dataset's rewards are all 0; the value head is not trained (value_coef)")
        return None, None
    train = value_targets(train_data, gamma, device)
    val = value_targets(val_data, gamma, device) if val_data is not None else None
    return train, val


def value_targets(data: ReplayData, gamma: float, device: str) -> ValueTargets:
    """The value head's targets, rows t-major as ``data.flat`` (aligned with ``stack_tensors``)."""
    import torch

    from townlet.algorithms.returns import cut_bootstrap_values, returns_to_go_parts

    parts = returns_to_go_parts(data.rewards, data.terminated, data.truncated, gamma)
    n = data.num_agents
    cut_index = (parts.cut_row * n + np.arange(n)[None, :]).reshape(-1)
    recorded = None
    if np.any(data.final_values[data.truncated] != 0) or np.any(data.bootstrap_values != 0):
        after = cut_bootstrap_values(data.truncated, data.final_values, data.bootstrap_values).reshape(-1)
        recorded = torch.from_numpy(after[cut_index].astype(np.float32)).to(device)
    return ValueTargets(
        base=torch.from_numpy(parts.base.reshape(-1).astype(np.float32)).to(device),
        discount=torch.from_numpy(parts.discount.reshape(-1).astype(np.float32)).to(device),
        cut_index=torch.from_numpy(cut_index).to(device),
        cut_rows=torch.from_numpy(np.flatnonzero(parts.is_cut.reshape(-1))).to(device),
        recorded=recorded,
    )


def current_returns(net: torch.nn.Module, data: BCTensors, vt: ValueTargets) -> torch.Tensor:
    """Returns [M], cuts bootstrapped from ``vt.recorded`` or V(s_cut) (GAE's replay fallback)."""
    import torch

    if vt.recorded is not None:
        return vt.base + vt.discount * vt.recorded
    after = torch.zeros_like(vt.base)
    if vt.cut_rows.numel():
        was_training = net.training
        net.eval()
        with torch.no_grad():
            idx = vt.cut_rows
            _, v = net(data.maps[idx], data.features[idx], data.mask[idx])
            after[idx] = v.float()
        net.train(was_training)
    return vt.base + vt.discount * after[vt.cut_index]


def init_value_bias(net: torch.nn.Module, vt: ValueTargets) -> None:
    """Start the value head at the mean return m = mean(base) + mean(discount) * m, not 0, so early
    gradients do not go to that offset at the imitation's expense."""
    import torch

    head = getattr(net, "value_head", None)
    bias = getattr(head, "bias", None)
    if bias is None:
        return
    if vt.recorded is not None:
        mean = (vt.base + vt.discount * vt.recorded).mean()
    else:
        mean = vt.base.mean() / (1.0 - vt.discount.mean()).clamp_min(1e-3)
    with torch.no_grad():
        bias.fill_(float(mean))


def evaluate_values(
    net: torch.nn.Module, data: BCTensors, returns: torch.Tensor, batch_size: int = 4096
) -> tuple[float, float | None]:
    """0.5 * MSE of the value head against ``returns`` and its explained variance (None if constant)."""
    import torch

    from townlet.algorithms.gae import explained_variance

    values = []
    net.eval()
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            sl = slice(start, start + batch_size)
            values.append(net(data.maps[sl], data.features[sl], data.mask[sl])[1].float())
    if not values:
        return 0.0, None
    v = torch.cat(values)
    loss, ev = torch.stack([0.5 * (v - returns).pow(2).mean(), explained_variance(v, returns)]).tolist()
    return float(loss), (float(ev) if math.isfinite(ev) else None)
