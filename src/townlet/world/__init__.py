"""The torch-free vectorised town; names resolve lazily (PEP 562), so the schemas' import of
``townlet.world.config`` does not load numpy and the simulation."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_MODULES: dict[str, tuple[str, ...]] = {
    "townlet.world.config": ("NEED_NAMES", "OBJECT_KINDS", "WorldConfig", "WorldConfigError"),
    "townlet.world.features": ("FEATURE_INDEX", "FEATURE_NAMES", "MAP_CHANNELS", "build_spec"),
    "townlet.world.loader": ("available_worlds", "load_world_config", "to_world_config"),
    "townlet.world.spec": (
        "ACTION_NAMES", "EVENT_COUNTERS", "NUM_ACTIONS",
        "Action", "Observation", "ObservationSpec", "StepResult",
    ),
    "townlet.world.vectown": ("ActionError", "VecTown", "make_town"),
}  # fmt: skip
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "ACTION_NAMES", "EVENT_COUNTERS", "FEATURE_INDEX", "FEATURE_NAMES", "MAP_CHANNELS", "NEED_NAMES",
    "NUM_ACTIONS", "OBJECT_KINDS", "Action", "ActionError", "Observation", "ObservationSpec", "StepResult",
    "VecTown", "WorldConfig", "WorldConfigError", "available_worlds", "build_spec", "load_world_config",
    "make_town", "to_world_config",
]  # fmt: skip

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'townlet.world' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
