"""Test-only strategy: exercises the façade and run directory without training anything.

It lives under tests/ (never shipped) and is reached through ``TOWNLET_ALLOWED_TARGETS=echo_strategy``
and the ``tests/_support/conf`` search-path overlay (``strategy=echo``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from townlet.config.plan import RunPlan
from townlet.dto import BCTrainingResultDTO
from townlet.strategies.context import TrainingContext


class EchoFailure(ValueError):
    """Raised on request to exercise the failure path."""


class EchoStrategy:
    """Writes a few metrics and a checkpoint marker, returns a BC-shaped DTO derived from the seed."""

    name: ClassVar[str] = "echo"
    requires_torch: ClassVar[bool] = False

    def __init__(self, epochs: int = 3, lr: float = 1e-3, fail: bool = False) -> None:
        self.epochs = epochs
        self.lr = lr
        self.fail = fail

    def plan(self, world: Any) -> RunPlan:
        return RunPlan(units=self.epochs, unit="epoch")

    def run(self, context: TrainingContext) -> BCTrainingResultDTO:
        if self.fail:
            raise EchoFailure("echo strategy asked to fail (strategy.fail=true)")
        for epoch in range(1, self.epochs + 1):
            context.metrics.log({"epoch": epoch, "train_loss": 1.0 / epoch, "nan_metric": float("nan")})
        (context.run_dir.checkpoints / "last.marker").write_text(str(context.seed), encoding="utf-8")
        accuracy = (context.seed % 10) / 10
        return BCTrainingResultDTO(
            manifest=f"echo:{context.world.name}",
            accuracy=accuracy,
            loss=1.0 / self.epochs,
            learning_rate=self.lr,
            batch_size=1,
            epochs=self.epochs,
            val_loss=float("nan"),
            seed=context.seed,
            device=context.device_str,
        )
