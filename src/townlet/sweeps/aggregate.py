"""The sweep as a whole: every job's row, the swept axes, the best job, seed statistics, missing jobs."""

from __future__ import annotations

import itertools
import logging
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser

from townlet.dto.metrics import SWEEP_METRICS
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
    metric_keys = list(
        SWEEP_METRICS if metrics is None else metrics
    )  # those some job's result holds are shown
    rows = sorted(
        (read_job(d, root, objective, metric_keys) for d in job_dirs),
        key=lambda r: (r.num is None, r.num or 0, r.job_dir),
    )
    shown = [m for m in metric_keys if any(r.metrics.get(m) is not None for r in rows)]
    for row in rows:
        row.metrics = {m: row.metrics.get(m) for m in shown}
    axes = _swept_axes(rows)
    others = [a for a in axes if a != "seed"]
    best = _best(rows, mode, lambda r: r.objective if r.status == OK else None)
    counts = {s: sum(r.status == s for r in rows) for s in (OK, FAILED, DIVERGED, INCOMPLETE)}
    expected, missing = _expected_jobs(root, rows)
    optuna = read_yaml(root / "optimization_results.yaml")
    return SweepSummary(
        sweep_dir=str(root.resolve()),
        objective=objective,
        objective_mode=mode,
        axes=axes,
        metrics=shown,
        rows=rows,
        counts={**counts, "total": len(rows)},
        expected_jobs=expected,
        missing_overrides=missing,
        best_num=best.num if best is not None else None,
        seed_groups=_seed_groups(rows, others, shown, mode) if "seed" in axes else [],
        optuna=dict(optuna) if isinstance(optuna, Mapping) else None,
        generated_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )


def _swept_axes(rows: Sequence[JobRow]) -> list[str]:
    """Override keys whose value differs between jobs, in first-seen order (hydra.* keys excluded)."""
    order = list(dict.fromkeys(k for row in rows for k in row.params))
    return [
        k
        for k in order
        if not k.startswith("hydra.") and len({r.params.get(k) for r in rows if r.overrides}) > 1
    ]


def _best(items: Sequence[Any], mode: str, score: Any) -> Any:
    """The item with the best ``score(item)`` (None scores never win); marks it ``best``."""
    scored = [item for item in items if score(item) is not None]
    if not scored:
        return None
    best = (max if mode == "max" else min)(scored, key=score)
    best.best = True
    return best


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


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
        spread = {m: _mean_std([v for r in ok if (v := r.metrics.get(m)) is not None]) for m in metrics}
        groups.append(
            SeedGroup(
                {a: v for a, v in zip(other_axes, key, strict=True) if v is not None},
                [r.params.get("seed", "?") for r in members],
                len(members),
                len(ok),
                *_mean_std([r.objective for r in ok if r.objective is not None]),
                {m: mean for m, (mean, _) in spread.items()},
                {m: std for m, (_, std) in spread.items()},
            )
        )
    _best(groups, mode, lambda g: g.objective_mean)
    return groups


def _expected_jobs(sweep_dir: Path, rows: Sequence[JobRow]) -> tuple[int | None, list[list[str]]]:
    """For a basic-sweeper grid, expand multirun.yaml's overrides to list jobs that never started."""
    cfg = read_yaml(sweep_dir / "multirun.yaml")
    if not str(dotted_get(cfg, "hydra.sweeper._target_") or "").endswith("BasicSweeper"):
        return None, []
    params = dotted_get(cfg, "hydra.sweeper.params") or {}
    arguments = [f"{k}={v}" for k, v in params.items()]
    try:
        grid = basic_grid([*arguments, *(str(o) for o in dotted_get(cfg, "hydra.overrides.task") or [])])
    except Exception as exc:  # an unparsable grid only costs the "missing jobs" line
        log.debug("could not expand the sweep grid: %s", exc)
        return None, []
    seen = [{override_key_value(o) for o in r.overrides} for r in rows]
    return len(grid), [job for job in grid if {override_key_value(o) for o in job} not in seen]


def basic_grid(arguments: Sequence[str]) -> list[list[str]]:
    """The jobs Hydra's basic sweeper makes of ``arguments``: every combination of the keys' values
    (a later override of a key replaces an earlier one, as in the sweeper)."""
    axes: dict[str, list[str]] = {}
    for override in OverridesParser.create().parse_overrides(list(arguments)):
        key = override.get_key_element()
        if not override.is_sweep_override():
            axes[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            axes[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            raise ValueError(f"{key}: the basic sweeper cannot enumerate a {override.value_type} sweep")
    return [list(job) for job in itertools.product(*axes.values())]
