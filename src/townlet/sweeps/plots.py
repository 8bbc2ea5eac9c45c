"""Sweep plots: whether the win beats the seed-to-seed spread, and whether the runs still improved."""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from townlet.dto.metrics import LOSS_TOTAL_KEY, TRAIN_LOSS_KEY, VAL_ACCURACY_KEY
from townlet.runs.atomic import finite_or_none, read_json_object
from townlet.runs.metrics import read_metrics
from townlet.runs.plots import (
    collect_series,
    panels,
    pyplot,
    reference_returns,
    return_curves,
    save_png,
    style_axes,
)
from townlet.runs.rundir import METRICS_FILE, RESULT_FILE
from townlet.runs.sinks import dotted_get
from townlet.sweeps.jobs import OK, JobRow, SweepSummary, read_yaml

log = logging.getLogger(__name__)

OBJECTIVE_PNG = "sweep_objective.png"
CURVES_PNG = "sweep_learning_curves.png"
PNGS = (OBJECTIVE_PNG, CURVES_PNG)
SEED_AXIS = "seed"
# When no job logged returns against agent-steps (BC), the first of these is overlaid per epoch instead.
FALLBACK_CURVE_KEYS = (VAL_ACCURACY_KEY, TRAIN_LOSS_KEY, LOSS_TOTAL_KEY)
MAX_LEGEND = 20
MAX_TICKS = 8

Points = list[tuple[float, float]]


@dataclass
class Spread:
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
    label: str
    best: bool
    train: Points
    eval: Points


def objective_spreads(summary: SweepSummary) -> dict[str, list[Spread]]:
    """``{parameter: [Spread, ...]}``, grouped by the other non-seed parameters too so a spread is seeds
    only; where no setting of the others recurs (a search sweeper), one series per panel."""
    panel_axes = [a for a in summary.axes if a != SEED_AXIS] or [""]
    scored = [(r, float(r.objective)) for r in summary.rows if r.status == OK and r.objective is not None]

    def group(axis: str, others: Sequence[str]) -> list[Spread]:
        groups: dict[tuple[str, str], Spread] = {}
        for row, value in scored:
            x = row.params.get(axis, "") if axis else ""
            series = " ".join(f"{a}={row.params[a]}" for a in others if a in row.params)
            spread = groups.setdefault((x, series), Spread(x=x, series=series))
            spread.seeds.append(row.params.get(SEED_AXIS, "?"))
            spread.values.append(value)
        return list(groups.values())

    out: dict[str, list[Spread]] = {}
    for axis in panel_axes:
        spreads = group(axis, [a for a in panel_axes if a not in ("", axis)])
        names = {s.series for s in spreads}
        out[axis] = group(axis, []) if 1 < len(names) == len(spreads) else spreads
    return out


def numeric_values(values: Sequence[str]) -> list[float] | None:
    """The values as floats when every one parses, else None (a categorical axis)."""
    floats = [x for v in values if (x := finite_or_none(v)) is not None]
    return floats if values and len(floats) == len(values) else None


def job_curves(summary: SweepSummary) -> tuple[list[JobCurve], str]:
    """Every job's curve and the y quantity: ``return`` if any job logged it, else the first fallback."""
    records = {row.job_dir: _job_records(row) for row in summary.rows}

    def curve(row: JobRow, train: dict[str, Points], evals: dict[str, Points]) -> JobCurve | None:
        flat = [sorted(p for points in lines.values() for p in points) for lines in (train, evals)]
        shown = " ".join(f"{a}={row.params[a]}" for a in summary.axes if a in row.params)
        label = f"#{row.num} {shown}".strip() + (" (best)" if row.best else "")
        return JobCurve(label, row.best, *flat) if any(flat) else None

    returns = [(row, return_curves(records[row.job_dir])) for row in summary.rows]
    curves = [c for row, r in returns if (c := curve(row, r.get("train", {}), r.get("eval", {})))]
    if curves:
        return curves, "return"
    for key in FALLBACK_CURVE_KEYS:
        series = [(row, collect_series(records[row.job_dir]).get(key, {})) for row in summary.rows]
        if curves := [c for row, lines in series if (c := curve(row, lines, {}))]:
            return curves, key
    return [], ""


def _job_records(row: JobRow) -> list[dict[str, Any]]:
    path = Path(row.run_dir) / METRICS_FILE
    if not path.exists():  # a snapshot's single-logger form names its file in logger.filename
        name = dotted_get(read_yaml(path.parent / ".hydra" / "config.yaml"), "logger.filename")
        path = path.with_name(str(name)) if name else path
    try:
        return list(read_metrics(path))
    except (OSError, ValueError) as exc:
        log.debug("sweep plots: skipping %s (%s)", path, exc)
        return []


def mean_references(summary: SweepSummary) -> dict[str, float]:
    seen: dict[str, list[float]] = {}
    for row in summary.rows:
        for name, value in reference_returns(read_json_object(Path(row.run_dir) / RESULT_FILE)).items():
            seen.setdefault(name, []).append(value)
    return {name: statistics.fmean(values) for name, values in seen.items()}


def write_sweep_plots(summary: SweepSummary, sweep_dir: str | Path) -> list[str]:
    plt, root, written = pyplot(), Path(sweep_dir), []
    spreads = objective_spreads(summary)
    if summary.objective and any(spreads.values()):
        save_png(plt, _objective_figure(plt, summary, spreads), root / OBJECTIVE_PNG, bbox_inches="tight")
        written.append(OBJECTIVE_PNG)
    curves, quantity = job_curves(summary)
    if curves:
        references = mean_references(summary) if quantity == "return" else {}
        figure = _curves_figure(plt, curves, quantity, references, root.name)
        save_png(plt, figure, root / CURVES_PNG, bbox_inches="tight")
        written.append(CURVES_PNG)
    return written


def _objective_figure(plt: Any, summary: SweepSummary, spreads: dict[str, list[Spread]]) -> Any:
    fig, axes = panels(plt, len(spreads), 4.6, 3.4)
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, axis in zip(axes, spreads, strict=True):
        _draw_objective_panel(ax, axis, spreads[axis], str(summary.objective), palette)
    seeds = "; x: one seed, bar: mean ± std over seeds" if SEED_AXIS in summary.axes else ""
    fig.suptitle(f"{summary.objective} ({summary.objective_mode}) per swept value{seeds}", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


def _draw_objective_panel(
    ax: Any, axis: str, spreads: list[Spread], objective: str, palette: Sequence[str]
) -> None:
    series = list(dict.fromkeys(s.series for s in spreads))
    categories = list(dict.fromkeys(s.x for s in spreads))
    numeric = numeric_values(categories)
    coords = numeric if numeric is not None else [float(i) for i in range(len(categories))]
    positions = dict(zip(categories, coords, strict=True))
    for index, name in enumerate(series):
        colour = palette[index % len(palette)]
        members = sorted((s for s in spreads if s.series == name), key=lambda s: positions[s.x])
        shift = 0.0 if numeric else (index - (len(series) - 1) / 2) * 0.1
        xs = [positions[s.x] + shift for s in members]
        for x, spread in zip(xs, members, strict=True):
            ax.scatter(
                [x] * len(spread.values), spread.values, s=14, marker="x", alpha=0.8, color=colour, zorder=3
            )
        means, stds = [s.mean for s in members], [s.std for s in members]
        line = "-" if numeric else "none"
        style = {"marker": "o", "markersize": 5, "capsize": 3, "linewidth": 1.0, "linestyle": line}
        ax.errorbar(xs, means, yerr=stds, color=colour, label=name or None, **style)
    if numeric is not None and min(numeric) > 0 and max(numeric) / min(numeric) >= 20:
        ax.set_xscale("log")
    if numeric is None or len(categories) <= MAX_TICKS:  # label the values as they were swept
        ax.set_xticks(coords, categories, fontsize=7, rotation=20)
        ax.minorticks_off()
    style_axes(ax, "", axis or "all jobs", 9, ticks=7)
    ax.set_ylabel(objective, fontsize=8)
    if 1 < len(series) <= MAX_LEGEND:
        ax.legend(fontsize=6)


def _curves_figure(
    plt: Any, curves: list[JobCurve], quantity: str, references: dict[str, float], title: str
) -> Any:
    kinds = [("train", "training episode return" if quantity == "return" else quantity)]
    if any(c.eval for c in curves):
        kinds.append(("eval", "evaluated return (greedy policy)"))
    fig, grid = plt.subplots(1, len(kinds), figsize=(6.0 * len(kinds), 4.0), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(curves) <= 10 else "viridis")
    for ax, (kind, name) in zip(grid.flat, kinds, strict=True):
        for index, curve in enumerate(curves):
            points = curve.train if kind == "train" else curve.eval
            if points:
                colour = cmap(index % 10 if len(curves) <= 10 else index / max(1, len(curves) - 1))
                marker, width = ("D" if kind == "eval" else None), (2.4 if curve.best else 1.1)
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, color=colour, linewidth=width, marker=marker, markersize=3, label=curve.label)
        for ref, value in references.items():
            style = "--" if ref.startswith("scripted") else ":"
            ax.axhline(value, color="black", linestyle=style, linewidth=1.0, label=f"{ref} {value:.2f}")
        style_axes(ax, name, "agent-steps" if quantity == "return" else "epoch / iteration", 9, ticks=7)
    if len(curves) <= MAX_LEGEND:
        grid.flat[-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"{title}: {len(curves)} jobs (thick line: best job)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig
