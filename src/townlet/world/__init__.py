"""The torch-free vectorised town: configs, rules, observations, the oracle and the PettingZoo face."""

from townlet.world.config import NEED_NAMES, OBJECT_KINDS, WorldConfig, WorldConfigError
from townlet.world.features import FEATURE_INDEX, FEATURE_NAMES, MAP_CHANNELS, build_spec
from townlet.world.loader import available_worlds, load_world_config, to_world_config
from townlet.world.spec import (
    ACTION_NAMES,
    EVENT_COUNTERS,
    NUM_ACTIONS,
    Action,
    Observation,
    ObservationSpec,
    StepResult,
)
from townlet.world.vectown import ActionError, VecTown, make_town

__all__ = [
    "ACTION_NAMES",
    "EVENT_COUNTERS",
    "FEATURE_INDEX",
    "FEATURE_NAMES",
    "MAP_CHANNELS",
    "NEED_NAMES",
    "NUM_ACTIONS",
    "OBJECT_KINDS",
    "Action",
    "ActionError",
    "Observation",
    "ObservationSpec",
    "StepResult",
    "VecTown",
    "WorldConfig",
    "WorldConfigError",
    "available_worlds",
    "build_spec",
    "load_world_config",
    "make_town",
    "to_world_config",
]
