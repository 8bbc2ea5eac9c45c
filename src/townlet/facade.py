"""The training façade: strategy + services + run settings → one validated result DTO.

Everything Hydra-specific stays in ``townlet.cli.train``, everything algorithmic in the strategies;
the façade resolves the device, seeds, assembles the ``TrainingContext``, calls ``strategy.run`` and
checks what comes back. Torch-free at import time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields
from typing import Any

from townlet.config.schema.device import resolve_threads
from townlet.config.schema.evaluation import EvaluationConfig
from townlet.config.schema.top import StopConfig
from townlet.dto import RESULT_TYPES, ResultDTO
from townlet.runs.device import resolve_device
from townlet.runs.metrics import MetricsWriter, NullMetricsWriter
from townlet.runs.rundir import RunDir
from townlet.runs.seeding import seed_everything
from townlet.strategies.base import Strategy
from townlet.strategies.context import StopBudget, TrainingContext
from townlet.strategies.services import TrainingServices
from townlet.torch_guard import require_torch, torch_available


class StrategyContractError(TypeError):
    """A strategy object does not follow the ``Strategy`` protocol."""


@dataclass
class RunSettings:
    """What one run needs besides the strategy and services (typed config objects)."""

    seed: int
    world: Any
    dataset: Any
    model: Any
    device: Any
    run_dir: RunDir
    metrics: MetricsWriter = field(default_factory=NullMetricsWriter)
    init_from: str | None = None
    resume: bool = False
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    stop: StopConfig = field(default_factory=StopConfig)
    metadata: dict[str, Any] = field(default_factory=dict)


class PolicyTrainingOrchestrator:
    """Runs one strategy once. Construct with the built strategy and services, then ``run``."""

    def __init__(
        self, strategy: Strategy, services: TrainingServices | None = None, log: logging.Logger | None = None
    ) -> None:
        if not isinstance(strategy, Strategy):
            raise StrategyContractError(
                f"{type(strategy).__qualname__} is not a Strategy: it needs class attributes "
                "'name' and 'requires_torch' and a run(context) method"
            )
        self.strategy = strategy
        self.services = services or TrainingServices()
        self.log = log or logging.getLogger("townlet.train")

    def build_context(self, settings: RunSettings) -> TrainingContext:
        """Resolve the device, seed everything and assemble the strategy's context."""
        needs_torch = bool(self.strategy.requires_torch)
        if needs_torch:
            require_torch(f"the '{self.strategy.name}' strategy")
        device_str = resolve_device(settings.device)
        report = seed_everything(
            settings.seed,
            deterministic=bool(getattr(settings.device, "deterministic", True)),
            num_threads=resolve_threads(getattr(settings.device, "num_threads", 1)),
            with_torch=needs_torch and torch_available(),
        )
        self.log.info(
            "strategy=%s device=%s seed=%d threads=%d deterministic=%s",
            self.strategy.name,
            device_str,
            report.seed,
            report.num_threads,
            report.deterministic,
        )
        given = {f.name: getattr(settings, f.name) for f in fields(settings)}
        given["metadata"] = dict(settings.metadata)
        given["stop"] = StopBudget(settings.stop.max_wall_sec, settings.stop.target_return)
        return TrainingContext(**given, services=self.services, log=self.log, device_str=device_str)

    def run(self, settings: RunSettings) -> ResultDTO:
        """Run the strategy and return its DTO with ``duration_sec`` filled in."""
        context = self.build_context(settings)
        started = time.perf_counter()
        result = self.strategy.run(context)
        elapsed = time.perf_counter() - started
        if not isinstance(result, RESULT_TYPES):
            raise StrategyContractError(
                f"strategy '{self.strategy.name}' returned {type(result).__name__}; "
                "run() must return a townlet.dto training result"
            )
        if result.duration_sec is None:
            result = result.model_copy(update={"duration_sec": elapsed})
        if context.stop.reason is not None:
            self.log.info(
                "strategy=%s stopped early: %s (stop settings)", self.strategy.name, context.stop.reason
            )
            result = result.model_copy(update={"stop_reason": context.stop.reason})
        self.log.info("strategy=%s finished in %.2fs", self.strategy.name, elapsed)
        return result
