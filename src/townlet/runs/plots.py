"""``plots/training_curves.png`` from a run's ``metrics.jsonl``: return vs agent-steps first (is the
policy getting better), then one panel per headline metric; matplotlib loads only when a run ends."""

from __future__ import annotations

import io
import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from townlet.dto.metrics import (
    AGENT_STEPS_KEY,
    EVAL_RETURN_KEY,
    LOSS_TOTAL_KEY,
    PPO_CURVE_KEYS,
    STAGE_KEY,
    STRATEGY_KEY,
    TRAIN_LOSS_KEY,
    TRAIN_RETURN_KEY,
    VAL_ACCURACY_KEY,
    VAL_LOSS_KEY,
)
from townlet.runs.atomic import atomic_write_bytes
from townlet.runs.metrics import metrics_files, read_metrics
from townlet.runs.sinks import AgentStepAxis, dotted_get, number, record_step, stage_index

log = logging.getLogger(__name__)

# Headline metrics, in panel order; whichever of them a run logged are drawn.
PLOTTED_KEYS = (TRAIN_LOSS_KEY, VAL_LOSS_KEY, VAL_ACCURACY_KEY, LOSS_TOTAL_KEY, *PPO_CURVE_KEYS)
REFERENCES = (("scripted", "scripted teacher"), ("random", "random"))  # (evaluation key, label)

Series = dict[str, dict[str, list[tuple[float, float]]]]


def _series_label(record: dict[str, Any]) -> str:
    index, name = stage_index(record), record.get(STAGE_KEY) or record.get(STRATEGY_KEY) or "run"
    return f"stage {index}: {name}" if index is not None else str(name)


def collect_series(records: list[dict[str, Any]]) -> Series:
    """``{metric: {series label: [(step, value), ...]}}`` for the finite values of PLOTTED_KEYS."""
    series: Series = defaultdict(lambda: defaultdict(list))
    for count, record in enumerate(records, 1):
        step = float(record_step(record, count))
        for key in PLOTTED_KEYS:
            if (value := number(record.get(key))) is not None:
                series[key][_series_label(record)].append((step, value))
    return {key: dict(lines) for key, lines in series.items()}


def along_agent_steps(records: list[dict[str, Any]]) -> list[tuple[float, dict[str, Any]]]:
    """``(agent-steps so far, record)`` for every record that counts rollout steps, in order."""
    axis = AgentStepAxis()
    out: list[tuple[float, dict[str, Any]]] = []
    for record in records:
        x = axis.advance(record)
        if x is not None and number(record.get(AGENT_STEPS_KEY)) is not None:
            out.append((x, record))
    return out


def return_curves(records: list[dict[str, Any]]) -> Series:
    """``{"train"|"eval": {stage label: [(agent-steps, return), ...]}}`` across the whole run."""
    curves: Series = {"train": {}, "eval": {}}
    for x, record in along_agent_steps(records):
        for kind, key in (("train", TRAIN_RETURN_KEY), ("eval", EVAL_RETURN_KEY)):
            if (value := number(record.get(key))) is not None:
                curves[kind].setdefault(_series_label(record), []).append((x, value))
    return {kind: lines for kind, lines in curves.items() if lines}


def reference_returns(result: Any) -> dict[str, float]:
    refs = {label: dotted_get(result, f"evaluation.{name}.mean_return") for name, label in REFERENCES}
    return {label: x for label, value in refs.items() if (x := number(value)) is not None}


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def panels(plt: Any, count: int, width: float, height: float) -> tuple[Any, list[Any]]:
    """A figure of ``count`` panels of ``width`` x ``height`` inches, up to three a row."""
    cols = min(3, count)
    fig, grid = plt.subplots(
        math.ceil(count / cols), cols, figsize=(width * cols, height * math.ceil(count / cols)), squeeze=False
    )
    axes = list(grid.flat)
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes[:count]


def save_png(plt: Any, fig: Any, out: Path, **options: Any) -> Path:
    """Write ``fig`` atomically: a reader of the run or sweep dir never sees half a PNG."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, dpi=110, format="png", **options)
    finally:
        plt.close(fig)
    return atomic_write_bytes(out, buffer.getvalue())


def write_training_plots(
    run_dir: str | Path, metrics_name: str = "metrics.jsonl", references: dict[str, float] | None = None
) -> Path | None:
    """Draw ``<run_dir>/plots/training_curves.png`` (``references``: name -> return lines); None if empty."""
    run_dir = Path(run_dir)
    if not metrics_files(run_dir / metrics_name):
        return None
    records = list(read_metrics(run_dir / metrics_name))
    series, returns = collect_series(records), return_curves(records)
    if not series and not returns:
        return None
    try:
        plt = pyplot()
    except ImportError:
        log.warning("plots: matplotlib is not installed; skipping plots (pip install matplotlib)")
        return None
    keys = [k for k in PLOTTED_KEYS if k in series]
    # One colour per series (stage) across every panel, and one legend for the figure.
    panel_lines = [*returns.values(), *(series[k] for k in keys)]
    labels = list(dict.fromkeys(label for lines in panel_lines for label in lines))
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours = {label: palette[i % len(palette)] for i, label in enumerate(labels)}
    fig, axes = panels(plt, len(keys) + bool(returns), 4.2, 3.0)
    if returns:
        _draw_returns(axes.pop(0), returns, references or {}, colours)
    for ax, key in zip(axes, keys, strict=True):
        for label, points in series[key].items():
            ax.plot(*zip(*points, strict=True), marker="o", markersize=3, linewidth=1.2, color=colours[label])
        style_axes(ax, key, "epoch / iteration", 10)
    if len(labels) > 1:
        handles = [plt.Line2D([], [], color=colours[label], marker="o", markersize=3) for label in labels]
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.suptitle(run_dir.name, fontsize=10)
    fig.tight_layout(rect=(0, 0.06 if len(labels) > 1 else 0, 1, 0.96))
    return save_png(plt, fig, run_dir / "plots" / "training_curves.png")


def style_axes(ax: Any, title: str, xlabel: str, size: int, ticks: int = 8) -> None:
    ax.set_title(title, fontsize=size)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=ticks)


def _draw_returns(ax: Any, curves: Series, references: dict[str, float], colours: dict[str, str]) -> None:
    for label, points in curves.get("train", {}).items():
        ax.plot(*zip(*points, strict=True), linewidth=1.2, color=colours[label])
    for label, points in curves.get("eval", {}).items():
        ax.plot(*zip(*points, strict=True), linestyle="none", marker="D", markersize=4, color=colours[label])
    styles = {"scripted teacher": ("black", "--"), "random": ("grey", ":")}
    for name, value in references.items():
        colour, style = styles.get(name, ("black", "-."))
        ax.axhline(value, color=colour, linestyle=style, linewidth=1.0, label=f"{name} {value:.2f}")
    if references:
        ax.legend(fontsize=7, loc="lower right")
    title = "episode return vs agent-steps" + (" (line: training, ◆: evaluation)" if "eval" in curves else "")
    style_axes(ax, title, "agent-steps", 9)
