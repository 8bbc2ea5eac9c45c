"""A :class:`SweepSummary` as markdown (people), csv (spreadsheets) and plain text (the terminal)."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock

from townlet.runs.atomic import atomic_write_json, atomic_write_text, finite_or_none
from townlet.sweeps import plots as sweep_plots
from townlet.sweeps.jobs import (
    INCOMPLETE,
    OK,
    STATUSES,
    JobRow,
    SweepReportError,
    SweepSummary,
    build_summary,
    existing_sweep_dir,
)

SUMMARY_STEM = "sweep_summary"
LOCK_FILE = ".sweep_summary.lock"

log = logging.getLogger(__name__)


def fmt(value: float | None, none: str = "") -> str:
    return none if value is None else f"{value:.4g}"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_value(text: str) -> str:
    """Optuna's 0.0006466422717414558 reads as 0.0006466 in the table (csv/json keep every digit)."""
    number = finite_or_none(text) if len(text) > 8 else None
    return _md_cell(text) if number is None else fmt(number)


def _axes_text(row: JobRow, axes: Sequence[str]) -> str:
    if not axes:
        return " ".join(row.overrides)
    return " ".join(f"{a}={_md_value(row.params[a])}" for a in axes if a in row.params)


def _marked(text: str, best: bool) -> str:
    return f"**{text} (best)**" if best else text


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(row) + " |" for row in (head, *rows)]
    return [lines[0], "|" + "---|" * len(head), *lines[1:]]


def render_markdown(summary: SweepSummary) -> str:
    parts = (_md_header, _md_jobs, _md_problems, _md_seed_groups, _md_plots)
    return "\n".join(line for part in parts for line in part(summary)) + "\n"


def _md_header(summary: SweepSummary) -> list[str]:
    c, best = summary.counts, next((r for r in summary.rows if r.best), None)
    objective = f"`{summary.objective}` ({summary.objective_mode})" if summary.objective else "(none)"
    expected = f" of {summary.expected_jobs} expected" if summary.expected_jobs is not None else ""
    lines = [
        f"# Sweep summary: `{summary.sweep_dir}`",
        "",
        f"- objective: {objective}",
        f"- jobs: {c['total']} found{expected} — " + ", ".join(f"{c[s]} {s}" for s in STATUSES),
    ]
    if best is not None:
        lines.append(f"- best: job {best.num} ({_axes_text(best, summary.axes)}) → {fmt(best.objective)}")
    if summary.optuna:
        params = summary.optuna.get("best_params") or {}
        shown = " ".join(f"{k}={_md_value(str(v))}" for k, v in params.items())
        lines.append(
            f"- optuna: best_value {fmt(finite_or_none(summary.optuna.get('best_value')))} ({shown})"
        )
    return [*lines, f"- generated: {summary.generated_at}", ""]


def _metric_labels(summary: SweepSummary) -> list[str]:
    return [m.removeprefix("evaluation.") for m in summary.metrics]


def _md_jobs(summary: SweepSummary) -> list[str]:
    slurm = any(r.slurm_id for r in summary.rows)  # a SLURM sweep: the task ids, for squeue/sacct/logs
    head = ["#", "status", *summary.axes, "objective", *_metric_labels(summary), "duration s", "run dir"]
    rows = [
        [
            "" if row.num is None else str(row.num),
            _marked(row.status, row.best),
            *(_md_value(row.params.get(a, "")) for a in summary.axes),
            fmt(row.objective),
            *(fmt(row.metrics.get(m)) for m in summary.metrics),
            fmt(row.duration_sec),
            _md_cell(row.job_dir),
        ]
        + ([row.slurm_id or ""] if slurm else [])
        for row in summary.rows
    ]
    return _table(head + (["slurm id"] if slurm else []), rows)


def _md_problems(summary: SweepSummary) -> list[str]:
    lines: list[str] = []
    failures = [r for r in summary.rows if r.status != OK]
    if failures:
        lines += ["", "## Failed or unfinished jobs", ""]
        for row in failures:
            why = (row.error or "").strip().splitlines()[:1] or ["no error recorded"]
            line = why[0] if len(why[0]) <= 300 else why[0][:299] + "…"
            lines.append(
                f"- job {row.num} [{row.status}] `{_axes_text(row, summary.axes)}`: {_md_cell(line)}"
            )
    if summary.missing_overrides:
        lines += ["", "## Jobs never started", ""]
        lines += [f"- `{' '.join(job)}`" for job in summary.missing_overrides]
    return lines


def _md_seed_groups(summary: SweepSummary) -> list[str]:
    if not summary.seed_groups:
        return []

    def spread(mean: float | None, std: float | None) -> str:
        return "" if mean is None else f"{mean:.4g} ± {std or 0.0:.3g}"

    other = [a for a in summary.axes if a != "seed"]
    rows = [
        [
            *(_md_value(group.params.get(a, "")) for a in other),
            f"{group.n_ok}/{group.n}",
            _marked(spread(group.objective_mean, group.objective_std), group.best),
            *(spread(group.metrics_mean.get(m), group.metrics_std.get(m)) for m in summary.metrics),
        ]
        for group in summary.seed_groups
    ]
    head = [*other, "seeds ok", "objective", *_metric_labels(summary)]
    return ["", "## Mean ± std over seeds", "", *_table(head, rows)]


def _md_plots(summary: SweepSummary) -> list[str]:
    """Relative links, so the sweep dir can move."""
    lines = ["", "## Plots", ""] if summary.plots else []
    for name in summary.plots:
        lines += [f"![{name.removesuffix('.png')}]({name})", ""]
    return lines[:-1]


def render_csv(summary: SweepSummary) -> str:
    def num(value: float | None) -> str:
        return "" if value is None else repr(value)

    slurm = any(r.slurm_id for r in summary.rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    head = ["num", "status", "best", "objective", *summary.axes, *summary.metrics, "duration_sec", "run_dir"]
    writer.writerow([*head, "overrides", "error"] + (["slurm_id"] if slurm else []))
    for row in summary.rows:
        writer.writerow(
            [
                "" if row.num is None else row.num,
                row.status,
                int(row.best),
                num(row.objective),
                *(row.params.get(a, "") for a in summary.axes),
                *(num(row.metrics.get(m)) for m in summary.metrics),
                num(row.duration_sec),
                row.run_dir,
                " ".join(row.overrides),
                row.error or "",
            ]
            + ([row.slurm_id or ""] if slurm else [])
        )
    return buffer.getvalue()


def write_summary(
    sweep_dir: str | Path,
    *,
    objective: str | None = None,
    mode: str | None = None,
    metrics: Sequence[str] | None = None,
    plots: bool | Literal["when_complete"] = True,
) -> SweepSummary:
    """Write ``sweep_summary.{json,csv,md}`` and the PNGs under a lock; ``plots="when_complete"`` draws
    only once every grid job is over (too slow to repeat per job, and only the last picture lasts)."""
    root = existing_sweep_dir(sweep_dir)  # checked before the lock, which would create the folder
    for name in (LOCK_FILE, *(f"{SUMMARY_STEM}.{ext}" for ext in ("json", "csv", "md")), *sweep_plots.PNGS):
        if (root / name).is_symlink():  # the writers follow links; a copied sweep dir is anyone's
            raise SweepReportError(
                f"{root / name} is a symbolic link and a sweep report writes only its own files; remove it"
            )
    with FileLock(str(root / LOCK_FILE), timeout=120):
        summary = build_summary(root, objective=objective, mode=mode, metrics=metrics)
        expected, counts = summary.expected_jobs, summary.counts  # complete: every grid job is over
        complete = expected is not None and counts["total"] >= expected and counts[INCOMPLETE] == 0
        if plots is True or (plots == "when_complete" and complete):
            try:  # the plots are a convenience: a failure (odd data) is logged, never raised
                summary.plots = sweep_plots.write_sweep_plots(summary, root)
            except Exception as exc:
                log.warning("sweep plots: could not draw the plots in %s (%s)", root, exc)
        atomic_write_json(root / f"{SUMMARY_STEM}.json", asdict(summary))
        atomic_write_text(root / f"{SUMMARY_STEM}.csv", render_csv(summary))
        atomic_write_text(root / f"{SUMMARY_STEM}.md", render_markdown(summary))
    return summary


def sweep_report(sweep_dir: Path) -> dict[str, Any]:
    """Built, not written: a report never touches the directory."""
    data = asdict(build_summary(sweep_dir))
    names = [sweep_plots.OBJECTIVE_PNG, sweep_plots.CURVES_PNG, f"{SUMMARY_STEM}.md"]
    data["plots"] = [str(sweep_dir.resolve() / n) for n in names[:2] if (sweep_dir / n).is_file()]
    data["summary_file"] = str(sweep_dir.resolve() / names[2]) if (sweep_dir / names[2]).is_file() else None
    return {"kind": "sweep", **data}


def render_text(report: dict[str, Any]) -> str:
    counts = report["counts"]
    objective = f"{report['objective']} ({report['objective_mode']})" if report["objective"] else "(none)"
    expected = f" of {report['expected_jobs']} expected" if report["expected_jobs"] is not None else ""
    lines = [
        f"townlet-report: sweep {report['sweep_dir']}",
        f"  objective   {objective}",
        f"  jobs        {counts['total']}{expected}: " + ", ".join(f"{counts[s]} {s}" for s in STATUSES),
    ]
    axes, rows = report["axes"], report["rows"]
    best = next((r for r in rows if r["best"]), None)
    if best is not None:
        swept = " ".join(f"{a}={best['params'][a]}" for a in axes if a in best["params"])
        lines.append(f"  best        job {best['num']} ({swept}) -> {fmt(best['objective'], '-')}")
    head = ["#", "status", *axes, "objective", "seconds", "job dir"]
    table = [
        [
            "" if r["num"] is None else str(r["num"]),
            r["status"] + (" *" if r["best"] else ""),
            *(r["params"].get(a, "") for a in axes),
            fmt(r["objective"], "-"),
            fmt(r["duration_sec"], "-"),
            r["job_dir"],
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [head, *table]) for i in range(len(head))]
    lines += [
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [head, *table]
    ]
    lines += [f"  job {r['num']}: {r['error']}" for r in rows if r["error"]]
    for group in report["seed_groups"]:
        params = " ".join(f"{k}={v}" for k, v in group["params"].items()) or "all jobs"
        mean, std = group["objective_mean"], group["objective_std"]
        spread = "-" if mean is None else f"{fmt(mean)} ± {fmt(std, '-')}"
        lines.append(f"  over seeds  {params}: {spread} ({group['n_ok']}/{group['n']} ok)")
    lines.append("plots:" if report["plots"] else "plots: none yet (townlet-sweep-report DIR draws them)")
    lines += [f"  {p}" for p in report["plots"]]
    if report["summary_file"]:
        lines.append(f"summary: {report['summary_file']}")
    return "\n".join(lines) + "\n"
