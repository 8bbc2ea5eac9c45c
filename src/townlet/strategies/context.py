"""What a strategy receives: everything it needs for one run, built by the façade.

Plain dataclasses, torch-free and Hydra-free: configs arrive as typed objects (``OmegaConf.to_object``
of the schemas), so strategies and services are easy to call from tests without composing configs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from townlet.config.schema.evaluation import EvaluationConfig

if TYPE_CHECKING:
    from townlet.config.schema.dataset import DatasetConfig
    from townlet.config.schema.device import DeviceConfig
    from townlet.config.schema.model import ModelConfig
    from townlet.runs.metrics import MetricsWriter
    from townlet.runs.rundir import RunDir
    from townlet.strategies.services import TrainingServices
    from townlet.world.config import WorldConfig


@dataclass
class TrainingContext:
    """One run's inputs. ``dataset``/``model``/``device`` are the typed schema objects.

    Plain mappings (``model={"kind": "conv", ...}``) and device strings (``"cpu"``) are accepted too,
    as the network builder and ``resolve_device`` read both; ``dataset=None`` is for strategies that
    read no dataset (PPO in rollout mode).
    """

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
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def data_dir(self) -> str | None:
        """Where datasets are cached (``paths.data_dir``), stored in ``metadata`` by the façade."""
        value = self.metadata.get("data_dir")
        return None if value is None else str(value)
