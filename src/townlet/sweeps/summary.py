"""Sweep summaries: one table per multirun, rebuilt from what each job left on disk.

Why from disk: a sweep's jobs may run in this process (basic launcher), in loky workers (joblib), in
submitit processes or on a SLURM node, and the sweep may die half-way. The only thing all of those share
is the sweep directory, so the summary is a pure function of it: every job dir's ``run.json`` /
``result.json`` (written by the runner), its ``.hydra/overrides.yaml`` and the small ``job_status.json``
that :class:`SweepSummaryCallback` drops after each job (it carries the error of a job that raised before
the runner could record it). ``townlet-sweep-report <sweep dir>`` calls the same :func:`write_summary`.

Hydra's basic sweeper stops before ``on_multirun_end`` when a job fails, so the callback refreshes the
summary after every job too (under a file lock, files replaced atomically): the summary is always current.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import statistics
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from townlet.runs.atomic import atomic_write_json, atomic_write_text, finite_or_none

log = logging.getLogger(__name__)

SUMMARY_STEM = "sweep_summary"
JOB_STATUS_FILE = "job_status.json"
RUN_RECORD_FILE = "run.json"
RESULT_FILE = "result.json"
LOCK_FILE = ".sweep_summary.lock"

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

OK, FAILED, DIVERGED, INCOMPLETE = "ok", "failed", "diverged", "incomplete"
_STATUS_WORDS: dict[str, str] = {
    "ok": OK,
    "completed": OK,
    "complete": OK,
    "success": OK,
    "succeeded": OK,
    "finished": OK,
    "done": OK,
    "failed": FAILED,
    "fail": FAILED,
    "error": FAILED,
    "crashed": FAILED,
    "diverged": DIVERGED,
    "running": INCOMPLETE,
    "started": INCOMPLETE,
    "pending": INCOMPLETE,
    "interrupted": INCOMPLETE,
}
_SEVERITY = {DIVERGED: 3, FAILED: 2, OK: 1, INCOMPLETE: 0}
# A failure whose error names one of these is shown as "diverged" (the runner raises on a NaN objective).
_DIVERGENCE_HINTS = re.compile(r"diverg|non-?finite|\bnan\b", re.IGNORECASE)
_SKIP_DIRS = {".hydra", ".submitit", "checkpoints", "__pycache__"}


class SweepReportError(ValueError):
    """A directory that cannot be summarised (missing, or holding no job directories)."""


# --------------------------------------------------------------------------------------------- rows


@dataclass
class JobRow:
    """One job of the sweep as the summary shows it."""

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------ helpers


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object, or None when absent/corrupt (a half-finished job must not break the report)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_YamlLoader)  # C-accelerated *safe* loader
    except (OSError, yaml.YAMLError):
        return None


def _dotted_get(data: Any, key: str) -> Any:
    cur = data
    for part in key.split("."):
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        else:
            return None
    return cur


def _override_key_value(override: str) -> tuple[str, str]:
    key, sep, value = override.partition("=")
    key = key.lstrip("+~")
    return key, value if sep else ""


def _first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------- discovery


def discover_job_dirs(sweep_dir: Path) -> list[Path]:
    """Directories below ``sweep_dir`` (up to 3 levels) that hold a Hydra job's traces."""
    found: list[Path] = []

    def visit(path: Path, depth: int) -> None:
        try:
            children = sorted(p for p in path.iterdir() if p.is_dir() and p.name not in _SKIP_DIRS)
        except OSError:
            return
        for child in children:
            if _is_job_dir(child):
                found.append(child)
            elif depth < 3:
                visit(child, depth + 1)

    visit(sweep_dir, 1)
    return found


def _is_job_dir(path: Path) -> bool:
    return any(
        (path / name).is_file()
        for name in (".hydra/overrides.yaml", RUN_RECORD_FILE, RESULT_FILE, JOB_STATUS_FILE)
    )


def _job_num(job_dir: Path, record: Mapping[str, Any], status: Mapping[str, Any] | None) -> int | None:
    for value in (record.get("job_num"), (status or {}).get("num")):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    if job_dir.name.isdigit():
        return int(job_dir.name)
    hydra_cfg = _read_yaml(job_dir / ".hydra" / "hydra.yaml")
    num = _dotted_get(hydra_cfg, "hydra.job.num")
    return num if isinstance(num, int) else None


# ------------------------------------------------------------------------------------------ reading


def read_job(job_dir: Path, sweep_dir: Path, objective: str | None, metrics: Sequence[str]) -> JobRow:
    """Fold one job's files into a :class:`JobRow`; missing files degrade to ``incomplete``."""
    record = _read_json(job_dir / RUN_RECORD_FILE) or {}
    result = _read_json(job_dir / RESULT_FILE)
    job_status = _read_json(job_dir / JOB_STATUS_FILE)

    # JSON first (the runner and the callback both record Hydra's task overrides): parsing YAML
    # dominates the cost of a summary, which is rebuilt after every job.
    overrides = record.get("overrides") or (job_status or {}).get("overrides")
    if not isinstance(overrides, list) or not overrides:
        overrides = _read_yaml(job_dir / ".hydra" / "overrides.yaml")
    overrides = [str(o) for o in overrides] if isinstance(overrides, list) else []

    status, error = _status_and_error(record, result, job_status)
    obj_value = _objective_value(record, result, job_status, objective)
    metric_values = {m: finite_or_none(_dotted_get(result, m)) for m in metrics} if result else {}
    duration = _first_finite(
        record.get("duration_sec"),
        (result or {}).get("duration_sec"),
        (job_status or {}).get("duration_sec"),
    )
    try:
        rel = str(job_dir.relative_to(sweep_dir))
    except ValueError:
        rel = str(job_dir)
    return JobRow(
        num=_job_num(job_dir, record, job_status),
        job_dir=rel,
        run_dir=str(job_dir.resolve()),
        status=status,
        overrides=overrides,
        params=dict(_override_key_value(o) for o in overrides),
        objective=obj_value,
        metrics=metric_values,
        duration_sec=duration,
        error=error,
    )


def _first_finite(*values: Any) -> float | None:
    for value in values:
        out = finite_or_none(value)
        if out is not None:
            return out
    return None


def _status_and_error(
    record: Mapping[str, Any], result: Mapping[str, Any] | None, job_status: Mapping[str, Any] | None
) -> tuple[str, str | None]:
    """The most severe status any source reports (a job Hydra saw raise is failed whatever run.json says)."""
    candidates: list[str] = []
    for source in (record, job_status or {}):
        word = _STATUS_WORDS.get(str(source.get("status", "")).lower())
        if word is not None:
            candidates.append(word)
    if result is not None:
        candidates.append(OK)
    status = max(candidates, key=_SEVERITY.__getitem__) if candidates else INCOMPLETE
    error = None
    if status in (FAILED, DIVERGED, INCOMPLETE):
        for source in (record, job_status or {}):
            message, kind = source.get("error"), source.get("error_type")
            if message:
                kind = str(kind).removeprefix("builtins.") if kind else None
                prefixed = kind and not str(message).startswith(kind)
                error = f"{kind}: {message}" if prefixed else str(message)
                break
        if status == FAILED and error is not None and _DIVERGENCE_HINTS.search(error):
            status = DIVERGED
    return status, error


def _objective_value(
    record: Mapping[str, Any],
    result: Mapping[str, Any] | None,
    job_status: Mapping[str, Any] | None,
    objective: str | None,
) -> float | None:
    value = finite_or_none(record.get("objective_value"))
    if value is not None and (objective is None or record.get("objective") in (None, objective)):
        return value  # the runner's own reading, unless the report asks for a different key
    if objective and result is not None:
        value = finite_or_none(_dotted_get(result, objective))
        if value is not None:
            return value
    return finite_or_none((job_status or {}).get("return_value"))


def _objective_setting(job_dirs: Iterable[Path]) -> tuple[str | None, str | None]:
    """(objective key, mode) from the first job's saved config: the report CLI has no Hydra config."""
    for job_dir in job_dirs:
        cfg = _read_yaml(job_dir / ".hydra" / "config.yaml")
        if isinstance(cfg, Mapping) and cfg.get("objective"):
            mode = cfg.get("objective_mode")
            return str(cfg["objective"]), str(mode) if mode else None
        record = _read_json(job_dir / RUN_RECORD_FILE) or {}
        if isinstance(record.get("objective"), str):  # run.json records the key, not the mode
            return record["objective"], None
    return None, None


# -------------------------------------------------------------------------------------- aggregation


def _existing_sweep_dir(sweep_dir: str | Path) -> Path:
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
    root = _existing_sweep_dir(sweep_dir)
    job_dirs = discover_job_dirs(root)
    if not job_dirs:
        raise SweepReportError(
            f"{root} holds no job directories (no */.hydra/overrides.yaml, run.json or result.json); "
            "pass the sweep folder itself (the one with multirun.yaml), not a job or run folder"
        )
    saved_objective, saved_mode = _objective_setting(job_dirs)
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
    cfg = _read_yaml(sweep_dir / "multirun.yaml")
    sweeper = str(_dotted_get(cfg, "hydra.sweeper._target_") or "")
    if not sweeper.endswith("BasicSweeper"):
        return None, []
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        params = _dotted_get(cfg, "hydra.sweeper.params") or {}
        arguments = [f"{k}={v}" for k, v in params.items()]
        arguments += [str(o) for o in _dotted_get(cfg, "hydra.overrides.task") or []]
        parsed = OverridesParser.create().parse_overrides(arguments)
        grid = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    except Exception as exc:  # an unparsable grid only costs the "missing jobs" line
        log.debug("could not expand the sweep grid: %s", exc)
        return None, []
    seen = [{_override_key_value(o) for o in r.overrides} for r in rows]
    missing = [job for job in grid if {_override_key_value(o) for o in job} not in seen]
    return len(grid), missing


def _optuna_results(sweep_dir: Path) -> dict[str, Any] | None:
    data = _read_yaml(sweep_dir / "optimization_results.yaml")
    return dict(data) if isinstance(data, Mapping) else None


# ---------------------------------------------------------------------------------------- rendering


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _fmt_pm(mean: float | None, std: float | None) -> str:
    return "" if mean is None else f"{mean:.4g} ± {std or 0.0:.3g}"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_value(text: str) -> str:
    """Optuna's 0.0006466422717414558 reads as 0.0006466 in the table (csv/json keep every digit)."""
    if len(text) > 8:
        try:
            return f"{float(text):.4g}"
        except ValueError:
            pass
    return _md_cell(text)


def _axes_text(row: JobRow, axes: Sequence[str]) -> str:
    """The swept values of a job (all its overrides when nothing was swept)."""
    if not axes:
        return " ".join(row.overrides)
    return " ".join(f"{a}={_md_value(row.params[a])}" for a in axes if a in row.params)


def render_markdown(summary: SweepSummary) -> str:
    """A human-readable report: header, one row per job, failures, seed statistics."""
    c = summary.counts
    lines = [f"# Sweep summary: `{summary.sweep_dir}`", ""]
    objective = f"`{summary.objective}` ({summary.objective_mode})" if summary.objective else "(none)"
    lines.append(f"- objective: {objective}")
    jobs = f"- jobs: {c['total']} found"
    if summary.expected_jobs is not None:
        jobs += f" of {summary.expected_jobs} expected"
    jobs += f" — {c[OK]} ok, {c[FAILED]} failed, {c[DIVERGED]} diverged, {c[INCOMPLETE]} incomplete"
    lines.append(jobs)
    best = next((r for r in summary.rows if r.best), None)
    if best is not None:
        lines.append(f"- best: job {best.num} ({_axes_text(best, summary.axes)}) → {_fmt(best.objective)}")
    if summary.optuna:
        params = summary.optuna.get("best_params") or {}
        shown = " ".join(f"{k}={_md_value(str(v))}" for k, v in params.items())
        best_value = finite_or_none(summary.optuna.get("best_value"))
        lines.append(f"- optuna: best_value {_fmt(best_value)} ({shown})")
    lines.append(f"- generated: {summary.generated_at}")
    lines.append("")

    labels = [m.removeprefix("evaluation.") for m in summary.metrics]
    head = ["#", "status", *summary.axes, "objective", *labels, "duration s", "run dir"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for row in summary.rows:
        status = f"**{row.status} (best)**" if row.best else row.status
        cells = [
            "" if row.num is None else str(row.num),
            status,
            *(_md_value(row.params.get(a, "")) for a in summary.axes),
            _fmt(row.objective),
            *(_fmt(row.metrics.get(m)) for m in summary.metrics),
            _fmt(row.duration_sec),
            _md_cell(row.job_dir),
        ]
        lines.append("| " + " | ".join(cells) + " |")

    failures = [r for r in summary.rows if r.status != OK]
    if failures:
        lines += ["", "## Failed or unfinished jobs", ""]
        for row in failures:
            why = _first_line(row.error) if row.error else "no error recorded"
            lines.append(f"- job {row.num} [{row.status}] `{_axes_text(row, summary.axes)}`: {_md_cell(why)}")
    if summary.missing_overrides:
        lines += ["", "## Jobs never started", ""]
        lines += [f"- `{' '.join(job)}`" for job in summary.missing_overrides]

    if summary.seed_groups:
        lines += ["", "## Mean ± std over seeds", ""]
        other = [a for a in summary.axes if a != "seed"]
        head = [*other, "seeds ok", "objective", *labels]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for group in summary.seed_groups:
            objective_cell = _fmt_pm(group.objective_mean, group.objective_std)
            cells = [
                *(_md_value(group.params.get(a, "")) for a in other),
                f"{group.n_ok}/{group.n}",
                f"**{objective_cell} (best)**" if group.best else objective_cell,
                *(_fmt_pm(group.metrics_mean.get(m), group.metrics_std.get(m)) for m in summary.metrics),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_csv(summary: SweepSummary) -> str:
    """One line per job; swept axes and metrics as their own columns for spreadsheets/pandas."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "num",
            "status",
            "best",
            "objective",
            *summary.axes,
            *summary.metrics,
            "duration_sec",
            "run_dir",
            "overrides",
            "error",
        ]
    )
    for row in summary.rows:
        writer.writerow(
            [
                "" if row.num is None else row.num,
                row.status,
                int(row.best),
                _csv_num(row.objective),
                *(row.params.get(a, "") for a in summary.axes),
                *(_csv_num(row.metrics.get(m)) for m in summary.metrics),
                _csv_num(row.duration_sec),
                row.run_dir,
                " ".join(row.overrides),
                row.error or "",
            ]
        )
    return buffer.getvalue()


def _csv_num(value: float | None) -> str:
    return "" if value is None else repr(value)


def write_summary(
    sweep_dir: str | Path,
    *,
    objective: str | None = None,
    mode: str | None = None,
    metrics: Sequence[str] | None = None,
) -> SweepSummary:
    """Build and write ``sweep_summary.{json,csv,md}``; a lock keeps concurrent jobs from interleaving."""
    from filelock import FileLock

    root = _existing_sweep_dir(sweep_dir)  # checked before the lock, which would create the folder
    with FileLock(str(root / LOCK_FILE), timeout=120):
        summary = build_summary(root, objective=objective, mode=mode, metrics=metrics)
        atomic_write_json(root / f"{SUMMARY_STEM}.json", summary.to_dict())
        atomic_write_text(root / f"{SUMMARY_STEM}.csv", render_csv(summary))
        atomic_write_text(root / f"{SUMMARY_STEM}.md", render_markdown(summary))
    return summary


# ----------------------------------------------------------------------------------------- callback


def _is_multirun(config: DictConfig) -> bool:
    return str(OmegaConf.select(config, "hydra.mode", default="")).endswith("MULTIRUN")


def _select_str(config: DictConfig, key: str) -> str | None:
    try:
        value = OmegaConf.select(config, key, default=None)
    except Exception:  # an unresolvable interpolation must not cost the summary
        return None
    return None if value is None else str(value)


class SweepSummaryCallback(Callback):
    """Hydra callback: ``job_status.json`` after each multirun job, the sweep summary after each job
    (``refresh_each_job``) and once more at the end of the multirun."""

    def __init__(self, metrics: Sequence[str] | None = None, refresh_each_job: bool = True) -> None:
        self.metrics = list(metrics) if metrics is not None else None
        self.refresh_each_job = refresh_each_job
        self._started: float | None = None

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._started = time.perf_counter()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if not _is_multirun(config):
            return
        output_dir = _select_str(config, "hydra.runtime.output_dir")
        if output_dir:
            try:
                self._write_job_status(Path(output_dir), config, job_return)
            except Exception as exc:
                log.warning("could not write %s in %s: %s", JOB_STATUS_FILE, output_dir, exc)
        if self.refresh_each_job:
            self._refresh(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        summary = self._refresh(config)
        if summary is not None:
            log.info("sweep summary: %s", Path(summary.sweep_dir) / f"{SUMMARY_STEM}.md")

    def _write_job_status(self, output_dir: Path, config: DictConfig, job_return: Any) -> None:
        failed = str(getattr(job_return, "status", "")).endswith("FAILED")
        raw = getattr(job_return, "_return_value", None)  # .return_value re-raises a failure
        payload: dict[str, Any] = {
            "num": OmegaConf.select(config, "hydra.job.num", default=None),
            "status": "failed" if failed else "completed",
            "overrides": list(getattr(job_return, "overrides", None) or []),
            "return_value": None if failed else finite_or_none(raw),
            "duration_sec": None if self._started is None else time.perf_counter() - self._started,
            "pid": os.getpid(),
        }
        if failed and isinstance(raw, BaseException):
            payload["error"] = f"{type(raw).__name__}: {raw}"
            payload["traceback"] = "".join(traceback.format_exception(raw)[-6:])
        atomic_write_json(output_dir / JOB_STATUS_FILE, payload)

    def _refresh(self, config: DictConfig) -> SweepSummary | None:
        sweep_dir = _select_str(config, "hydra.sweep.dir")
        if not sweep_dir or not Path(sweep_dir).is_dir():
            return None
        try:
            return write_summary(
                sweep_dir,
                objective=_select_str(config, "objective"),
                mode=_select_str(config, "objective_mode"),
                metrics=self.metrics,
            )
        except Exception as exc:  # a summary problem must never fail the sweep itself
            log.warning("could not write the sweep summary in %s: %s", sweep_dir, exc)
            return None
