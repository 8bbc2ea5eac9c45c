"""The primary config schema: ``conf/train.yaml`` is validated against ``TrainConfig``."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from omegaconf import MISSING

from townlet.config.schema.dataset import DatasetConfig
from townlet.config.schema.device import DeviceConfig
from townlet.config.schema.evaluation import EvaluationConfig
from townlet.config.schema.logger import LoggerConfig
from townlet.config.schema.model import ModelConfig
from townlet.config.schema.paths import PathsConfig
from townlet.world.config import WorldConfig


class ObjectiveMode(StrEnum):
    max = "max"
    min = "min"


@dataclass
class ServicesConfig:
    """Torch-free services handed to the strategy (see ``build_default_services``)."""

    _target_: str = "townlet.strategies.services.build_default_services"
    data_dir: str = "${paths.data_dir}"
    state_dir: str = "${paths.state_dir}"
    # swap a service class: ``services.implementations.replay=my.pkg.Replay``; keys are rollout, replay,
    # evaluation, promotion; each name must pass the ``_target_`` allow-list (TOWNLET_ALLOWED_TARGETS)
    implementations: dict[str, str] = field(default_factory=dict)


@dataclass
class StopConfig:
    """Ends training early, where a loop stops cleanly (after a checkpoint), so the run still evaluates its
    policy and ends ``completed`` with ``stop_reason``."""

    max_wall_sec: float | None = None  # training time, counted from the strategy's start (all stages)
    # a periodic evaluation's mean return (evaluation.every) at or above this; BC has none, so BC ignores it
    target_return: float | None = None

    def __post_init__(self) -> None:
        if self.max_wall_sec is not None and self.max_wall_sec <= 0:
            raise ValueError(f"stop.max_wall_sec must be > 0 or null, got {self.max_wall_sec}")


@dataclass
class TrainConfig:
    seed: int = 0
    objective: str = "evaluation.policy.mean_return"
    objective_mode: ObjectiveMode = ObjectiveMode.max
    resume: bool = False
    init_from: str | None = None
    run_name: str = "train"
    tags: list[str] = field(default_factory=list)
    strategy: Any = MISSING
    world: WorldConfig = field(default_factory=WorldConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    stop: StopConfig = field(default_factory=StopConfig)
    services: ServicesConfig = field(default_factory=ServicesConfig)
