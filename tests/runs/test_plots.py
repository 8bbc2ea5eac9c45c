"""Training-curve plots: which series are drawn from metrics.jsonl, and the PNG itself."""

from __future__ import annotations

import json
from pathlib import Path

from townlet.runs.plots import collect_series, write_training_plots


def test_series_are_grouped_by_stage_and_skip_non_finite_values() -> None:
    records = [
        {"anneal_stage_index": 0, "strategy": "bc", "epoch": 1, "val_accuracy": 0.9, "train_loss": 0.5},
        {"anneal_stage_index": 0, "strategy": "bc", "epoch": 2, "val_accuracy": None, "train_loss": 0.2},
        {"anneal_stage_index": 1, "strategy": "ppo", "iteration": 1, "loss_total": float("nan")},
        {"anneal_stage_index": 1, "strategy": "ppo", "iteration": 2, "loss_total": 0.3, "flag": True},
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
