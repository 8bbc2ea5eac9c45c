"""One training epoch: a seeded shuffle of the device tensors, then Adam steps on minibatches.

The loss and accuracy stay device tensors until the epoch ends, so the minibatch loop never waits
for the host.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from townlet.strategies.bc.data import BCTensors


def epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    """Independent permutation stream per (seed, epoch), so a resumed run replays exactly the same
    batches without saving any generator state."""
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed((int(seed) * 1_000_003 + int(epoch) * 7_919 + 0xB0C) & 0x7FFF_FFFF_FFFF_FFFF)
    return gen


def train_epoch(
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    data: BCTensors,
    batch_size: int,
    generator: torch.Generator,
    *,
    returns: torch.Tensor | None = None,
    value_coef: float = 0.0,
    value_loss_sum: torch.Tensor | None = None,
    value_trunk: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One shuffled pass. Returns (loss sum, correct count) as device tensors — no host sync per step.

    With ``returns`` [M] and ``value_coef > 0`` the value head is fitted as well: the loss gains
    ``value_coef * 0.5 * (V - G)^2`` (PPO's unclipped value loss), and ``value_loss_sum`` (a device
    scalar, if given) accumulates the row-weighted 0.5 * MSE in place. The cross-entropy reported
    in the loss sum stays the imitation loss alone. Unless ``value_trunk``, the value loss reaches
    only the network's ``value_head`` (the shared trunk learns from imitation alone), so the
    policy's training is exactly what it would be without the warm-up.
    """
    import torch
    import torch.nn.functional as F

    fit_value = returns is not None and value_coef > 0
    head = getattr(net, "value_head", None)
    head_params = list(head.parameters()) if fit_value and not value_trunk and head is not None else []

    n = len(data)
    perm = torch.randperm(n, generator=generator, device=data.targets.device)
    loss_sum = torch.zeros((), device=data.targets.device)
    correct = torch.zeros((), dtype=torch.int64, device=data.targets.device)
    net.train()
    for start in range(0, n, batch_size):
        idx = perm[start : start + batch_size]
        y = data.targets[idx]
        logits, value = net(data.maps[idx], data.features[idx], data.mask[idx])
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        if fit_value:
            assert returns is not None
            loss_v = 0.5 * (value.float() - returns[idx]).pow(2).mean()
            if head_params:  # head-only: its gradient, computed apart, never reaches the trunk
                loss.backward(retain_graph=True)
                grads = torch.autograd.grad(value_coef * loss_v, head_params)
                for p, g in zip(head_params, grads, strict=True):
                    p.grad = g
            else:
                (loss + value_coef * loss_v).backward()
            if value_loss_sum is not None:
                value_loss_sum += loss_v.detach() * y.shape[0]
        else:
            loss.backward()
        opt.step()
        with torch.no_grad():
            loss_sum += loss.detach() * y.shape[0]
            correct += (logits.argmax(dim=1) == y).sum()
    return loss_sum, correct
