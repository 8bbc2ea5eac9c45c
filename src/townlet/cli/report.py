"""The summary ``townlet-train`` prints when a run ends: where it went and how it did.

Why: the verdict of a run (accuracy, the trained-vs-baselines table, the anneal status and the
promotion state) should be readable without opening ``result.json``. Plain text built from the
result DTO plus, for anneal, the promotion snapshot the strategy saved next to it. Torch-free.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Any

from townlet.dto import AnnealSummaryDTO, ResultDTO

# The headline figures per result kind, in display order; absent (None) ones are skipped.
KEY_FIGURES: dict[str, tuple[str, ...]] = {
    "bc": (
        "accuracy",
        "val_accuracy",
        "loss",
        "val_loss",
        "epochs_run",
        "best_epoch",
        "early_stopped",
        "samples_per_sec",
    ),
    "ppo": (
        "iterations",
        "env_steps",
        "episode_return_mean",
        "loss_total",
        "kl_divergence",
        "clip_fraction",
        "explained_variance",
        "best_iteration",
        "samples_per_sec",
    ),
    "anneal": (
        "status",
        "dataset_label",
        "promotion_state",
        "promotion_pass_streak",
        "promotion_candidate_ready",
    ),
}
WIDTH = 100


def format_run_summary(
    result: ResultDTO,
    run_dir: str | Path,
    *,
    objective: str | None = None,
    objective_value: float | None = None,
) -> str:
    """Run dir, key figures, the evaluation table and (anneal) stages and promotion state."""
    run_dir = Path(run_dir)
    took = "" if result.duration_sec is None else f" in {result.duration_sec:.1f} s"
    lines = [f"townlet-train: {result.kind} run completed{took}", f"  run dir     {run_dir}"]
    if result.checkpoint:
        lines.append(f"  checkpoint  {result.checkpoint}")
    if objective:
        lines.append(f"  objective   {objective} = {_fmt(objective_value)}")
    figures = [f"{k}={_fmt(v)}" for k in KEY_FIGURES[result.kind] if (v := getattr(result, k)) is not None]
    lines += textwrap.wrap("  ".join(figures), WIDTH, initial_indent="  ", subsequent_indent="  ")
    if result.evaluation is not None:
        from townlet.cli.evaluate import format_table

        lines += ["evaluation (trained vs scripted vs random; faints per agent-episode):"]
        lines += [f"  {line}" for line in format_table(result.evaluation).splitlines()]
    if isinstance(result, AnnealSummaryDTO):
        lines += _anneal_lines(result, run_dir)
    return "\n".join(lines) + "\n"


def _anneal_lines(result: AnnealSummaryDTO, run_dir: Path) -> list[str]:
    """One line per stage, the status reasons and the promotion table (when it was recorded)."""
    from townlet.cli.promote import RESULTS_FILE, format_status

    saved = _read_json(run_dir / RESULTS_FILE)
    reasons = ", ".join(saved.get("reasons") or [])
    lines = [f"anneal: {result.status}" + (f" ({reasons})" if reasons else "")]
    for index, stage in enumerate(result.stages, 1):
        if stage.mode == "bc":
            detail = f"accuracy={_fmt(stage.accuracy)} threshold={_fmt(stage.threshold)}"
            detail += "" if stage.passed is None else (" passed" if stage.passed else " FAILED")
        else:
            flags = {
                "loss": stage.anneal_loss_flag,
                "queue": stage.anneal_queue_flag,
                "intensity": stage.anneal_intensity_flag,
            }
            raised = [name for name, flag in flags.items() if flag]
            detail = f"loss_total={_fmt(stage.loss_total)} flags={','.join(raised) or 'none'}"
        lines.append(f"  stage {index}  cycle {_fmt(stage.cycle)}  {stage.mode:<3}  {detail}")
    snapshot = saved.get("promotion")
    if isinstance(snapshot, dict):
        lines.append(f"promotion (state dir {saved.get('state_dir') or '?'}):")
        lines += [f"  {line}" for line in format_status(snapshot).splitlines()]
    elif result.promotion_state is None:
        lines.append("promotion: not recorded (no paths.state_dir, or strategy.promotion.record=false)")
    return lines


def _read_json(path: Path) -> dict[str, Any]:
    """The strategy's side file, or ``{}``: the summary must never fail a finished run."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.0f}" if value.is_integer() and abs(value) >= 1000 else f"{value:.4g}"
    return "-" if value is None else str(value)
