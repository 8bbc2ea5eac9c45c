"""Metrics/logging schema (``conf/logger/*.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class LoggerKind(StrEnum):
    jsonl = "jsonl"
    tensorboard = "tensorboard"  # jsonl + <run dir>/tensorboard/ event files (needs the tensorboard extra)
    none = "none"


@dataclass
class LoggerConfig:
    """``metrics.jsonl`` cadence and rotation, and the end-of-run training-curve plot."""

    kind: LoggerKind = LoggerKind.jsonl
    filename: str = "metrics.jsonl"
    log_frequency: int = 1
    max_log_entries: int | None = None
    plots: bool = True  # <run dir>/plots/training_curves.png from metrics.jsonl
