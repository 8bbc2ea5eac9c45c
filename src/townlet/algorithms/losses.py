"""PPO loss terms as pure tensor functions (no distributions objects, no host syncs).

Each returns tensors that stay on the device; callers decide when (once per epoch) to read them.
Logits arrive already masked by the network (disallowed actions at a large negative value), so the
functions here only have to make sure masked entries contribute exactly zero.
"""

from __future__ import annotations

import torch

__all__ = [
    "clipped_surrogate",
    "clipped_value_loss",
    "kl_k1",
    "kl_k3",
    "log_prob_of",
    "masked_entropy",
    "teacher_cross_entropy",
]


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
    """Mean -log pi(teacher action | s): the kickstarting / distillation term pulling PPO towards the teacher.

    Rows whose teacher action the mask forbids are left out (their masked logit would give a huge,
    meaningless loss); with no valid row the result is 0, without a host sync either way.
    """
    logp = log_prob_of(logits, teacher_actions)
    valid = torch.isfinite(logp)
    if mask is not None:
        valid = valid & mask.bool().gather(-1, teacher_actions.long().unsqueeze(-1)).squeeze(-1)
    ce = torch.where(valid, -logp, torch.zeros_like(logp))
    return ce.sum() / valid.sum().clamp_min(1)


def clipped_surrogate(
    new_log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor, clip: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO policy loss -mean(min(r A, clip(r, 1-eps, 1+eps) A)); also the ratios and the clip fraction.

    The clip fraction counts rows whose ratio left [1-eps, 1+eps] .
    """
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
    """Low-variance estimator E_old[(r - 1) - log r], r = p_new / p_old; unbiased and never negative.

    This is what ``kl_divergence`` reports and what ``target_kl`` early stopping compares against.
    """
    log_ratio = new_log_probs - old_log_probs
    return (log_ratio.exp() - 1.0 - log_ratio).mean()
