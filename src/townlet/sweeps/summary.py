"""Sweep summaries, a pure function of the sweep dir: the only thing every launcher's jobs share. Hydra's
basic sweeper stops before ``on_multirun_end`` when a job fails, so the summary is refreshed after every
job too; ``job_status.json`` carries the error of a job that raised before the runner recorded it."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from townlet.runs.atomic import atomic_write_json, finite_or_none
from townlet.sweeps.jobs import JOB_STATUS_FILE, SweepSummary
from townlet.sweeps.render import SUMMARY_STEM, write_summary

log = logging.getLogger(__name__)


def _select_str(config: DictConfig, key: str) -> str | None:
    try:
        value = OmegaConf.select(config, key, default=None)
    except Exception:  # an unresolvable interpolation must not cost the summary
        return None
    return None if value is None else str(value)


class SweepSummaryCallback(Callback):
    """``job_status.json`` and (``refresh_each_job``) the summary after each job, and once more at the end."""

    def __init__(
        self, metrics: Sequence[str] | None = None, refresh_each_job: bool = True, plots: bool = True
    ) -> None:
        self.metrics = list(metrics) if metrics is not None else None
        self.refresh_each_job = refresh_each_job
        self.plots = plots
        self._started: float | None = None
        self._multirun_started: float | None = None

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._started = time.perf_counter()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if not (_select_str(config, "hydra.mode") or "").endswith("MULTIRUN"):
            return
        output_dir = _select_str(config, "hydra.runtime.output_dir")
        if output_dir:
            try:
                self._write_job_status(Path(output_dir), config, job_return)
            except Exception as exc:
                log.warning("could not write %s in %s: %s", JOB_STATUS_FILE, output_dir, exc)
        if self.refresh_each_job:
            self._refresh(config, final=False)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._multirun_started = time.time()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        # also called for a sweep refused before any job ran: leave that dir (maybe another's) alone
        sweep_dir = Path(_select_str(config, "hydra.sweep.dir") or ".")
        started, statuses = self._multirun_started, sweep_dir.glob(f"*/{JOB_STATUS_FILE}")
        if started is None or not any(p.stat().st_mtime >= started for p in statuses):
            return
        summary = self._refresh(config, final=True)
        if summary is not None:
            log.info("sweep summary: %s", Path(summary.sweep_dir) / f"{SUMMARY_STEM}.md")

    def _write_job_status(self, output_dir: Path, config: DictConfig, job_return: JobReturn) -> None:
        failed = job_return.status == JobStatus.FAILED
        with contextlib.redirect_stderr(io.StringIO()):  # a failed job's value is said on stderr, then raised
            try:
                raw = job_return.return_value
            except Exception as exc:
                raw = exc
        payload: dict[str, Any] = {
            "num": OmegaConf.select(config, "hydra.job.num", default=None),
            "status": "failed" if failed else "completed",
            "overrides": list(job_return.overrides or []),
            "return_value": None if failed else finite_or_none(raw),
            "duration_sec": None if self._started is None else time.perf_counter() - self._started,
            "pid": os.getpid(),
        }
        if failed and isinstance(raw, BaseException):
            payload["error"] = f"{type(raw).__name__}: {raw}"
            payload["traceback"] = "".join(traceback.format_exception(raw)[-6:])
        atomic_write_json(output_dir / JOB_STATUS_FILE, payload)

    def _refresh(self, config: DictConfig, *, final: bool) -> SweepSummary | None:
        sweep_dir = _select_str(config, "hydra.sweep.dir")
        if not sweep_dir or not Path(sweep_dir).is_dir():
            return None
        try:
            return write_summary(
                sweep_dir,
                objective=_select_str(config, "objective"),
                mode=_select_str(config, "objective_mode"),
                metrics=self.metrics,
                plots=(True if final else "when_complete") if self.plots else False,
            )
        except Exception as exc:  # a summary problem must never fail the sweep itself
            log.warning("could not write the sweep summary in %s: %s", sweep_dir, exc)
            return None
