"""What an epoch measures: held-out loss, accuracy, per-action recall and the confusion matrix."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from townlet.strategies.bc.progress import BestEpoch, EpochStats

if TYPE_CHECKING:
    import torch

    from townlet.strategies.bc.data import BCTensors


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
