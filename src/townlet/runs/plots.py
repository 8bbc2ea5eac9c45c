"""Training-curve plots for a run directory, drawn from its ``metrics.jsonl``.

A run should be readable at a glance without a dashboard: ``plots/training_curves.png`` opens with
the question a user asks first — is the policy getting better? — as episode return against agent-steps
(training episodes as a line, periodic evaluations as markers) with the scripted teacher's and the
random policy's returns as reference lines; then one panel per headline metric (losses, accuracy,
KL …) against the epoch or iteration, one colour per strategy/anneal stage. matplotlib is imported
only here, only when a run ends, with the Agg backend; a missing matplotlib or an empty metrics
file skips the plot, never the run.
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
TRAIN_RETURN = "episode_return_mean"
EVAL_RETURN = "eval_return_mean"
RETURN_PANEL = "episode return vs agent-steps"


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


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def along_agent_steps(records: list[dict[str, Any]]) -> list[tuple[float, dict[str, Any]]]:
    """``(agent-steps so far, record)`` for every record that counts rollout steps, in order.

    ``env_steps`` counts from zero in every anneal stage, so each stage is shifted by the steps of
    the stages before it: the x axis is the agent-steps the run has collected so far.
    """
    out: list[tuple[float, dict[str, Any]]] = []
    offset, last_steps, stage = 0.0, 0.0, None
    for record in records:
        steps = record.get("env_steps")
        if not isinstance(steps, int | float) or not _finite(steps):
            continue
        if record.get("anneal_stage_index") != stage:
            stage, offset = record.get("anneal_stage_index"), offset + last_steps
        last_steps = float(steps)
        out.append((offset + last_steps, record))
    return out


def return_curves(records: list[dict[str, Any]]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """``{"train"|"eval": {stage label: [(agent-steps, return), ...]}}`` across the whole run."""
    curves: dict[str, dict[str, list[tuple[float, float]]]] = {"train": {}, "eval": {}}
    for x, record in along_agent_steps(records):
        for kind, key in (("train", TRAIN_RETURN), ("eval", EVAL_RETURN)):
            if _finite(record.get(key)):
                curves[kind].setdefault(_series_label(record), []).append((x, float(record[key])))
    return {kind: lines for kind, lines in curves.items() if lines}


def reference_returns(result: Any) -> dict[str, float]:
    """The scripted teacher's and the random policy's evaluated returns from a result dict, if any."""
    block = result.get("evaluation") if isinstance(result, dict) else None
    refs = {}
    for name, label in (("scripted", "scripted teacher"), ("random", "random")):
        entry = block.get(name) if isinstance(block, dict) else None
        if isinstance(entry, dict) and _finite(entry.get("mean_return")):
            refs[label] = float(entry["mean_return"])
    return refs


def write_training_plots(
    run_dir: str | Path, metrics_name: str = "metrics.jsonl", references: dict[str, float] | None = None
) -> Path | None:
    """Draw ``<run_dir>/plots/training_curves.png``; returns its path, or None when nothing to draw.

    ``references`` are horizontal lines on the return panel (name -> return), e.g. from
    :func:`reference_returns` of the run's result.
    """
    run_dir = Path(run_dir)
    metrics_path = run_dir / metrics_name
    if not metrics_files(metrics_path):
        return None
    records = list(read_metrics(metrics_path))
    series = collect_series(records)
    returns = return_curves(records)
    if not series and not returns:
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
    labels = list(
        dict.fromkeys(
            [label for lines in returns.values() for label in lines]
            + [label for key in keys for label in series[key]]
        )
    )
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours = {label: palette[i % len(palette)] for i, label in enumerate(labels)}
    panels = ([RETURN_PANEL] if returns else []) + keys
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    flat = list(axes.flat)
    if returns:
        _draw_returns(flat.pop(0), returns, references or {}, colours)
    for ax, key in zip(flat, keys, strict=False):
        for label, points in series[key].items():
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.2, color=colours[label])
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("epoch / iteration", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    for ax in flat[len(keys) :]:
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


def _draw_returns(
    ax: Any,
    curves: dict[str, dict[str, list[tuple[float, float]]]],
    references: dict[str, float],
    colours: dict[str, str],
) -> None:
    for label, points in curves.get("train", {}).items():
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, linewidth=1.2, color=colours[label])
    for label, points in curves.get("eval", {}).items():
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, linestyle="none", marker="D", markersize=4, color=colours[label])
    styles = {"scripted teacher": ("black", "--"), "random": ("grey", ":")}
    for name, value in references.items():
        colour, style = styles.get(name, ("black", "-."))
        ax.axhline(value, color=colour, linestyle=style, linewidth=1.0, label=f"{name} {value:.2f}")
    if references:
        ax.legend(fontsize=7, loc="lower right")
    ax.set_title(RETURN_PANEL + (" (line: training, ◆: evaluation)" if "eval" in curves else ""), fontsize=9)
    ax.set_xlabel("agent-steps", fontsize=8)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=8)
