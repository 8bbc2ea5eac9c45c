"""Typed world configuration (a Hydra structured-config schema; `conf/world/*.yaml` fill it in).

Owned by the world module: extend fields here, and keep every field a primitive, list or nested
dataclass so OmegaConf can validate overrides such as ``world.num_agents=abc``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ObjectConfig:
    kind: str = "fridge"  # fridge | stove | shower | bed | job_site
    x: int = 0
    y: int = 0


@dataclass
class WorldConfig:
    name: str = "default"
    num_envs: int = 16
    num_agents: int = 4
    width: int = 16
    height: int = 16
    episode_length: int = 400
    window: int = 11
    objects: list[ObjectConfig] = field(default_factory=list)
