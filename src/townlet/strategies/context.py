"""What a strategy receives for one run: torch- and Hydra-free dataclasses, easy to build in tests."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from townlet.config.schema.evaluation import EvaluationConfig
from townlet.dto.metrics import EVAL_RETURN_KEY

if TYPE_CHECKING:
    from townlet.config.schema.dataset import DatasetConfig
    from townlet.config.schema.device import DeviceConfig
    from townlet.config.schema.model import ModelConfig
    from townlet.runs.metrics import MetricsWriter
    from townlet.runs.rundir import RunDir
    from townlet.strategies.services import TrainingServices
    from townlet.world.config import WorldConfig


@dataclass
class StopBudget:
    """The run's ``stop`` settings and the clock they count from; one object for every stage of a
    composite run, so its wall-clock limit spans them all. ``reason`` is set by the check that ends
    training (``max_wall_sec`` or ``target_return``) and stays set."""

    max_wall_sec: float | None = None
    target_return: float | None = None
    started: float = field(default_factory=time.monotonic)
    reason: str | None = None

    def reached(self, record: Mapping[str, Any]) -> bool:
        """Whether training ends after the step that logged ``record`` (its ``eval_return_mean``, if any)."""
        evaluated = record.get(EVAL_RETURN_KEY)
        if self.reason is None and self.target_return is not None and evaluated is not None:
            self.reason = "target_return" if float(evaluated) >= self.target_return else None
        if self.reason is None and self.max_wall_sec is not None:
            self.reason = "max_wall_sec" if time.monotonic() - self.started >= self.max_wall_sec else None
        return self.reason is not None


@dataclass
class TrainingContext:
    """One run's inputs: typed schema objects (plain mappings and device strings work too);
    ``dataset=None`` for strategies that read none."""

    seed: int
    world: WorldConfig
    dataset: DatasetConfig | Mapping[str, Any] | None
    model: ModelConfig | Mapping[str, Any]
    device: DeviceConfig | str
    run_dir: RunDir
    services: TrainingServices
    metrics: MetricsWriter
    init_from: str | None = None
    resume: bool = False
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("townlet.train"))
    device_str: str = "cpu"
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    stop: StopBudget = field(default_factory=StopBudget)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def data_dir(self) -> str | None:
        """Where datasets are cached (``paths.data_dir``), stored in ``metadata`` by the façade."""
        value = self.metadata.get("data_dir")
        return None if value is None else str(value)
