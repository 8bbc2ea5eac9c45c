"""Training-curve plots for a run directory, drawn from its ``metrics.jsonl``.

A run should be readable at a glance without a dashboard: ``plots/training_curves.png`` holds one
panel per headline metric (losses, accuracy, returns, KL …) against the epoch or iteration, one line
per strategy/anneal stage. matplotlib is imported only here, only when a run ends, with the Agg
backend; a missing matplotlib or an empty metrics file skips the plot, never the run.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from townlet.runs.metrics import metrics_files, read_metrics

log = logging.getLogger(__name__)

# Headline metrics, in panel order; whichever of them a run logged are drawn.
PLOTTED_KEYS: tuple[str, ...] = (
    "train_loss",
    "val_loss",
    "val_accuracy",
    "episode_return_mean",
    "loss_total",
    "loss_policy",
    "loss_value",
    "loss_entropy",
    "loss_bc",
    "kl_divergence",
    "clip_fraction",
    "explained_variance",
)
STEP_KEYS: tuple[str, ...] = ("epoch", "iteration")


def _series_label(record: dict[str, Any]) -> str:
    stage = record.get("anneal_stage_index")
    strategy = record.get("anneal_stage") or record.get("strategy") or record.get("data_mode") or "run"
    return f"stage {stage}: {strategy}" if stage is not None else str(strategy)


def collect_series(records: list[dict[str, Any]]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """``{metric: {series label: [(step, value), ...]}}`` for the finite values of PLOTTED_KEYS."""
    series: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for index, record in enumerate(records):
        step = next((record[k] for k in STEP_KEYS if isinstance(record.get(k), int | float)), index + 1)
        label = _series_label(record)
        for key in PLOTTED_KEYS:
            value = record.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                series[key][label].append((float(step), float(value)))
    return {key: dict(lines) for key, lines in series.items()}


def write_training_plots(run_dir: str | Path, metrics_name: str = "metrics.jsonl") -> Path | None:
    """Draw ``<run_dir>/plots/training_curves.png``; returns its path, or None when nothing to draw."""
    run_dir = Path(run_dir)
    metrics_path = run_dir / metrics_name
    if not metrics_files(metrics_path):
        return None
    series = collect_series(list(read_metrics(metrics_path)))
    if not series:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
    except ImportError:
        log.warning("plots: matplotlib is not installed; skipping plots (pip install matplotlib)")
        return None

    keys = [k for k in PLOTTED_KEYS if k in series]
    # One colour per series (stage) across every panel, and one legend for the figure.
    labels = list(dict.fromkeys(label for key in keys for label in series[key]))
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours = {label: palette[i % len(palette)] for i, label in enumerate(labels)}
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        for label, points in series[key].items():
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.2, color=colours[label])
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("epoch / iteration", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(keys) :]:
        ax.set_visible(False)
    if len(labels) > 1:
        handles = [Line2D([], [], color=colours[label], marker="o", markersize=3) for label in labels]
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.suptitle(run_dir.name, fontsize=10)
    fig.tight_layout(rect=(0, 0.06 if len(labels) > 1 else 0, 1, 0.96))

    out = run_dir / "plots" / "training_curves.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    tmp.replace(out)
    return out
