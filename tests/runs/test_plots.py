"""Training-curve plots: which series are drawn from metrics.jsonl, and the PNG itself."""

from __future__ import annotations

import json
from pathlib import Path

from townlet.runs.plots import collect_series, reference_returns, return_curves, write_training_plots


def test_series_are_grouped_by_stage_and_skip_non_finite_values() -> None:
    records = [
        {"stage_index": 0, "stage": "bc", "epoch": 1, "val_accuracy": 0.9, "train_loss": 0.5},
        {"stage_index": 0, "stage": "bc", "epoch": 2, "val_accuracy": None, "train_loss": 0.2},
        {"stage_index": 1, "stage": "ppo", "iteration": 1, "loss_total": float("nan")},
        {"stage_index": 1, "stage": "ppo", "iteration": 2, "loss_total": 0.3, "flag": True},
    ]
    series = collect_series(records)
    assert series["val_accuracy"] == {"stage 0: bc": [(1.0, 0.9)]}
    assert series["train_loss"] == {"stage 0: bc": [(1.0, 0.5), (2.0, 0.2)]}
    assert series["loss_total"] == {"stage 1: ppo": [(2.0, 0.3)]}
    assert "flag" not in series


def test_png_is_written_only_when_there_is_something_to_draw(tmp_path: Path) -> None:
    assert write_training_plots(tmp_path) is None  # no metrics file
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "unplotted": 3.0}) + "\n")
    assert write_training_plots(tmp_path) is None  # nothing plottable
    lines = [json.dumps({"epoch": e, "train_loss": 1.0 / e, "val_accuracy": e / 4}) for e in (1, 2, 3)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    out = write_training_plots(tmp_path)
    assert out == tmp_path / "plots" / "training_curves.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 2_000
    assert not list(out.parent.glob(".*.tmp"))


def test_return_curve_counts_agent_steps_across_stages() -> None:
    records = [
        {"stage_index": 0, "stage": "bc", "epoch": 1, "train_loss": 0.5},
        {"stage_index": 1, "stage": "ppo", "env_steps": 100, "episode_return_mean": None},
        {"stage_index": 1, "stage": "ppo", "env_steps": 200, "episode_return_mean": -5.0},
        {"stage_index": 2, "stage": "ppo", "env_steps": 100, "episode_return_mean": -2.0},
        {"stage_index": 2, "stage": "ppo", "env_steps": 200, "eval_return_mean": 1.5},
    ]
    curves = return_curves(records)
    assert curves["train"] == {"stage 1: ppo": [(200.0, -5.0)], "stage 2: ppo": [(300.0, -2.0)]}
    assert curves["eval"] == {"stage 2: ppo": [(400.0, 1.5)]}


def test_reference_lines_come_from_the_result_evaluation_block() -> None:
    result = {
        "evaluation": {"policy": {"mean_return": 2.0}, "scripted": {"mean_return": -11.0}, "random": None}
    }
    assert reference_returns(result) == {"scripted teacher": -11.0}
    assert reference_returns({"evaluation": None}) == {}


def test_return_panel_is_drawn_with_reference_lines(tmp_path: Path) -> None:
    lines = [
        json.dumps({"iteration": i, "env_steps": 64 * i, "episode_return_mean": -10.0 + i}) for i in (1, 2, 3)
    ]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    out = write_training_plots(tmp_path, references={"scripted teacher": -11.0, "random": -27.0})
    assert out is not None and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
