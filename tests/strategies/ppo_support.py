"""Shared builders for the PPO strategy tests: a replay stand-in and a TrainingContext factory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from townlet.config.schema.evaluation import EvaluationConfig
from townlet.replay import ReplayData, StreamingDataset
from townlet.rollout.collect import RolloutCaptureService
from townlet.rollout.datasets import ReplayDatasetService
from townlet.runs.metrics import MetricsWriter
from townlet.runs.rundir import RunDir
from townlet.strategies.context import TrainingContext
from townlet.strategies.services import TrainingServices


class FixedReplay(ReplayDatasetService):
    """Stands in for ReplayDatasetService: always returns the given data (in memory or streamed)."""

    def __init__(self, data: ReplayData | StreamingDataset) -> None:
        super().__init__()
        self.data = data

    def resolve(
        self, dataset_cfg: Any, world_cfg: Any, data_dir: Any = None
    ) -> ReplayData | StreamingDataset:
        return self.data


def ppo_context(
    run_dir: Path,
    *,
    world: Any,
    model: dict[str, Any],
    replay: ReplayData | StreamingDataset | None = None,
    rollout: Any = None,
    evaluation_service: Any = None,
    evaluation: EvaluationConfig | None = None,
    **kw: Any,
) -> TrainingContext:
    """A CPU context over ``world`` with real rollout/metrics and, optionally, fixed replay data."""
    metrics = kw.pop("metrics", None) or MetricsWriter(run_dir / "metrics.jsonl")
    return TrainingContext(
        seed=kw.pop("seed", 0),
        world=world,
        dataset=None,
        model=model,
        device="cpu",
        run_dir=RunDir(run_dir).prepare(resume=kw.get("resume", False)),
        services=TrainingServices(
            rollout=rollout or RolloutCaptureService(),
            evaluation=evaluation_service,
            replay=FixedReplay(replay) if replay is not None else None,
        ),
        metrics=metrics,
        evaluation=evaluation or EvaluationConfig(enabled=False),
        log=logging.getLogger("test.ppo"),
        **kw,
    )
