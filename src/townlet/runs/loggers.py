"""The one metrics object a run hands its strategy, fanning each record out to the selected loggers.

A sink that raises mid-run is switched off: a tracker is a view of the run, never a reason to lose it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from townlet.config.instantiate import ConfigError, build
from townlet.config.plan import RunPlan
from townlet.config.schema.logger import JsonlLoggerConfig, TensorBoardLoggerConfig
from townlet.dto.metrics import WALL_KEY
from townlet.runs.atomic import read_json_object
from townlet.runs.metrics import MetricsWriter
from townlet.runs.plots import reference_returns, write_training_plots
from townlet.runs.progress import ProgressDisplay, make_display
from townlet.runs.record import is_multirun, strategy_name
from townlet.runs.rundir import RUN_FILE
from townlet.runs.sinks import JsonlSink, LoggerUnavailableError, MetricsSink, RunInfo, error_line

log = logging.getLogger("townlet.train")

#: Build order: remote trackers first, so a bad setting stops the run before any local file exists.
LOGGER_KEYS: tuple[str, ...] = ("mlflow", "wandb", "tensorboard", "csv", "jsonl")


class MetricsFanout(MetricsWriter):
    """A :class:`MetricsWriter` (what strategies are typed against) writing through its sinks, JSONL
    (the record of truth) first; a switched-off sink's error is kept to tell its remote run why."""

    def __init__(
        self,
        sinks: Sequence[MetricsSink] = (),
        *,
        log_frequency: int = 1,
        max_log_entries: int | None = None,
        plots: bool = True,
        display: ProgressDisplay | None = None,
    ) -> None:
        self.sinks = sorted(sinks, key=lambda sink: not isinstance(sink, JsonlSink))  # stable: JSONL first
        self.jsonl = self.sinks[0] if self.sinks and isinstance(self.sinks[0], JsonlSink) else None
        self.off: dict[int, BaseException] = {}  # id(sink) -> the error that switched it off
        self.plots = plots
        self.display = display or ProgressDisplay()
        self.finished = False
        super().__init__(os.devnull, log_frequency, max_log_entries)

    @property
    def max_log_entries(self) -> int | None:
        return self._rotate_after

    @max_log_entries.setter
    def max_log_entries(self, value: int | None) -> None:
        """Rotation belongs to the JSONL file; PPO's ``strategy.max_log_entries`` sets it here."""
        self._rotate_after = value
        if self.jsonl is not None:
            self.jsonl.writer.max_log_entries = value

    def live(self) -> list[MetricsSink]:
        return [sink for sink in self.sinks if id(sink) not in self.off]

    def log(self, record: Mapping[str, Any], *, force: bool = False) -> bool:
        self.calls += 1
        stamped = {**record, WALL_KEY: self.wall_sec()}
        self.display.show(stamped)
        if not force and self.calls % self.log_frequency != 0:
            return False
        for sink in self.live():
            self._guard(sink, "writing a record", sink.write, stamped)
        return True

    def _guard(self, sink: MetricsSink, doing: str, call: Callable[..., None], *args: Any) -> None:
        try:
            call(*args)
        except Exception as exc:
            self.off[id(sink)] = exc
            log.warning(
                "logger %s: failed %s (%s); switched off for the rest of the run, which goes on",
                sink.name,
                doing,
                error_line(exc),
            )
            _quietly(sink.close)

    def wants_policy(self) -> bool:
        return any(sink.wants_policy for sink in self.live())

    def attach_policy(self, path: Path) -> None:
        for sink in self.live():
            if sink.wants_policy:
                self._guard(sink, "taking the policy", sink.attach_policy, path)

    def _close_files(self) -> None:
        self.display.close()
        for sink in self.live():
            self._guard(sink, "closing its files", sink.close)

    def after_result(self, run_dir: str | Path, result: Mapping[str, Any]) -> None:
        """``result.json`` is on disk: draw the curves, let each sink collect its artefacts (never fatal)."""
        run_dir = Path(run_dir)
        self._close_files()
        if self.plots and self.jsonl is not None:
            try:
                path = write_training_plots(run_dir, self.jsonl.filename, reference_returns(dict(result)))
                if path is not None:
                    log.info("plots: %s", path)
            except Exception as exc:  # the curves are a convenience
                log.warning("plots: could not draw training curves (%s)", exc)
        for sink in self.live():
            self._guard(sink, "recording the end of the run", sink.after_result, run_dir, result)
        self._end_switched_off("FINISHED")
        self.finished = True

    def close(self) -> None:
        """Close every sink; before :meth:`after_result`, end their runs as failed or killed."""
        self._close_files()
        if self.finished:
            return
        self.finished = True
        error = sys.exc_info()[1]  # the exception unwinding run_job, when closed from ``finally``
        status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        for sink in self.live():
            self._guard(sink, f"marking its run {status}", sink.end, status, error)
        self._end_switched_off(status)

    def _end_switched_off(self, status: str) -> None:
        """One quiet try to mark a switched-off sink's remote run with the outcome (already warned)."""
        for sink in self.sinks:
            if (error := self.off.get(id(sink))) is not None:
                _quietly(partial(sink.end, status, error))


def _quietly(call: Callable[[], None]) -> None:
    try:
        call()
    except Exception as exc:
        log.debug("ignored a logger's error: %s", error_line(exc))


def selected_loggers(node: Any) -> dict[str, Any]:
    """``{name: config node}`` in :data:`LOGGER_KEYS` order; ``logger.kind`` (snapshots) maps onto them."""
    kind, filename = node.get("kind"), node.get("filename")
    if kind is None and filename is not None:
        raise ConfigError(
            f"logger.filename={filename!r} only goes with logger.kind; "
            "name the JSONL file with logger.jsonl.filename=... instead"
        )
    if kind is None:
        return {key: node.get(key) for key in LOGGER_KEYS if node.get(key) is not None}
    chosen = {}
    if str(kind) == "tensorboard":
        chosen["tensorboard"] = OmegaConf.structured(TensorBoardLoggerConfig())
    if str(kind) in ("jsonl", "tensorboard"):
        chosen["jsonl"] = OmegaConf.structured(JsonlLoggerConfig(filename=filename or "metrics.jsonl"))
    return chosen


def run_info(cfg: Any, run_dir: Path, hydra: Any = None, *, config_hash: str | None = None) -> RunInfo:
    """The run's identity for the loggers: config, Hydra's runtime (if any) and ``run.json``'s provenance."""
    multirun = is_multirun(hydra)
    choices = dict(hydra.runtime.choices) if hydra is not None else {}
    record = read_json_object(Path(run_dir) / RUN_FILE) or {}  # none in a test's fan-out
    return RunInfo(
        path=Path(run_dir),
        config=OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]  # a DictConfig's
        run_name=str(cfg.run_name),
        seed=int(cfg.seed),
        strategy=strategy_name(cfg, hydra),
        world=str(cfg.world.get("name", choices.get("world", "?"))),
        output_root=Path(str(cfg.paths.output_root)),
        job_num=int(hydra.job.num) if multirun else None,
        sweep_dir=Path(str(hydra.sweep.dir)) if multirun else None,
        overrides=tuple(str(o) for o in hydra.overrides.task) if hydra is not None else (),
        config_hash=config_hash,
        git_commit=record.get("git_commit"),
        source=str(record["command"][0]) if record.get("command") else None,
    )


def build_metrics(
    cfg: Any,
    run_dir: str | Path,
    hydra: Any = None,
    *,
    config_hash: str | None = None,
    plan: RunPlan | None = None,
) -> MetricsFanout:
    """The selected loggers (``cfg.logger``) and the progress display (``plan`` gives its total)."""
    node = cfg.logger
    info = run_info(cfg, Path(run_dir), hydra, config_hash=config_hash)
    sinks: list[MetricsSink] = []
    try:
        for name, section in selected_loggers(node).items():
            try:
                sinks.append(build(section, _partial_=True)(run=info))
            except LoggerUnavailableError as exc:
                raise LoggerUnavailableError(
                    f"logger {name}: {exc}; start it, fix logger.{name}'s settings or drop {name} from "
                    "logger=[...]"
                ) from None
    except BaseException as exc:
        for sink in sinks:
            _quietly(sink.close)
            _quietly(partial(sink.end, "FAILED", exc))
        raise
    display = make_display(
        str(node.progress),
        plan or RunPlan(units=None),
        every_sec=float(node.progress_every_sec),
        multirun=is_multirun(hydra),
    )
    frequency, plots = int(node.log_frequency), bool(node.plots)
    return MetricsFanout(
        sinks, log_frequency=frequency, max_log_entries=node.max_log_entries, plots=plots, display=display
    )
