"""BC's data, split by agent and moved to the device once, and one epoch over it with no host sync
per minibatch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from townlet.config.schema.strategy_bc import BCConfigError

if TYPE_CHECKING:
    import logging

    import torch

    from townlet.replay import ReplayData
    from townlet.strategies.context import TrainingContext


class BCTensors(NamedTuple):
    """One split, stacked once as device tensors (maps stay uint8 to save memory and bandwidth)."""

    maps: torch.Tensor
    features: torch.Tensor
    mask: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return int(self.targets.shape[0])


def resolve_replay(context: TrainingContext) -> ReplayData:
    """The training data: the replay service builds or loads the dataset the config names."""
    service = getattr(context.services, "replay", None)
    if service is None:
        raise BCConfigError("strategy=bc needs the replay dataset service (TrainingServices.replay is None)")
    data = service.resolve(context.dataset, context.world, context.data_dir)
    if not hasattr(data, "split_by_agent"):  # a StreamingDataset: BC stacks everything on the device anyway
        context.log.info("bc: dataset.streaming=true is loaded whole (BC keeps the data as device tensors)")
        data = data.load()
    return data


def stage_splits(
    train_data: ReplayData, val_data: ReplayData | None, target: str, device: str, log: logging.Logger
) -> tuple[BCTensors, BCTensors | None]:
    """Both splits as device tensors; refuses an empty training split."""
    train, n_bad = stack_tensors(train_data, target, device)
    val = stack_tensors(val_data, target, device)[0] if val_data is not None else None
    if n_bad:
        log.warning("bc: %d training rows have a teacher action the mask forbids; allowed them", n_bad)
    if len(train) == 0:
        raise BCConfigError(
            "the BC training split is empty; capture more ticks or lower strategy.val_fraction"
        )
    return train, val


def stack_tensors(data: ReplayData, target: str, device: str) -> tuple[BCTensors, int]:
    """Rows on ``device``, and how many targets the mask forbade (allowed there, so one bad label
    cannot blow the loss up)."""
    import torch

    targets = np.ascontiguousarray(data.flat(target), dtype=np.int64)
    mask = np.ascontiguousarray(data.flat("action_mask"), dtype=bool)
    rows = np.arange(targets.shape[0])
    forbidden = ~mask[rows, targets]
    n_forbidden = int(forbidden.sum())
    if n_forbidden:
        mask = mask.copy()
        mask[rows[forbidden], targets[forbidden]] = True
    dev = torch.device(device)
    return (
        BCTensors(
            maps=torch.from_numpy(np.ascontiguousarray(data.flat("maps"))).to(dev),
            features=torch.from_numpy(np.ascontiguousarray(data.flat("features"), dtype=np.float32)).to(dev),
            mask=torch.from_numpy(mask).to(dev),
            targets=torch.from_numpy(targets).to(dev),
        ),
        n_forbidden,
    )


def map_channel_max(t: BCTensors) -> torch.Tensor:
    """Per-channel maximum of the training maps (the network scales each channel to [0, 1])."""
    return t.maps.amax(dim=(0, 2, 3)).float()


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
    """One shuffled pass: (imitation loss sum, correct count) as device tensors. With ``returns`` and
    ``value_coef > 0`` the value head also fits ``0.5 * (V - G)^2`` (into ``value_loss_sum``); unless
    ``value_trunk`` only ``value_head`` sees it, so the policy trains as without the warm-up."""
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
