"""Batch statistics and on-device metric accumulation for the PPO update.

A host sync per minibatch (``.item()``) would cost a large share of a CPU train step and stall a
GPU, so every per-minibatch quantity is written into one preallocated device tensor and read back
with a single ``.tolist()`` per epoch.
"""

from __future__ import annotations

import torch

__all__ = [
    "MINIBATCH_FIELDS",
    "MinibatchLog",
    "explained_variance",
    "normalise_advantages",
    "pearson_corr",
]

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


# Order of the per-minibatch row written by the update loop.
MINIBATCH_FIELDS: tuple[str, ...] = (
    "loss_policy",
    "loss_value",
    "entropy",
    "loss_total",
    "clip_fraction",
    "adv_mean",
    "adv_std",
    "grad_norm",
    "kl_k1",
    "kl_k3",
    "loss_bc",  # cross-entropy to the teacher's action (NaN when the batch carries no teacher labels)
    "nonfinite",  # 1.0 when the loss or the gradient norm was NaN/Inf in this minibatch
)


class MinibatchLog:
    """A [capacity, len(MINIBATCH_FIELDS)] device buffer, one row per minibatch, read once per epoch."""

    def __init__(self, capacity: int, device: torch.device | str) -> None:
        self.rows = torch.zeros((max(1, capacity), len(MINIBATCH_FIELDS)), dtype=torch.float32, device=device)
        self.count = 0

    def record(self, values: list[torch.Tensor]) -> None:
        if self.count >= self.rows.shape[0]:
            grown = torch.zeros_like(self.rows)
            self.rows = torch.cat([self.rows, grown])
        self.rows[self.count] = torch.stack([v.detach().float().reshape(()) for v in values])
        self.count += 1

    def used(self) -> torch.Tensor:
        return self.rows[: self.count]

    def summarise(self) -> dict[str, float]:
        """Means, maxima and counts over the recorded minibatches with one device->host transfer."""
        n = self.count
        if n == 0:
            return {}
        rows = self.used()
        col = {name: rows[:, i] for i, name in enumerate(MINIBATCH_FIELDS)}
        ent = col["entropy"]
        nonfinite = col["nonfinite"]
        first_bad = torch.where(
            nonfinite > 0,
            torch.arange(n, device=rows.device, dtype=torch.float32),
            torch.full_like(nonfinite, n),
        ).min()
        packed = torch.stack(
            [
                *(rows.mean(0)),
                ent.std(unbiased=False) if n > 1 else torch.zeros((), device=rows.device),
                col["grad_norm"].max(),
                col["kl_k3"].abs().max(),
                col["clip_fraction"].max(),
                (col["clip_fraction"] > 0).float().sum(),
                col["adv_std"].min(),
                (col["adv_std"] < EPS).float().sum(),
                nonfinite.sum(),
                first_bad,
            ]
        ).tolist()
        out = {f"mean_{name}": packed[i] for i, name in enumerate(MINIBATCH_FIELDS)}
        k = len(MINIBATCH_FIELDS)
        extra = (
            "entropy_std",
            "grad_norm_max",
            "kl_max",
            "clip_fraction_max",
            "clip_triggered",
            "adv_min_std",
            "adv_zero_std",
            "nonfinite_count",
            "first_nonfinite",
        )
        out.update({name: packed[k + j] for j, name in enumerate(extra)})
        out["updates"] = float(n)
        return out
