"""The submitter's side of a SLURM sweep's end: one line per task that did not finish, a failed row
for it in the summary, the final summary itself, and the one-line refusals before anything ran."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from townlet.config.instantiate import ConfigError
from townlet.runs.atomic import atomic_write_json, read_json_object
from townlet.sweeps.jobs import JOB_STATUS_FILE, RUN_RECORD_FILE
from townlet.sweeps.slurm_queue import TaskOutcome

log = logging.getLogger(__name__)


class SweepRefused(ConfigError):
    """The sweep cannot be submitted as configured (bad launcher setting, sbatch said no)."""

    exit_code = 2


class SlurmTaskFailed(RuntimeError):
    """A task that ended without a result; its message is the submitter's one line about it."""


def job_dir_of(hydra_context: Any, config: Any, overrides: Sequence[str], num: int, sweep_dir: Path) -> Path:
    """Where Hydra put (or would have put) job ``num``: the sweep dir plus its resolved subdir."""
    raw: Any = OmegaConf.to_container(config.hydra.sweep, resolve=False)
    if raw.get("subdir") in ("${hydra.job.num}", None):  # the usual layout: no need to compose
        return sweep_dir / str(num)
    try:
        job_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(job_config):
            job_config.hydra.job.num = num
        subdir: Any = job_config.hydra.sweep.subdir
    except Exception:  # composing again failed: Hydra's default layout
        subdir = num
    return sweep_dir / str(subdir)


def problem_line(num: int, task_id: str, outcome: TaskOutcome, job_dir: Path) -> str:
    """``job 1 (SLURM 7_1, CANCELLED) interrupted: cancelled (SIGTERM, e.g. scancel) ...``."""
    record = read_json_object(job_dir / RUN_RECORD_FILE) or {}
    status, error = record.get("status"), record.get("error")
    lost = outcome.kind == "lost"  # otherwise the state is the last one seen before the result came
    where = f"job {num} (SLURM {task_id}{', ' + outcome.state if lost and outcome.state else ''})"
    if status in ("failed", "interrupted") and error:
        kind = str(record.get("error_type") or "").removeprefix("builtins.")
        shown = f"{kind.rsplit('.', 1)[-1]}: {error}" if status == "failed" and kind else str(error)
        return f"{where} {status}: {_one_line(shown)}"
    if outcome.kind == "error" and isinstance(outcome.result, str) and outcome.result.strip():
        return f"{where} failed: {_one_line(outcome.result.strip().splitlines()[-1])}"
    said = f"; run.json says {status}" if status else "; it left no run.json"
    state = outcome.state or "nothing (no accounting?)"
    return f"{where} lost: SLURM says {state} and the task left no result{said}"


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def mark_failed(
    job_dir: Path, num: int, task_id: str, outcome: TaskOutcome, overrides: Sequence[str], line: str
) -> None:
    """A failed ``job_status.json`` for a task without a result, so the summary lists it as failed."""
    path = job_dir / JOB_STATUS_FILE
    existing = read_json_object(path) or {}
    if existing.get("status") == "failed":
        payload = {**existing, "slurm_id": task_id, "slurm_state": outcome.state}
    else:
        payload = {
            "num": num,
            "status": "failed",
            "overrides": list(overrides),
            "return_value": None,
            "error": line,
            "slurm_id": task_id,
            "slurm_state": outcome.state,
        }
    try:
        job_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, payload)
    except OSError as exc:
        log.warning("could not write %s: %s", path, exc)


def write_final_summary(config: DictConfig, sweep_dir: Path) -> str:
    """Write the sweep summary once every task is over; returns its counts as text."""
    from townlet.sweeps.render import write_summary

    def select(key: str) -> Any:
        return OmegaConf.select(config, key, default=None, throw_on_resolution_failure=False)

    metrics = select("hydra.callbacks.sweep_summary.metrics")
    try:
        summary = write_summary(
            sweep_dir,
            objective=None if select("objective") is None else str(select("objective")),
            mode=None if select("objective_mode") is None else str(select("objective_mode")),
            metrics=None if metrics is None else [str(m) for m in metrics],
        )
    except Exception as exc:  # the sweep's end must be reported even when the summary cannot be
        log.warning("could not write the sweep summary in %s: %s", sweep_dir, exc)
        return "not written"
    c = summary.counts
    return ", ".join(f"{c[k]} {k}" for k in ("ok", "failed", "diverged", "incomplete") if c.get(k))


def refused_cleanup(sweep_dir: Path, before: set[Path]) -> None:
    """Remove what a refused submission left: submitit's new files, and the sweep dir if that is all."""
    submitit_dir = sweep_dir / ".submitit"
    if submitit_dir.is_dir():
        for path in set(submitit_dir.iterdir()) - before:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if not any(submitit_dir.iterdir()):
            submitit_dir.rmdir()
    drop_unused_sweep_dir(sweep_dir)


def drop_unused_sweep_dir(sweep_dir: Path) -> None:
    """Remove a sweep dir that holds nothing but the ``multirun.yaml`` the sweeper just wrote."""
    if sweep_dir.is_dir() and {p.name for p in sweep_dir.iterdir()} <= {"multirun.yaml"}:
        shutil.rmtree(sweep_dir, ignore_errors=True)
