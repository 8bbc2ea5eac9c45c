"""Sweep plots: the objective against every swept parameter, and every job's learning curve overlaid.

Why: the summary table says which job won; these two pictures say whether the win is larger than the
seed-to-seed spread (each seed a point, mean ± std per setting, ``seed`` treated as the replicate axis
and never as a parameter) and whether the runs were still improving when they stopped. They are drawn
from the same on-disk summary as the tables, so a killed sweep gets them from ``townlet-sweep-report``.
matplotlib is imported only here, with the Agg backend; the caller logs a failure and carries on.
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from townlet.runs.metrics import read_metrics
from townlet.runs.plots import collect_series, reference_returns, return_curves
from townlet.sweeps.aggregate import SweepSummary
from townlet.sweeps.jobs import OK, RESULT_FILE, JobRow, dotted_get, read_yaml

log = logging.getLogger(__name__)

OBJECTIVE_PNG = "sweep_objective.png"
CURVES_PNG = "sweep_learning_curves.png"
SEED_AXIS = "seed"
METRICS_FILE = "metrics.jsonl"
# When no job logged returns against agent-steps (BC), the first of these is overlaid per epoch instead.
FALLBACK_CURVE_KEYS: tuple[str, ...] = ("val_accuracy", "train_loss", "loss_total")
MAX_LEGEND = 20
MAX_TICKS = 8

Points = list[tuple[float, float]]


@dataclass
class Spread:
    """The objective of one setting of a panel's parameter over the seeds that ran it."""

    x: str  # the parameter's value as written in the override
    series: str  # the other non-seed swept values ("" when one parameter is swept)
    seeds: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0


@dataclass
class JobCurve:
    """One job's learning curve: training and evaluated return against agent-steps (or a fallback)."""

    label: str
    best: bool
    train: Points
    eval: Points


def panel_axes(summary: SweepSummary) -> list[str]:
    """The swept parameters that get a panel: every axis but ``seed`` (one panel over seeds if none)."""
    return [a for a in summary.axes if a != SEED_AXIS] or [""]


def objective_spreads(summary: SweepSummary) -> dict[str, list[Spread]]:
    """``{parameter: [Spread, ...]}``: finished jobs with an objective, grouped by that parameter's value
    and by the values of the other non-seed parameters, so the spread within a group is seeds only.

    When no setting of the others recurs across values of the parameter (a search sweeper draws every
    value afresh), one line per setting would be one point per line: the panel gets one series instead.
    """
    panels = panel_axes(summary)
    scored = [(r, float(r.objective)) for r in summary.rows if r.status == OK and r.objective is not None]
    out: dict[str, list[Spread]] = {}
    for axis in panels:
        others = [a for a in panels if a not in ("", axis)]
        spreads = _group(scored, axis, others)
        names = {s.series for s in spreads}
        if len(names) > 1 and len(names) == len(spreads):
            spreads = _group(scored, axis, [])
        out[axis] = spreads
    return out


def _group(scored: list[tuple[JobRow, float]], axis: str, others: Sequence[str]) -> list[Spread]:
    groups: dict[tuple[str, str], Spread] = {}
    for row, value in scored:
        x = row.params.get(axis, "") if axis else ""
        series = " ".join(f"{a}={row.params[a]}" for a in others if a in row.params)
        spread = groups.setdefault((x, series), Spread(x=x, series=series))
        spread.seeds.append(row.params.get(SEED_AXIS, "?"))
        spread.values.append(value)
    return list(groups.values())


def numeric_values(values: Sequence[str]) -> list[float] | None:
    """The values as floats when every one parses (and is finite), else None: the axis is categorical."""
    try:
        floats = [float(v) for v in values]
    except ValueError:
        return None
    return floats if floats and all(math.isfinite(v) for v in floats) else None


def job_curves(summary: SweepSummary) -> tuple[list[JobCurve], str]:
    """Every job's curve and the y quantity: ``return`` when any job logged returns against
    agent-steps (PPO, anneal), else the first fallback metric any job logged against its epochs (BC)."""
    records = {row.job_dir: _job_records(row) for row in summary.rows}
    curves: list[JobCurve] = []
    for row in summary.rows:
        returns = return_curves(records[row.job_dir])
        train, evals = _flatten(returns.get("train", {})), _flatten(returns.get("eval", {}))
        if train or evals:
            curves.append(JobCurve(_job_label(row, summary.axes), row.best, train, evals))
    if curves:
        return curves, "return"
    for key in FALLBACK_CURVE_KEYS:
        for row in summary.rows:
            points = _flatten(collect_series(records[row.job_dir]).get(key, {}))
            if points:
                curves.append(JobCurve(_job_label(row, summary.axes), row.best, points, []))
        if curves:
            return curves, key
    return [], ""


def _flatten(lines: dict[str, Points]) -> Points:
    """A job's stage-by-stage series as one line: its x values already run on across stages."""
    return sorted(point for points in lines.values() for point in points)


def _job_label(row: JobRow, axes: Sequence[str]) -> str:
    shown = " ".join(f"{a}={row.params[a]}" for a in axes if a in row.params)
    return f"#{row.num} {shown}".strip() + (" (best)" if row.best else "")


def _job_records(row: JobRow) -> list[dict[str, Any]]:
    """The job's metrics records; [] when it logged none or its file is unreadable (a killed job)."""
    job_dir = Path(row.run_dir)
    path = job_dir / METRICS_FILE
    if not path.exists():
        name = dotted_get(read_yaml(job_dir / ".hydra" / "config.yaml"), "logger.filename")
        path = job_dir / str(name) if name else path
    try:
        return list(read_metrics(path))
    except (OSError, ValueError) as exc:
        log.debug("sweep plots: skipping %s (%s)", path, exc)
        return []


def mean_references(summary: SweepSummary) -> dict[str, float]:
    """The scripted teacher's and random policy's returns, averaged over the jobs that evaluated them."""
    seen: dict[str, list[float]] = {}
    for row in summary.rows:
        try:
            result = json.loads((Path(row.run_dir) / RESULT_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for name, value in reference_returns(result).items():
            seen.setdefault(name, []).append(value)
    return {name: statistics.fmean(values) for name, values in seen.items()}


def write_sweep_plots(summary: SweepSummary, sweep_dir: str | Path) -> list[str]:
    """Draw the PNGs that have data into ``sweep_dir``; returns their file names (for the markdown)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root = Path(sweep_dir)
    written: list[str] = []
    spreads = objective_spreads(summary)
    if summary.objective and any(spreads.values()):
        fig = _objective_figure(plt, summary, spreads)
        _save(plt, fig, root / OBJECTIVE_PNG)
        written.append(OBJECTIVE_PNG)
    curves, quantity = job_curves(summary)
    if curves:
        references = mean_references(summary) if quantity == "return" else {}
        fig = _curves_figure(plt, curves, quantity, references, root.name)
        _save(plt, fig, root / CURVES_PNG)
        written.append(CURVES_PNG)
    return written


def _save(plt: Any, fig: Any, out: Path) -> None:
    """Atomic: a reader of the sweep dir (or a parallel job) never sees half a PNG."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight")
        tmp.replace(out)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)


def _objective_figure(plt: Any, summary: SweepSummary, spreads: dict[str, list[Spread]]) -> Any:
    axes_names = list(spreads)
    cols = min(3, len(axes_names))
    rows = math.ceil(len(axes_names) / cols)
    fig, grid = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    flat = list(grid.flat)
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, axis in zip(flat, axes_names, strict=False):
        _draw_objective_panel(ax, axis, spreads[axis], str(summary.objective), palette)
    for ax in flat[len(axes_names) :]:
        ax.set_visible(False)
    seeds = "seed" in summary.axes
    fig.suptitle(
        f"{summary.objective} ({summary.objective_mode}) per swept value"
        + ("; x: one seed, bar: mean ± std over seeds" if seeds else ""),
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


def _draw_objective_panel(
    ax: Any, axis: str, spreads: list[Spread], objective: str, palette: Sequence[str]
) -> None:
    series = list(dict.fromkeys(s.series for s in spreads))
    colours = {name: palette[i % len(palette)] for i, name in enumerate(series)}
    categories = list(dict.fromkeys(s.x for s in spreads))
    numeric = numeric_values(categories)
    coords = numeric if numeric is not None else [float(i) for i in range(len(categories))]
    positions = dict(zip(categories, coords, strict=True))
    for index, name in enumerate(series):
        members = sorted((s for s in spreads if s.series == name), key=lambda s: positions[s.x])
        shift = 0.0 if numeric else (index - (len(series) - 1) / 2) * 0.1
        xs = [positions[s.x] + shift for s in members]
        for x, spread in zip(xs, members, strict=True):
            dots = [x] * len(spread.values)
            ax.scatter(dots, spread.values, s=14, marker="x", alpha=0.8, color=colours[name], zorder=3)
        ax.errorbar(
            xs,
            [s.mean for s in members],
            yerr=[s.std for s in members],
            marker="o",
            markersize=5,
            capsize=3,
            linewidth=1.0,
            linestyle="-" if numeric else "none",
            color=colours[name],
            label=name or None,
        )
    if numeric is not None and min(numeric) > 0 and max(numeric) / min(numeric) >= 20:
        ax.set_xscale("log")
    if numeric is None or len(categories) <= MAX_TICKS:  # label the values as they were swept
        ax.set_xticks(coords, categories, fontsize=7, rotation=20)
        ax.minorticks_off()
    ax.set_xlabel(axis or "all jobs", fontsize=8)
    ax.set_ylabel(objective, fontsize=8)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=7)
    if len(series) > 1 and len(series) <= MAX_LEGEND:
        ax.legend(fontsize=6)


def _curves_figure(
    plt: Any, curves: list[JobCurve], quantity: str, references: dict[str, float], title: str
) -> Any:
    panels = [("train", "training episode return" if quantity == "return" else quantity)]
    if any(c.eval for c in curves):
        panels.append(("eval", "evaluated return (greedy policy)"))
    fig, grid = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 4.0), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(curves) <= 10 else "viridis")
    for ax, (kind, name) in zip(grid.flat, panels, strict=True):
        for index, curve in enumerate(curves):
            points = curve.train if kind == "train" else curve.eval
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            colour = cmap(index % 10 if len(curves) <= 10 else index / max(1, len(curves) - 1))
            marker = "D" if kind == "eval" else None
            width = 2.4 if curve.best else 1.1
            ax.plot(xs, ys, color=colour, linewidth=width, marker=marker, markersize=3, label=curve.label)
        for ref, value in references.items():
            style = "--" if ref.startswith("scripted") else ":"
            ax.axhline(value, color="black", linestyle=style, linewidth=1.0, label=f"{ref} {value:.2f}")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("agent-steps" if quantity == "return" else "epoch / iteration", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    if len(curves) <= MAX_LEGEND:
        grid.flat[-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"{title}: {len(curves)} jobs (thick line: best job)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig
