"""Where the epoch loop stands: each epoch's numbers, the best epoch so far and how long validation
has stalled.

Both go into every checkpoint, so a resumed run keeps the same best and stops early on the same
epoch as an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from townlet.nets.checkpoints import Checkpoint


@dataclass
class EpochStats:
    """Per-epoch numbers, turned into one metrics line.

    The train loss and accuracy are running means over the epoch, each batch measured before its
    optimiser step; the validation fields stay None without a validation split.
    """

    epoch: int
    train_loss: float
    train_accuracy: float
    samples_per_sec: float
    train_seconds: float
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
    """Best validation score so far.

    Accuracy first (a gain above ``min_delta``); at equal accuracy a clearly lower loss also counts,
    because on easy data accuracy saturates at 1.0 long before the network is confident.
    """

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

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "val_accuracy": self.val_accuracy, "val_loss": self.val_loss}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BestEpoch:
        return cls(int(d.get("epoch", 0)), d.get("val_accuracy"), d.get("val_loss"))


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
            BestEpoch.from_dict(ckpt.extra.get("best", {})),
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
        return {"best": self.best.to_dict(), "stale_epochs": self.stale}
