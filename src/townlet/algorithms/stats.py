"""Batch statistics and on-device metric accumulation for the PPO update.

A host sync per minibatch (``.item()``) would cost a large share of a CPU train step and stall a
GPU, so every per-minibatch quantity is written into one preallocated device tensor and read back
with a single ``.tolist()`` per epoch.
"""

from __future__ import annotations

import torch

__all__ = [
    "MEAN_FIELDS",
    "MINIBATCH_FIELDS",
    "SPREAD_FIELDS",
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


# Columns of the per-minibatch row written by the update loop. A metric keeps one name end to end:
# the reported ones are named as on the metrics line and in ``PPOTrainingResultDTO``.
MINIBATCH_FIELDS: tuple[str, ...] = (
    "loss_policy",
    "loss_value",
    "loss_entropy",  # mean policy entropy (positive)
    "loss_total",
    "clip_fraction",
    "minibatch_adv_mean",  # advantages as trained on (the metrics line's adv_* are the raw moments)
    "minibatch_adv_std",
    "grad_norm",
    "kl_k1",
    "kl_divergence",  # the k3 estimator
    "loss_bc",  # cross-entropy to the teacher's action (NaN when the batch carries no teacher labels)
    "nonfinite",  # 1.0 when the loss or the gradient norm was NaN/Inf in this minibatch
)
_FIELD_SET = frozenset(MINIBATCH_FIELDS)
# Columns whose mean over the minibatches the summary reports, under the column's name.
MEAN_FIELDS: tuple[str, ...] = (
    "loss_policy",
    "loss_value",
    "loss_entropy",
    "loss_total",
    "clip_fraction",
    "grad_norm",
    "kl_k1",
    "kl_divergence",
    "loss_bc",
)
# What the summary adds to the means, in the order ``summarise`` computes them.
SPREAD_FIELDS: tuple[str, ...] = (
    "batch_entropy_std",
    "grad_norm_max",
    "kl_divergence_max",  # largest |k3| of a minibatch
    "clip_fraction_max",
    "clip_triggered_minibatches",  # minibatches with any clipped ratio
    "adv_min_std",
    "adv_zero_std_batches",  # minibatches whose advantages have (near) zero spread
    "nonfinite_count",
    "first_nonfinite",  # index of the first NaN/Inf minibatch (the count of minibatches if none)
)


class MinibatchLog:
    """A [capacity, len(MINIBATCH_FIELDS)] device buffer, one row per minibatch, read once per epoch."""

    def __init__(self, capacity: int, device: torch.device | str) -> None:
        self.rows = torch.zeros((max(1, capacity), len(MINIBATCH_FIELDS)), dtype=torch.float32, device=device)
        self.count = 0

    def record(self, **values: torch.Tensor) -> None:
        """One minibatch's row: a 0-d tensor for each of ``MINIBATCH_FIELDS``, by name."""
        if values.keys() != _FIELD_SET:
            missing, unexpected = sorted(_FIELD_SET - values.keys()), sorted(values.keys() - _FIELD_SET)
            raise KeyError(f"minibatch row: missing {missing}, unexpected {unexpected}")
        if self.count >= self.rows.shape[0]:
            grown = torch.zeros_like(self.rows)
            self.rows = torch.cat([self.rows, grown])
        self.rows[self.count] = torch.stack(
            [values[name].detach().float().reshape(()) for name in MINIBATCH_FIELDS]
        )
        self.count += 1

    def used(self) -> torch.Tensor:
        return self.rows[: self.count]

    def summarise(self) -> dict[str, float]:
        """Means, maxima and counts over the recorded minibatches with one device->host transfer.

        The keys are the metrics line's names: ``MEAN_FIELDS``, ``SPREAD_FIELDS``,
        ``batch_entropy_mean`` (the same value as ``loss_entropy``, a key of its own in the file
        format) and ``updates``.
        """
        n = self.count
        if n == 0:
            return {}
        rows = self.used()
        col = {name: rows[:, i] for i, name in enumerate(MINIBATCH_FIELDS)}
        ent = col["loss_entropy"]
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
                col["kl_divergence"].abs().max(),
                col["clip_fraction"].max(),
                (col["clip_fraction"] > 0).float().sum(),
                col["minibatch_adv_std"].min(),
                (col["minibatch_adv_std"] < EPS).float().sum(),
                nonfinite.sum(),
                first_bad,
            ]
        ).tolist()
        means = dict(zip(MINIBATCH_FIELDS, packed, strict=False))
        out = {name: means[name] for name in MEAN_FIELDS}
        out["batch_entropy_mean"] = out["loss_entropy"]
        out.update(zip(SPREAD_FIELDS, packed[len(MINIBATCH_FIELDS) :], strict=True))
        out["updates"] = float(n)
        return out
