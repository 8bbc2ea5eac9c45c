"""Behaviour cloning (``strategy=bc``); :mod:`.run` holds the run, the other modules its parts.

``townlet.strategies.bc.BCStrategy`` is the Hydra ``_target_`` in configs and saved run snapshots,
so the public names stay importable from the package itself.
"""

from townlet.config.schema.strategy_bc import TARGETS, BCConfigError
from townlet.strategies.bc.data import BCTensors, map_channel_max, resolve_replay, stack_tensors
from townlet.strategies.bc.metrics import evaluate_tensors, per_action_accuracy
from townlet.strategies.bc.progress import LOSS_TIE_BREAK, EpochStats
from townlet.strategies.bc.run import BCStrategy
from townlet.strategies.bc.train import epoch_generator, train_epoch
from townlet.strategies.bc.value import (
    ValueTargets,
    current_returns,
    evaluate_values,
    init_value_bias,
    value_targets,
)

__all__ = [
    "LOSS_TIE_BREAK",
    "TARGETS",
    "BCConfigError",
    "BCStrategy",
    "BCTensors",
    "EpochStats",
    "ValueTargets",
    "current_returns",
    "epoch_generator",
    "evaluate_tensors",
    "evaluate_values",
    "init_value_bias",
    "map_channel_max",
    "per_action_accuracy",
    "resolve_replay",
    "stack_tensors",
    "train_epoch",
    "value_targets",
]
