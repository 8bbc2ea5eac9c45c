"""One PPO update: K epochs of shuffled minibatches over device-resident tensors, and its losses.

No host sync inside the minibatch loop: metrics go to a device buffer read once per epoch, which also
serves the NaN/Inf guard and ``target_kl``. Each source puts fixed rows in every minibatch (blending).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from townlet.algorithms.gae import EPS, NonFiniteTrainingError, PPOBatch


def log_prob_of(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log pi(a | s) for each row, [B]; cheaper than building a Categorical."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def masked_entropy(logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-row entropy, [B], with disallowed actions contributing 0 (not 0 * -inf = NaN)."""
    logits = logits.float()
    if mask is not None:
        logits = logits.masked_fill(~mask.bool(), torch.finfo(logits.dtype).min)
    logp = torch.log_softmax(logits, dim=-1)
    p = logp.exp()
    plogp = torch.where(p > 0, p * logp, torch.zeros_like(logp))
    return -plogp.sum(-1)


def teacher_cross_entropy(
    logits: torch.Tensor, teacher_actions: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean -log pi(teacher action | s) over rows whose teacher action the mask allows (0 if none)."""
    logp = log_prob_of(logits, teacher_actions)
    valid = torch.isfinite(logp)
    if mask is not None:
        valid = valid & mask.bool().gather(-1, teacher_actions.long().unsqueeze(-1)).squeeze(-1)
    ce = torch.where(valid, -logp, torch.zeros_like(logp))
    return ce.sum() / valid.sum().clamp_min(1)


def clipped_surrogate(
    new_log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor, clip: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO policy loss -mean(min(r A, clip(r, 1-eps, 1+eps) A)); also the ratios and the fraction of
    rows whose ratio left [1-eps, 1+eps]."""
    log_ratio = new_log_probs - old_log_probs
    ratio = log_ratio.exp()
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip, 1.0 + clip) * advantages
    loss = -torch.minimum(unclipped, clipped).mean()
    clip_frac = ((ratio - 1.0).abs() > clip).float().mean()
    return loss, ratio, clip_frac


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip: float
) -> torch.Tensor:
    """0.5 * mean(max((v - R)^2, (v_old + clip(v - v_old, +-c) - R)^2)); plain 0.5 * MSE when clip <= 0."""
    if values.shape != returns.shape or old_values.shape != returns.shape:
        raise ValueError(
            f"value loss shapes differ: values {tuple(values.shape)}, old {tuple(old_values.shape)}, "
            f"returns {tuple(returns.shape)}"
        )
    unclipped = (values - returns).pow(2)
    if clip <= 0:
        return 0.5 * unclipped.mean()
    v_clipped = old_values + (values - old_values).clamp(-clip, clip)
    return 0.5 * torch.maximum(unclipped, (v_clipped - returns).pow(2)).mean()


def kl_k1(old_log_probs: torch.Tensor, new_log_probs: torch.Tensor) -> torch.Tensor:
    """Naive estimator E_old[log p_old - log p_new]; unbiased but noisy and can be negative."""
    return (old_log_probs - new_log_probs).mean()


def kl_k3(old_log_probs: torch.Tensor, new_log_probs: torch.Tensor) -> torch.Tensor:
    """Low-variance E_old[(r - 1) - log r]: reported as ``kl_divergence``, compared to ``target_kl``."""
    log_ratio = new_log_probs - old_log_probs
    return (log_ratio.exp() - 1.0 - log_ratio).mean()


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
MEAN_FIELDS: tuple[str, ...] = (*MINIBATCH_FIELDS[:5], "grad_norm", "kl_k1", "kl_divergence", "loss_bc")
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
            self.rows = torch.cat([self.rows, torch.zeros_like(self.rows)])
        self.rows[self.count] = torch.stack(
            [values[name].detach().float().reshape(()) for name in MINIBATCH_FIELDS]
        )
        self.count += 1

    def used(self) -> torch.Tensor:
        return self.rows[: self.count]

    def summarise(self) -> dict[str, float]:
        """Means, maxima and counts over the recorded minibatches with one device->host transfer, under
        the metrics line's names (``batch_entropy_mean`` repeats ``loss_entropy``: a key of the format)."""
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


_NONFINITE = MINIBATCH_FIELDS.index("nonfinite")
_KL = MINIBATCH_FIELDS.index("kl_divergence")  # the k3 estimator


@dataclass(frozen=True)
class PPOHyperParams:
    """The knobs the update loop reads (no defaults: their one home is the strategy schema)."""

    clip_param: float
    value_loss_coef: float
    entropy_coef: float
    max_grad_norm: float
    value_clip: float
    update_epochs: int
    minibatch_size: int
    target_kl: float | None
    bc_coef: float  # weight of the teacher cross-entropy (kickstarting); needs teacher_actions


@dataclass
class Source:
    """One data stream of a (possibly blended) update and how many rows it puts in each minibatch."""

    batch: PPOBatch
    rows_per_minibatch: int


class _Cycler:
    """Endless seeded permutations of one source, so a smaller source can keep up with the primary."""

    def __init__(self, n: int, generator: torch.Generator, device: torch.device) -> None:
        self.n, self.gen, self.device = n, generator, device
        self.perm = torch.randperm(n, generator=generator).to(device)
        self.pos = 0

    def next(self, k: int) -> torch.Tensor:
        parts = []
        while k > 0:
            if self.pos >= self.n:
                self.perm = torch.randperm(self.n, generator=self.gen).to(self.device)
                self.pos = 0
            take = min(k, self.n - self.pos)
            parts.append(self.perm[self.pos : self.pos + take])
            self.pos += take
            k -= take
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def ppo_update(
    network: nn.Module,
    optimizer: torch.optim.Optimizer,
    sources: Sequence[Source] | PPOBatch,
    hp: PPOHyperParams,
    generator: torch.Generator,
    *,
    where: str = "",
) -> dict[str, float]:
    """Up to ``hp.update_epochs`` epochs (``target_kl`` may stop early); the metrics line's summary.
    ``generator`` is the caller's CPU generator (shuffles follow the seed); ``where`` labels errors."""
    if isinstance(sources, PPOBatch):
        sources = [Source(sources, hp.minibatch_size)]
    sources = [s for s in sources if len(s.batch) > 0 and s.rows_per_minibatch > 0]
    if not sources:
        raise ValueError(f"PPO update got no transitions ({where or 'no data'})")
    if hp.bc_coef > 0 and any(s.batch.teacher_actions is None for s in sources):
        raise ValueError(
            f"PPO bc_coef={hp.bc_coef} needs the teacher's action for every row ({where or 'no labels'})"
        )
    primary, others = sources[0], sources[1:]  # every primary row is visited exactly once per epoch
    device = primary.batch.actions.device
    not_measured = torch.full((), float("nan"), device=device)  # loss_bc without teacher labels
    n_mb = max(1, math.ceil(len(primary.batch) / max(1, primary.rows_per_minibatch)))
    log = MinibatchLog(n_mb * hp.update_epochs, device)
    params = [p for p in network.parameters() if p.requires_grad]
    network.train()
    epochs_run = 0
    early_stopped = False
    cyclers = [_Cycler(len(s.batch), generator, device) for s in others]
    for epoch in range(hp.update_epochs):
        epoch_start = log.count
        perm = torch.randperm(len(primary.batch), generator=generator).to(device)
        rows0 = primary.rows_per_minibatch
        for i in range(n_mb):
            parts = [primary.batch.take(perm[i * rows0 : (i + 1) * rows0])]
            parts += [
                s.batch.take(c.next(s.rows_per_minibatch)) for s, c in zip(others, cyclers, strict=True)
            ]
            mb = PPOBatch.cat(parts)
            logits, values = network(mb.maps, mb.features, mb.action_mask)
            new_logp = log_prob_of(logits, mb.actions)
            entropy = masked_entropy(logits, mb.action_mask).mean()
            loss_pi, _, clip_frac = clipped_surrogate(
                new_logp, mb.old_log_probs, mb.advantages, hp.clip_param
            )
            loss_v = clipped_value_loss(values.float(), mb.old_values, mb.returns, hp.value_clip)
            loss = loss_pi + hp.value_loss_coef * loss_v - hp.entropy_coef * entropy
            if mb.teacher_actions is not None:
                loss_bc = teacher_cross_entropy(logits, mb.teacher_actions, mb.action_mask)
                if hp.bc_coef > 0:
                    loss = loss + hp.bc_coef * loss_bc
            else:
                loss_bc = not_measured
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if hp.max_grad_norm > 0:
                grad_norm = torch.nn.utils.clip_grad_norm_(params, hp.max_grad_norm)
            else:
                grad_norm = torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(p.grad) for p in params if p.grad is not None])
                )
            optimizer.step()
            with torch.no_grad():
                log.record(
                    loss_policy=loss_pi,
                    loss_value=loss_v,
                    loss_entropy=entropy,
                    loss_total=loss,
                    clip_fraction=clip_frac,
                    minibatch_adv_mean=mb.advantages.mean(),
                    minibatch_adv_std=mb.advantages.std(unbiased=False),
                    grad_norm=grad_norm,
                    kl_k1=kl_k1(mb.old_log_probs, new_logp),
                    kl_divergence=kl_k3(mb.old_log_probs, new_logp),
                    loss_bc=loss_bc,
                    nonfinite=(~torch.isfinite(loss) | ~torch.isfinite(grad_norm)).float(),
                )
        epochs_run += 1
        # The one host sync of this epoch: guard + early stop.
        rows = log.used()[epoch_start:]
        bad = rows[:, _NONFINITE]
        bad_count, first_bad, kl_epoch = torch.stack(
            [bad.sum(), torch.argmax(bad).float(), rows[:, _KL].mean()]
        ).tolist()
        if bad_count > 0:
            raise NonFiniteTrainingError(
                f"PPO loss or gradient became NaN/Inf ({where} epoch={epoch + 1} "
                f"minibatch={int(first_bad) + 1}); "
                "the last good checkpoint is kept. Lower the learning rate, check the rewards/observations, "
                "or keep max_grad_norm > 0."
            )
        if hp.target_kl is not None and kl_epoch > hp.target_kl:
            early_stopped = True
            break
    summary = log.summarise()
    summary["epochs_run"] = float(epochs_run)
    summary["early_stopped"] = float(early_stopped)
    summary["minibatches_per_epoch"] = float(n_mb)
    # rows seen per epoch: every primary row once, plus the blended rows
    summary["transitions"] = float(len(primary.batch) + n_mb * sum(s.rows_per_minibatch for s in others))
    return summary
