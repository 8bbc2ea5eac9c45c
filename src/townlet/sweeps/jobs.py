"""A sweep read back from the files its jobs left: rows, swept axes, best job, seed statistics, gaps.
A job may have died at any point, so a missing or corrupt file degrades its row to ``incomplete``
instead of failing the whole report."""

from __future__ import annotations

import itertools
import logging
import re
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

from townlet.dto.metrics import SWEEP_METRICS
from townlet.runs.atomic import finite_or_none, read_json_object
from townlet.runs.rundir import RESULT_FILE, RUN_FILE
from townlet.runs.sinks import dotted_get

log = logging.getLogger(__name__)

JOB_STATUS_FILE = "job_status.json"

OK, FAILED, DIVERGED, INCOMPLETE = "ok", "failed", "diverged", "incomplete"
STATUSES = (OK, FAILED, DIVERGED, INCOMPLETE)
# run.json's and job_status.json's statuses
_STATUS_WORDS = {"completed": OK, "failed": FAILED, "running": INCOMPLETE, "interrupted": INCOMPLETE}
_SEVERITY = {FAILED: 2, OK: 1, INCOMPLETE: 0}
# A failure whose error names one of these is shown as "diverged" (the runner raises on a NaN objective).
_DIVERGENCE_HINTS = re.compile(r"diverg|non-?finite|\bnan\b", re.IGNORECASE)
_SKIP_DIRS = {".hydra", ".submitit", "checkpoints", "__pycache__"}
_TRACES = (".hydra/overrides.yaml", RUN_FILE, RESULT_FILE, JOB_STATUS_FILE)  # any marks a job dir


@dataclass
class JobRow:
    num: int | None
    job_dir: str  # relative to the sweep dir, so the summary survives moving the sweep
    run_dir: str  # absolute path at summary time
    status: str
    overrides: list[str]
    params: dict[str, str]
    objective: float | None
    metrics: dict[str, float | None]
    duration_sec: float | None
    error: str | None = None
    best: bool = False
    slurm_id: str | None = None  # "<array job>_<task>" for a SLURM array task (run.json)


_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C-accelerated *safe* loader


def read_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_YamlLoader)
    except (OSError, yaml.YAMLError):
        return None


def override_key_value(override: str) -> tuple[str, str]:
    """``("a.b", "1")`` for ``"+a.b=1"``: the key without Hydra's ``+``/``~`` prefix."""
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def discover_job_dirs(sweep_dir: Path, depth: int = 1) -> list[Path]:
    found: list[Path] = []
    try:
        children = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name not in _SKIP_DIRS)
    except OSError:
        return found
    for child in children:
        if any((child / name).is_file() for name in _TRACES):
            found.append(child)
        elif depth < 3:
            found += discover_job_dirs(child, depth + 1)
    return found


def read_job(job_dir: Path, sweep_dir: Path, objective: str | None, metrics: Sequence[str]) -> JobRow:
    record = read_json_object(job_dir / RUN_FILE) or {}
    result = read_json_object(job_dir / RESULT_FILE)
    job_status = read_json_object(job_dir / JOB_STATUS_FILE) or {}
    # JSON first: parsing YAML dominates the cost of a summary, which is rebuilt after every job
    overrides = record.get("overrides") or job_status.get("overrides")
    if not isinstance(overrides, list) or not overrides:
        overrides = read_yaml(job_dir / ".hydra" / "overrides.yaml")
    overrides = [str(o) for o in overrides] if isinstance(overrides, list) else []
    status, error = _status_and_error(record, result, job_status)
    durations = [source.get("duration_sec") for source in (record, result or {}, job_status)]
    return JobRow(
        num=_job_num(job_dir, record, job_status),
        job_dir=str(job_dir.relative_to(sweep_dir)) if job_dir.is_relative_to(sweep_dir) else str(job_dir),
        run_dir=str(job_dir.resolve()),
        status=status,
        overrides=overrides,
        params=dict(override_key_value(o) for o in overrides),
        objective=_objective_value(record, result, job_status, objective),
        metrics={m: finite_or_none(dotted_get(result, m)) for m in metrics} if result else {},
        duration_sec=next((x for v in durations if (x := finite_or_none(v)) is not None), None),
        error=error,
        slurm_id=_slurm_id(record),
    )


def _job_num(job_dir: Path, record: Mapping[str, Any], job_status: Mapping[str, Any]) -> int | None:
    for value in (record.get("job_num"), job_status.get("num")):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    if job_dir.name.isdigit():
        return int(job_dir.name)
    num = dotted_get(read_yaml(job_dir / ".hydra" / "hydra.yaml"), "hydra.job.num")
    return num if isinstance(num, int) else None


def _slurm_id(record: Mapping[str, Any]) -> str | None:
    array, task = record.get("slurm_array_job_id"), record.get("slurm_array_task_id")
    if array is not None and task is not None:
        return f"{array}_{task}"
    return str(record["slurm_job_id"]) if record.get("slurm_job_id") else None


def _status_and_error(
    record: Mapping[str, Any], result: Mapping[str, Any] | None, job_status: Mapping[str, Any]
) -> tuple[str, str | None]:
    """The most severe status any source reports (a job Hydra saw raise is failed whatever run.json says)."""
    words = [_STATUS_WORDS.get(str(source.get("status", "")).lower()) for source in (record, job_status)]
    candidates = [w for w in words if w is not None] + ([OK] if result is not None else [])
    status = max(candidates, key=_SEVERITY.__getitem__) if candidates else INCOMPLETE
    if status == OK:
        return status, None
    error = None
    for source in (record, job_status):
        message, kind = source.get("error"), source.get("error_type")
        if message:
            kind = str(kind).removeprefix("builtins.") if kind else None
            error = f"{kind}: {message}" if kind and not str(message).startswith(kind) else str(message)
            break
    if status == FAILED and error is not None and _DIVERGENCE_HINTS.search(error):
        status = DIVERGED
    return status, error


def _objective_value(
    record: Mapping[str, Any],
    result: Mapping[str, Any] | None,
    job_status: Mapping[str, Any],
    objective: str | None,
) -> float | None:
    own = finite_or_none(record.get("objective_value"))
    if own is not None and (objective is None or record.get("objective") in (None, objective)):
        return own  # the runner's own reading, unless the report asks for a different key
    found = finite_or_none(dotted_get(result, objective)) if objective else None
    return found if found is not None else finite_or_none(job_status.get("return_value"))


def objective_setting(job_dirs: Iterable[Path]) -> tuple[str | None, str | None]:
    """(objective key, mode) from the first job's saved config (the report CLI has no Hydra config)."""
    for job_dir in job_dirs:
        cfg = read_yaml(job_dir / ".hydra" / "config.yaml")
        if isinstance(cfg, Mapping) and cfg.get("objective"):
            mode = cfg.get("objective_mode")
            return str(cfg["objective"]), str(mode) if mode else None
        record = read_json_object(job_dir / RUN_FILE) or {}
        if isinstance(record.get("objective"), str):  # run.json records the key, not the mode
            return record["objective"], None
    return None, None


class SweepReportError(ValueError):
    """A directory that cannot be summarised (missing, or holding no job directories)."""


@dataclass
class SeedGroup:
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


def existing_sweep_dir(sweep_dir: str | Path) -> Path:
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
    metric_keys = list(SWEEP_METRICS if metrics is None else metrics)  # shown if some job holds them
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
    counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
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
    order = list(dict.fromkeys(k for row in rows for k in row.params))
    return [
        k
        for k in order
        if not k.startswith("hydra.") and len({r.params.get(k) for r in rows if r.overrides}) > 1
    ]


def _best(items: Sequence[Any], mode: str, score: Any) -> Any:
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
    """The jobs Hydra's basic sweeper makes of ``arguments`` (a later override of a key replaces one)."""
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
