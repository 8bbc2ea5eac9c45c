"""One PPO update: K epochs of shuffled minibatches over device-resident tensors.

The loop reads top to bottom like a textbook PPO step. What it deliberately avoids (each
measured as a cost): re-uploading data every epoch, ``torch.distributions``, and any host sync inside the
minibatch loop. Per-minibatch metrics go into a device buffer (:class:`MinibatchLog`); the host reads
it once per epoch -- that one read also serves the NaN/Inf guard and the ``target_kl`` early stop.

Mixed data: ``ppo_update`` takes several sources, each contributing a fixed number of rows to every
minibatch, so rollout and replay transitions are blended inside each gradient step rather than in
alternating updates.

Kickstarting: when the batch carries the scripted teacher's action for every row, the cross-entropy
to it (``loss_bc``) is always measured, and ``bc_coef > 0`` adds it to the loss: it keeps a
policy cloned from the teacher close to it while PPO improves it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
from torch import nn

from townlet.algorithms.losses import (
    clipped_surrogate,
    clipped_value_loss,
    kl_k1,
    kl_k3,
    log_prob_of,
    masked_entropy,
    teacher_cross_entropy,
)
from townlet.algorithms.stats import MINIBATCH_FIELDS, MinibatchLog

__all__ = ["NonFiniteTrainingError", "PPOBatch", "PPOHyperParams", "Source", "ppo_update"]


_NONFINITE = MINIBATCH_FIELDS.index("nonfinite")
_KL = MINIBATCH_FIELDS.index("kl_divergence")  # the k3 estimator


class NonFiniteTrainingError(RuntimeError):
    """A NaN/Inf reached the update; the message names where, so the data or settings can be fixed."""


@dataclass(frozen=True)
class PPOHyperParams:
    """The knobs the update loop reads. No defaults here: their one home is the strategy schema,
    and ``PPOSettings.hyper_params`` builds this from it."""

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


def _minibatch_plan(sources: Sequence[Source]) -> int:
    """Minibatches per epoch: every row of the first (primary) source is visited exactly once."""
    primary = sources[0]
    return max(1, math.ceil(len(primary.batch) / max(1, primary.rows_per_minibatch)))


def ppo_update(
    network: nn.Module,
    optimizer: torch.optim.Optimizer,
    sources: Sequence[Source] | PPOBatch,
    hp: PPOHyperParams,
    generator: torch.Generator,
    *,
    where: str = "",
) -> dict[str, float]:
    """Run ``hp.update_epochs`` epochs (fewer if ``target_kl`` trips) and return summary metrics.

    The summary's metrics carry their metrics-line names (see ``MinibatchLog.summarise``), plus
    ``epochs_run``, ``early_stopped`` (1.0 when ``target_kl`` cut the update short),
    ``minibatches_per_epoch`` and ``transitions`` (rows seen per epoch).

    ``generator`` is a CPU generator owned by the caller, so shuffling is reproducible from the seed.
    ``where`` (e.g. "dataset=rollout iteration=3") prefixes error messages.
    """
    if isinstance(sources, PPOBatch):
        sources = [Source(sources, hp.minibatch_size)]
    sources = [s for s in sources if len(s.batch) > 0 and s.rows_per_minibatch > 0]
    if not sources:
        raise ValueError(f"PPO update got no transitions ({where or 'no data'})")
    if hp.bc_coef > 0 and any(s.batch.teacher_actions is None for s in sources):
        raise ValueError(
            f"PPO bc_coef={hp.bc_coef} needs the teacher's action for every row ({where or 'no labels'})"
        )
    device = sources[0].batch.actions.device
    not_measured = torch.full((), float("nan"), device=device)  # loss_bc without teacher labels
    n_mb = _minibatch_plan(sources)
    log = MinibatchLog(n_mb * hp.update_epochs, device)
    params = [p for p in network.parameters() if p.requires_grad]
    network.train()
    epochs_run = 0
    early_stopped = False
    cyclers = [_Cycler(len(s.batch), generator, device) for s in sources[1:]]
    for epoch in range(hp.update_epochs):
        epoch_start = log.count
        perm = torch.randperm(len(sources[0].batch), generator=generator).to(device)
        rows0 = sources[0].rows_per_minibatch
        for i in range(n_mb):
            parts = [sources[0].batch.take(perm[i * rows0 : (i + 1) * rows0])]
            parts += [
                s.batch.take(c.next(s.rows_per_minibatch)) for s, c in zip(sources[1:], cyclers, strict=True)
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
                old_logp = mb.old_log_probs
                nonfinite = (~torch.isfinite(loss)) | (~torch.isfinite(grad_norm))
                log.record(
                    loss_policy=loss_pi,
                    loss_value=loss_v,
                    loss_entropy=entropy,
                    loss_total=loss,
                    clip_fraction=clip_frac,
                    minibatch_adv_mean=mb.advantages.mean(),
                    minibatch_adv_std=mb.advantages.std(unbiased=False),
                    grad_norm=grad_norm,
                    kl_k1=kl_k1(old_logp, new_logp),
                    kl_divergence=kl_k3(old_logp, new_logp),
                    loss_bc=loss_bc,
                    nonfinite=nonfinite.float(),
                )
        epochs_run += 1
        # The one host sync of this epoch: guard + early stop.
        rows = log.used()[epoch_start:]
        bad_count, first_bad, kl_epoch = torch.stack(
            [
                rows[:, _NONFINITE].sum(),
                torch.argmax(rows[:, _NONFINITE]).float(),
                rows[:, _KL].mean(),
            ]
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
    # Rows seen per epoch: every primary row once, plus the blended rows.
    summary["transitions"] = float(
        len(sources[0].batch) + n_mb * sum(s.rows_per_minibatch for s in sources[1:])
    )
    return summary
