"""A :class:`SweepSummary` as markdown (people) and csv (spreadsheets), and writing all three files."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from townlet.runs.atomic import atomic_write_json, atomic_write_text, finite_or_none
from townlet.sweeps.aggregate import SweepSummary, build_summary, existing_sweep_dir
from townlet.sweeps.jobs import DIVERGED, FAILED, INCOMPLETE, OK, JobRow

SUMMARY_STEM = "sweep_summary"
LOCK_FILE = ".sweep_summary.lock"

log = logging.getLogger(__name__)


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


def _first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _axes_text(row: JobRow, axes: Sequence[str]) -> str:
    """The swept values of a job (all its overrides when nothing was swept)."""
    if not axes:
        return " ".join(row.overrides)
    return " ".join(f"{a}={_md_value(row.params[a])}" for a in axes if a in row.params)


def _table_head(head: Sequence[str]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]


def _metric_labels(summary: SweepSummary) -> list[str]:
    return [m.removeprefix("evaluation.") for m in summary.metrics]


def render_markdown(summary: SweepSummary) -> str:
    """A human-readable report: header, one row per job, failures, seed statistics."""
    lines = _md_header(summary)
    lines += _md_jobs(summary)
    lines += _md_problems(summary)
    lines += _md_seed_groups(summary)
    lines += _md_plots(summary)
    return "\n".join(lines) + "\n"


def _md_header(summary: SweepSummary) -> list[str]:
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
    return lines


def _md_jobs(summary: SweepSummary) -> list[str]:
    slurm = any(r.slurm_id for r in summary.rows)  # a SLURM sweep: the task ids, for squeue/sacct/logs
    lines = _table_head(
        ["#", "status", *summary.axes, "objective", *_metric_labels(summary), "duration s", "run dir"]
        + (["slurm id"] if slurm else [])
    )
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
        ] + ([row.slurm_id or ""] if slurm else [])
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _md_problems(summary: SweepSummary) -> list[str]:
    """Failed or unfinished jobs with their error, and grid jobs that never started."""
    lines: list[str] = []
    failures = [r for r in summary.rows if r.status != OK]
    if failures:
        lines += ["", "## Failed or unfinished jobs", ""]
        for row in failures:
            why = _first_line(row.error) if row.error else "no error recorded"
            lines.append(f"- job {row.num} [{row.status}] `{_axes_text(row, summary.axes)}`: {_md_cell(why)}")
    if summary.missing_overrides:
        lines += ["", "## Jobs never started", ""]
        lines += [f"- `{' '.join(job)}`" for job in summary.missing_overrides]
    return lines


def _md_seed_groups(summary: SweepSummary) -> list[str]:
    if not summary.seed_groups:
        return []
    other = [a for a in summary.axes if a != "seed"]
    lines = ["", "## Mean ± std over seeds", ""]
    lines += _table_head([*other, "seeds ok", "objective", *_metric_labels(summary)])
    for group in summary.seed_groups:
        objective_cell = _fmt_pm(group.objective_mean, group.objective_std)
        cells = [
            *(_md_value(group.params.get(a, "")) for a in other),
            f"{group.n_ok}/{group.n}",
            f"**{objective_cell} (best)**" if group.best else objective_cell,
            *(_fmt_pm(group.metrics_mean.get(m), group.metrics_std.get(m)) for m in summary.metrics),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _md_plots(summary: SweepSummary) -> list[str]:
    """Links to the PNGs beside the markdown (relative, so the sweep dir can move)."""
    if not summary.plots:
        return []
    lines = ["", "## Plots", ""]
    for name in summary.plots:
        lines += [f"![{name.removesuffix('.png')}]({name})", ""]
    return lines[:-1]


def render_csv(summary: SweepSummary) -> str:
    """One line per job; swept axes and metrics as their own columns for spreadsheets/pandas."""
    slurm = any(r.slurm_id for r in summary.rows)
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
        + (["slurm_id"] if slurm else [])
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
            + ([row.slurm_id or ""] if slurm else [])
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
    plots: bool | Literal["when_complete"] = True,
) -> SweepSummary:
    """Build and write ``sweep_summary.{json,csv,md}`` and, with ``plots``, the sweep's PNGs (linked
    from the markdown); a lock keeps concurrent jobs from interleaving.

    ``plots="when_complete"`` draws them only once every job of a grid has finished: drawing takes
    about a second, too much to repeat after every job of a sweep, and the last job's refresh is the
    only one whose picture lasts (the basic sweeper never reaches ``on_multirun_end`` after a failure).
    """
    from filelock import FileLock

    root = existing_sweep_dir(sweep_dir)  # checked before the lock, which would create the folder
    with FileLock(str(root / LOCK_FILE), timeout=120):
        summary = build_summary(root, objective=objective, mode=mode, metrics=metrics)
        if plots is True or (plots == "when_complete" and sweep_complete(summary)):
            summary.plots = _draw_plots(summary, root)
        atomic_write_json(root / f"{SUMMARY_STEM}.json", summary.to_dict())
        atomic_write_text(root / f"{SUMMARY_STEM}.csv", render_csv(summary))
        atomic_write_text(root / f"{SUMMARY_STEM}.md", render_markdown(summary))
    return summary


def sweep_complete(summary: SweepSummary) -> bool:
    """Every job of the expanded grid has a row and none is still running (a grid sweep only)."""
    expected = summary.expected_jobs
    return expected is not None and summary.counts["total"] >= expected and summary.counts[INCOMPLETE] == 0


def _draw_plots(summary: SweepSummary, root: Path) -> list[str]:
    """The plots are a convenience: any failure (no matplotlib, odd data) is logged, never raised."""
    try:
        from townlet.sweeps.plots import write_sweep_plots

        return write_sweep_plots(summary, root)
    except Exception as exc:
        log.warning("sweep plots: could not draw the plots in %s (%s)", root, exc)
        return []
