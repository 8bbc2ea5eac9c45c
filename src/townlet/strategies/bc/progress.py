"""What a BC epoch measures and where the loop stands (best epoch, stall count); both are checkpointed
so a resumed run stops on the same epoch as an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from townlet.nets.checkpoints import Checkpoint
    from townlet.strategies.bc.data import BCTensors


@dataclass
class EpochStats:
    """Per-epoch numbers for one metrics line (val: None without a split)."""

    epoch: int
    train_loss: float
    train_accuracy: float
    samples_per_sec: float
    epoch_seconds: float = 0.0
    val_loss: float | None = None
    val_accuracy: float | None = None
    per_action_accuracy: dict[str, float | None] = field(default_factory=dict)
    confusion: list[list[int]] | None = None
    train_value_loss: float | None = None
    val_value_loss: float | None = None
    value_explained_variance: float | None = None


LOSS_TIE_BREAK = 1e-3  # at equal val accuracy, a val loss lower by this fraction still counts as progress


@dataclass
class BestEpoch:
    """Best validation score: accuracy first, then a clearly lower loss (accuracy saturates on easy data)."""

    epoch: int = 0
    val_accuracy: float | None = None
    val_loss: float | None = None

    def update(self, s: EpochStats, min_delta: float) -> bool:
        if s.val_accuracy is None:  # no validation split: the latest epoch is the best we know
            self.epoch, self.val_accuracy, self.val_loss = s.epoch, None, None
            return True
        better = (
            self.val_accuracy is None
            or s.val_accuracy > self.val_accuracy + min_delta
            or (
                math.isclose(s.val_accuracy, self.val_accuracy)
                and s.val_loss is not None
                and self.val_loss is not None
                and s.val_loss < self.val_loss * (1.0 - LOSS_TIE_BREAK)
            )
        )
        if better:
            self.epoch, self.val_accuracy, self.val_loss = s.epoch, s.val_accuracy, s.val_loss
        return better


@dataclass
class Progress:
    """The last finished epoch, the best one and the epochs since the best (``stale``)."""

    epoch: int = 0
    best: BestEpoch = field(default_factory=BestEpoch)
    stale: int = 0

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> Progress:
        return cls(
            ckpt.epoch,
            BestEpoch(**ckpt.extra.get("best", {})),
            int(ckpt.extra.get("stale_epochs", 0)),
        )

    def record(self, s: EpochStats, min_delta: float) -> bool:
        """Count one finished epoch; True when it is the new best."""
        improved = self.best.update(s, min_delta)
        self.epoch = s.epoch
        self.stale = 0 if improved else self.stale + 1
        return improved

    def to_extra(self) -> dict[str, Any]:
        """The checkpoint's ``extra`` entries that :meth:`from_checkpoint` reads back."""
        return {"best": asdict(self.best), "stale_epochs": self.stale}


def evaluate_tensors(
    net: torch.nn.Module, data: BCTensors, num_actions: int, batch_size: int = 4096
) -> tuple[float, float, np.ndarray]:
    """Mean loss, accuracy and the [true, predicted] confusion matrix on a held-out split."""
    import torch
    import torch.nn.functional as F

    dev = data.targets.device
    loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
    preds = []
    net.eval()
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            sl = slice(start, start + batch_size)
            logits, _ = net(data.maps[sl], data.features[sl], data.mask[sl])
            loss_sum += F.cross_entropy(logits, data.targets[sl], reduction="sum").double()
            preds.append(logits.argmax(dim=1))
    # confusion counted on the host: CUDA bincount is non-deterministic and refused in deterministic mode
    pred = torch.cat(preds).cpu().numpy() if preds else np.zeros(0, np.int64)
    truth = data.targets.cpu().numpy()
    conf = np.bincount(truth * num_actions + pred, minlength=num_actions**2).reshape(num_actions, num_actions)
    n = max(len(data), 1)
    return float(loss_sum.item()) / n, float(np.trace(conf)) / n, conf


def per_action_accuracy(confusion: np.ndarray, action_names: tuple[str, ...]) -> dict[str, float | None]:
    """Recall per true action (None where the action never occurs in the split)."""
    totals = confusion.sum(axis=1)
    return {
        name: (float(confusion[i, i] / totals[i]) if totals[i] else None)
        for i, name in enumerate(action_names)
    }


def epoch_record(s: EpochStats, best: BestEpoch, lr: float, value_coef: float) -> dict[str, Any]:
    """The metrics line of one epoch (``value_coef`` is 0 when the value head is not trained)."""
    return {
        "strategy": "bc",
        "epoch": s.epoch,
        "train_loss": s.train_loss,
        "train_accuracy": s.train_accuracy,
        "val_loss": s.val_loss,
        "val_accuracy": s.val_accuracy,
        "best_epoch": best.epoch,
        "best_val_accuracy": best.val_accuracy,
        "per_action_accuracy": s.per_action_accuracy,
        "confusion_matrix": s.confusion,
        "samples_per_sec": s.samples_per_sec,
        "epoch_duration_sec": s.epoch_seconds,
        "lr": lr,
        "value_coef": value_coef,
        "train_value_loss": s.train_value_loss,
        "val_value_loss": s.val_value_loss,
        "value_explained_variance": s.value_explained_variance,
    }
