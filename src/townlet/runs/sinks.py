"""What every logger (``logger.<name>``) receives, and the helpers they share for reading a record."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from townlet.dto.metrics import (
    AGENT_STEPS_KEY,
    EVAL_KEYS,
    FINAL_RETURNS,
    LABEL_KEYS,
    LOSS_GROUP_KEYS,
    OBJECTIVE_METRIC,
    STAGE_INDEX_KEY,
    STAGE_KEY,
    STEP_KEYS,
)
from townlet.runs.atomic import finite_or_none
from townlet.runs.metrics import MetricsWriter
from townlet.runs.objective import ObjectiveError, objective_value

T = TypeVar("T")


@dataclass(frozen=True)
class RunInfo:
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
    git_commit: str | None = None  # of the code that runs, from run.json
    source: str | None = None  # the command that started the run (its argv[0])

    @property
    def sweep_name(self) -> str | None:
        """A multirun's sweep dir relative to ``output_root`` (its MLflow experiment, its W&B group)."""
        if self.sweep_dir is None:
            return None
        sweep = self.sweep_dir.resolve()
        root = Path(self.output_root).resolve() if self.output_root is not None else None
        return (sweep.relative_to(root) if root and sweep.is_relative_to(root) else sweep).as_posix()

    @property
    def display_name(self) -> str:
        """``run_name``, with the job number inside a multirun."""
        return f"{self.run_name}-{self.job_num}" if self.job_num is not None else self.run_name

    @property
    def tags(self) -> list[str]:
        found = self.config.get("tags") or []
        return [str(tag) for tag in found] if isinstance(found, list | tuple) else [str(found)]


class LoggerUnavailableError(RuntimeError):
    """A tracker unreachable at start refuses the run: a user who asked for it wants the run in it."""


class MetricsSink:
    """One logger; defaults do nothing. A sink that raises is switched off by the fan-out."""

    name = "sink"
    #: Takes the policy as ONNX through :meth:`attach_policy` (exporting costs seconds: only on request).
    wants_policy = False

    def write(self, record: Mapping[str, Any]) -> None: ...

    def close(self) -> None:
        """Called before the end-of-run hook and again in ``finally``."""

    def attach_policy(self, path: Path) -> None: ...

    def after_result(self, run_dir: Path, result: Mapping[str, Any]) -> None:
        """The run succeeded: ``result.json`` and the plots are written."""

    def end(self, status: str, error: BaseException | None) -> None:
        """``FAILED``/``KILLED`` with the run's error, or ``FINISHED`` with the error that switched it off."""


class JsonlSink(MetricsSink):
    name = "jsonl"

    def __init__(self, filename: str = "metrics.jsonl", *, run: RunInfo) -> None:
        self.filename = filename
        self.writer = MetricsWriter(run.path / filename)

    def write(self, record: Mapping[str, Any]) -> None:
        self.writer.log(record, force=True)

    def close(self) -> None:
        self.writer.close()


def error_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message`` (cut to ``limit``): a warning stays one line."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:limit]}" if text else type(exc).__name__


def number(value: Any) -> float | None:
    """A record's value as a finite float; None for text, flags, lists, None and NaN/Inf."""
    return None if isinstance(value, str) else finite_or_none(value)


def flatten(record: Mapping[str, Any], sep: str = "/", prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in record.items():
        if isinstance(value, Mapping):
            yield from flatten(value, sep, f"{prefix}{key}{sep}")
        else:
            yield f"{prefix}{key}", value


def scalar_leaves(record: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    """``(tag, value)`` for every finite number in ``record`` (NaN breaks a dashboard's smoothing)."""
    for tag, value in flatten(record):
        if (x := number(value)) is not None:
            yield tag, x


def record_step(record: Mapping[str, Any], fallback: T) -> int | T:
    """The record's ``iteration``, else its ``epoch``, else ``fallback`` (e.g. a running count)."""
    step = next((x for key in STEP_KEYS if (x := number(record.get(key))) is not None), None)
    return fallback if step is None else int(step)


def stage_index(record: Mapping[str, Any]) -> int | None:
    """The 0-based part of a composite run that logged ``record`` (None outside one)."""
    index = record.get(STAGE_INDEX_KEY)
    return index if isinstance(index, int) and not isinstance(index, bool) else None


def stage_prefix(record: Mapping[str, Any]) -> str:
    """``stage<index>_<name>/`` for a part's records, so parts never overwrite each other's curves."""
    index, name = stage_index(record), record.get(STAGE_KEY)
    if index is None:
        return ""
    return f"stage{index}_{name}/" if isinstance(name, str) and name else f"stage{index}/"


def scalars(record: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    """The record's measurements as ``(stage-prefixed tag, value)``, labels left out."""
    prefix = stage_prefix(record)
    for tag, value in scalar_leaves({k: v for k, v in record.items() if k not in LABEL_KEYS}):
        yield prefix + tag, value


def grouped_scalars(record: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    """``(losses|eval|charts/name, value)``, the layout RL dashboards share; stages continue the same
    curves, and the stage index is charted so their boundaries show."""
    for key, value in record.items():
        if key in LABEL_KEYS and key != STAGE_INDEX_KEY:
            continue
        if key in LOSS_GROUP_KEYS or key.startswith("loss"):
            group = "losses"
        else:
            group = "eval" if key in EVAL_KEYS or key.startswith("eval_") else "charts"
        for tag, x in scalar_leaves({key: value}):
            yield f"{group}/{tag}", x


class AgentStepAxis:
    """Agent-steps so far, continuous across a composite run's stages (``env_steps`` restarts at zero in
    each); a record without ``env_steps`` sits at the count so far."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.last = 0.0
        self.stage: int | None = None
        self.started = False

    def advance(self, record: Mapping[str, Any]) -> float | None:
        steps = number(record.get(AGENT_STEPS_KEY))
        if steps is None:
            return self.offset + self.last if self.started else None
        if stage_index(record) != self.stage:
            self.stage, self.offset = stage_index(record), self.offset + self.last
        self.last, self.started = steps, True
        return self.offset + steps

    def step(self, record: Mapping[str, Any], fallback: int) -> int:
        """The record's x: agent-steps so far, else its iteration/epoch, else ``fallback``."""
        x = self.advance(record)
        return int(x) if x is not None else record_step(record, fallback)


def dotted_get(node: Any, key: str) -> Any:
    for part in key.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def final_metrics(run: RunInfo, result: Mapping[str, Any]) -> dict[str, float]:
    """The final evaluation's mean returns and the objective, those that are numbers."""
    out = {key: x for key in FINAL_RETURNS if (x := number(dotted_get(result, key))) is not None}
    if isinstance(objective := run.config.get("objective"), str):
        mode = str(run.config.get("objective_mode", "max"))
        with contextlib.suppress(ObjectiveError):  # a result without the key charts no objective
            if (value := number(objective_value(dict(result), objective, mode))) is not None:
                out[OBJECTIVE_METRIC] = value
    return out


def hparams(run: RunInfo) -> dict[str, str | float | int | bool]:
    """The settings a run is compared by: seed, strategy, world, objective and every strategy setting."""
    out: dict[str, str | float | int | bool] = {
        "seed": run.seed,
        "strategy": run.strategy,
        "world": run.world,
    }
    if isinstance(objective := run.config.get("objective"), str):
        out["objective_key"] = objective
    strategy = run.config.get("strategy")
    for key, value in flatten(strategy if isinstance(strategy, Mapping) else {}, sep="."):
        if value is not None:
            out[f"strategy.{key}"] = value if isinstance(value, bool | int | float | str) else str(value)
    return out
