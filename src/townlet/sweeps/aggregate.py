"""The sweep as a whole: every job's row, the swept axes, the best job, seed statistics, missing jobs."""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from townlet.sweeps.jobs import (
    DIVERGED,
    FAILED,
    INCOMPLETE,
    OK,
    JobRow,
    discover_job_dirs,
    dotted_get,
    objective_setting,
    override_key_value,
    read_job,
    read_yaml,
)

log = logging.getLogger(__name__)

# Metrics shown for every job when present in its result (dotted keys into result.json). The first few
# are BC, then PPO, then the evaluation block every strategy may carry.
DEFAULT_METRICS: tuple[str, ...] = (
    "accuracy",
    "val_accuracy",
    "loss",
    "val_loss",
    "loss_total",
    "kl_divergence",
    "clip_fraction",
    "evaluation.policy.mean_return",
    "evaluation.policy.faint_rate",
    "evaluation.policy.scripted_agreement",
)


class SweepReportError(ValueError):
    """A directory that cannot be summarised (missing, or holding no job directories)."""


@dataclass
class SeedGroup:
    """Jobs that differ only in ``seed``: mean ± sample std of the objective and metrics."""

    params: dict[str, str]
    seeds: list[str]
    n: int
    n_ok: int
    objective_mean: float | None
    objective_std: float | None
    metrics_mean: dict[str, float | None]
    metrics_std: dict[str, float | None]
    best: bool = False


@dataclass
class SweepSummary:
    """Everything written to ``sweep_summary.{json,csv,md}``."""

    sweep_dir: str
    objective: str | None
    objective_mode: str
    axes: list[str]
    metrics: list[str]
    rows: list[JobRow]
    counts: dict[str, int]
    expected_jobs: int | None = None
    missing_overrides: list[list[str]] = field(default_factory=list)
    best_num: int | None = None
    seed_groups: list[SeedGroup] = field(default_factory=list)
    optuna: dict[str, Any] | None = None
    generated_at: str = ""
    plots: list[str] = field(default_factory=list)  # PNG names in the sweep dir (townlet.sweeps.plots)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def existing_sweep_dir(sweep_dir: str | Path) -> Path:
    """``sweep_dir`` as a Path; SweepReportError when it is not a directory."""
    root = Path(sweep_dir)
    if not root.is_dir():
        raise SweepReportError(f"sweep directory {root} does not exist; pass the folder Hydra printed for -m")
    return root


def build_summary(
    sweep_dir: str | Path,
    *,
    objective: str | None = None,
    mode: str | None = None,
    metrics: Sequence[str] | None = None,
) -> SweepSummary:
    """Summarise a (finished or interrupted) sweep directory."""
    root = existing_sweep_dir(sweep_dir)
    job_dirs = discover_job_dirs(root)
    if not job_dirs:
        raise SweepReportError(
            f"{root} holds no job directories (no */.hydra/overrides.yaml, run.json or result.json); "
            "pass the sweep folder itself (the one with multirun.yaml), not a job or run folder"
        )
    saved_objective, saved_mode = objective_setting(job_dirs)
    objective = objective or saved_objective
    mode = (mode or saved_mode or "max").lower()
    if mode not in ("max", "min"):
        raise SweepReportError(f"objective mode must be 'max' or 'min', got {mode!r}")
    metric_keys = list(metrics) if metrics is not None else list(DEFAULT_METRICS)
    rows = [read_job(d, root, objective, metric_keys) for d in job_dirs]
    rows.sort(key=lambda r: (r.num is None, r.num if r.num is not None else 0, r.job_dir))
    shown_metrics = [m for m in metric_keys if any(r.metrics.get(m) is not None for r in rows)]
    for row in rows:
        row.metrics = {m: row.metrics.get(m) for m in shown_metrics}

    axes = _swept_axes(rows)
    best = _pick_best(rows, mode)
    if best is not None:
        best.best = True
    counts = {s: sum(r.status == s for r in rows) for s in (OK, FAILED, DIVERGED, INCOMPLETE)}
    counts["total"] = len(rows)
    expected, missing = _expected_jobs(root, rows)
    summary = SweepSummary(
        sweep_dir=str(root.resolve()),
        objective=objective,
        objective_mode=mode,
        axes=axes,
        metrics=shown_metrics,
        rows=rows,
        counts=counts,
        expected_jobs=expected,
        missing_overrides=missing,
        best_num=best.num if best is not None else None,
        optuna=_optuna_results(root),
        generated_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    if "seed" in axes:
        summary.seed_groups = _seed_groups(rows, [a for a in axes if a != "seed"], shown_metrics, mode)
    return summary


def _swept_axes(rows: Sequence[JobRow]) -> list[str]:
    """Override keys whose value differs between jobs, in first-seen order (hydra.* keys excluded)."""
    order: list[str] = []
    for row in rows:
        order.extend(k for k in row.params if k not in order)
    return [
        k
        for k in order
        if not k.startswith("hydra.") and len({r.params.get(k) for r in rows if r.overrides}) > 1
    ]


def _pick_best(rows: Sequence[JobRow], mode: str) -> JobRow | None:
    scored = [r for r in rows if r.status == OK and r.objective is not None]
    if not scored:
        return None
    pick = max if mode == "max" else min
    return pick(scored, key=lambda r: r.objective if r.objective is not None else 0.0)


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def _seed_groups(
    rows: Sequence[JobRow], other_axes: Sequence[str], metrics: Sequence[str], mode: str
) -> list[SeedGroup]:
    """Group jobs by every swept axis but ``seed``; only finished (ok) jobs enter the statistics."""
    buckets: dict[tuple[str | None, ...], list[JobRow]] = {}
    for row in rows:
        buckets.setdefault(tuple(row.params.get(a) for a in other_axes), []).append(row)
    groups: list[SeedGroup] = []
    for key, members in buckets.items():
        ok = [r for r in members if r.status == OK]
        obj_mean, obj_std = _mean_std([r.objective for r in ok if r.objective is not None])
        m_mean: dict[str, float | None] = {}
        m_std: dict[str, float | None] = {}
        for metric in metrics:
            values = [v for r in ok if (v := r.metrics.get(metric)) is not None]
            m_mean[metric], m_std[metric] = _mean_std(values)
        groups.append(
            SeedGroup(
                params={a: v for a, v in zip(other_axes, key, strict=True) if v is not None},
                seeds=[r.params.get("seed", "?") for r in members],
                n=len(members),
                n_ok=len(ok),
                objective_mean=obj_mean,
                objective_std=obj_std,
                metrics_mean=m_mean,
                metrics_std=m_std,
            )
        )
    scored = [g for g in groups if g.objective_mean is not None]
    if scored:
        pick = max if mode == "max" else min
        pick(scored, key=lambda g: g.objective_mean or 0.0).best = True
    return groups


def _expected_jobs(sweep_dir: Path, rows: Sequence[JobRow]) -> tuple[int | None, list[list[str]]]:
    """For a basic-sweeper grid, expand multirun.yaml's overrides to list jobs that never started."""
    cfg = read_yaml(sweep_dir / "multirun.yaml")
    sweeper = str(dotted_get(cfg, "hydra.sweeper._target_") or "")
    if not sweeper.endswith("BasicSweeper"):
        return None, []
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        params = dotted_get(cfg, "hydra.sweeper.params") or {}
        arguments = [f"{k}={v}" for k, v in params.items()]
        arguments += [str(o) for o in dotted_get(cfg, "hydra.overrides.task") or []]
        parsed = OverridesParser.create().parse_overrides(arguments)
        grid = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    except Exception as exc:  # an unparsable grid only costs the "missing jobs" line
        log.debug("could not expand the sweep grid: %s", exc)
        return None, []
    seen = [{override_key_value(o) for o in r.overrides} for r in rows]
    missing = [job for job in grid if {override_key_value(o) for o in job} not in seen]
    return len(grid), missing


def _optuna_results(sweep_dir: Path) -> dict[str, Any] | None:
    data = read_yaml(sweep_dir / "optimization_results.yaml")
    return dict(data) if isinstance(data, Mapping) else None
