"""BC hyper-parameters and their valid ranges, checked when the strategy is built rather than mid-run."""

from __future__ import annotations

import math

TARGETS = ("teacher_actions", "actions")


class BCConfigError(ValueError):
    """A BC hyper-parameter outside its valid range."""


def check_hyperparameters(
    *,
    lr: float,
    batch_size: int,
    epochs: int,
    weight_decay: float,
    val_fraction: float,
    early_stopping_patience: int,
    target: str,
    value_coef: float,
    gamma: float,
) -> None:
    """Raise :class:`BCConfigError` naming the first value out of range."""
    if lr <= 0 or batch_size <= 0 or epochs <= 0 or weight_decay < 0:
        raise BCConfigError(
            f"strategy.lr, batch_size and epochs must be > 0 and weight_decay >= 0 "
            f"(got lr={lr}, batch_size={batch_size}, epochs={epochs}, weight_decay={weight_decay})"
        )
    if not 0.0 <= val_fraction < 1.0:
        raise BCConfigError(f"strategy.val_fraction must be in [0, 1), got {val_fraction}")
    if target not in TARGETS:
        raise BCConfigError(f"strategy.target must be one of {list(TARGETS)}, got {target!r}")
    if early_stopping_patience < 0:
        raise BCConfigError(f"strategy.early_stopping_patience must be >= 0, got {early_stopping_patience}")
    if not (math.isfinite(value_coef) and value_coef >= 0):
        raise BCConfigError(f"strategy.value_coef must be >= 0 (0 = policy head only), got {value_coef}")
    if not 0.0 <= gamma <= 1.0:
        raise BCConfigError(f"strategy.gamma must be in [0, 1], got {gamma}")
