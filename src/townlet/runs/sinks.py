"""What every logger (``logger.<name>``) receives, and the helpers they share for reading a record.

A sink sees only records the fan-out's cadence chose, each already stamped with ``wall_sec``, so the
JSONL file, the CSV file, TensorBoard and MLflow hold the same rows with the same clock. The run's
identity (:class:`RunInfo`) is handed to the constructor beside the config node's own keys.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from townlet.runs.metrics import MetricsWriter

STEP_KEYS: tuple[str, ...] = ("iteration", "epoch")
STAGE_INDEX_KEY = "anneal_stage_index"
STAGE_NAME_KEY = "anneal_stage"
# Tags that label a record rather than measure anything: they choose the step and the prefix
# (``wall_sec`` too: dashboards keep their own wall clock per point).
LABEL_KEYS = frozenset({*STEP_KEYS, STAGE_INDEX_KEY, "anneal_cycle", "wall_sec"})


@dataclass(frozen=True)
class RunInfo:
    """Who the records belong to: the run dir, its resolved config and the labels loggers tag with."""

    path: Path
    config: Mapping[str, Any] = field(default_factory=dict)
    run_name: str = "train"
    seed: int = 0
    strategy: str = "?"
    world: str = "?"
    output_root: Path | None = None
    job_num: int | None = None  # set inside a multirun
    sweep_dir: Path | None = None  # set inside a multirun
    overrides: tuple[str, ...] = ()
    config_hash: str | None = None

    @property
    def multirun(self) -> bool:
        return self.job_num is not None


class MetricsSink:
    """One logger. Defaults do nothing, so a sink implements only the moments it cares about."""

    name = "sink"

    def write(self, record: Mapping[str, Any]) -> None:
        """Store one record (chosen by the cadence, ``wall_sec`` stamped)."""

    def close(self) -> None:
        """Flush and close files; called before the end-of-run hook and again in ``finally``."""

    def after_result(self, run_dir: Path, result: Mapping[str, Any]) -> None:
        """The run succeeded: ``result.json`` and the plots are written."""

    def abort(self, status: str, error: BaseException | None) -> None:
        """The run ended without a result: ``status`` is ``FAILED`` or ``KILLED``."""


class JsonlSink(MetricsSink):
    """``logger.jsonl``: ``<run dir>/metrics.jsonl`` (rotated after ``max_log_entries`` lines)."""

    name = "jsonl"

    def __init__(self, filename: str = "metrics.jsonl", *, run: RunInfo) -> None:
        self.filename = filename
        self.writer = MetricsWriter(run.path / filename)

    @property
    def max_log_entries(self) -> int | None:
        return self.writer.max_log_entries

    @max_log_entries.setter
    def max_log_entries(self, value: int | None) -> None:
        self.writer.max_log_entries = int(value) if value and value > 0 else None

    def write(self, record: Mapping[str, Any]) -> None:
        self.writer.log(record, force=True)

    def close(self) -> None:
        self.writer.close()


def scalar_leaves(record: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """``(tag, value)`` for every finite real number in ``record``, nested keys joined with ``/``.

    Booleans, strings, lists (e.g. a confusion matrix), None and NaN/Inf are skipped: a scalar
    chart of them would be meaningless or would break a dashboard's smoothing.
    """
    for key, value in record.items():
        tag = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from scalar_leaves(value, tag + "/")
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            number = float(value)
            if math.isfinite(number):
                yield tag, number


def record_step(record: Mapping[str, Any], fallback: int) -> int:
    """The record's ``iteration``, else its ``epoch``, else ``fallback`` (a running count)."""
    for key in STEP_KEYS:
        value = record.get(key)
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value)):
            return int(float(value))
    return fallback


def stage_prefix(record: Mapping[str, Any]) -> str:
    """``stage<k>_<name>/`` for anneal stage records so stages never overwrite each other's curves."""
    index = record.get(STAGE_INDEX_KEY)
    if index is None or isinstance(index, bool):
        return ""
    name = record.get(STAGE_NAME_KEY)
    return f"stage{index}_{name}/" if isinstance(name, str) and name else f"stage{index}/"


def scalars(record: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    """The record's measurements as ``(stage-prefixed tag, value)``, labels left out."""
    prefix = stage_prefix(record)
    for tag, value in scalar_leaves({k: v for k, v in record.items() if k not in LABEL_KEYS}):
        yield prefix + tag, value
