"""The end-of-run summary: key figures, the evaluation table, and the anneal/promotion verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from townlet.cli.report import format_run_summary
from townlet.dto import (
    AnnealStageResultDTO,
    AnnealSummaryDTO,
    BCTrainingResultDTO,
    EvaluationBlock,
    PolicyEvaluationDTO,
)


def _eval(label: str, mean_return: float, agreement: float | None) -> PolicyEvaluationDTO:
    return PolicyEvaluationDTO(
        policy=label,
        episodes=2,
        mean_return=mean_return,
        return_std=0.1,
        faint_rate=0.25,
        mean_needs=0.7,
        conflicts_per_100_agent_ticks=1.5,
        scripted_agreement=agreement,
    )


def test_bc_summary_has_run_dir_figures_and_evaluation_table(tmp_path: Path) -> None:
    block = EvaluationBlock(
        policy=_eval("trained", 2.5, 0.97),
        scripted=_eval("scripted", 3.0, 1.0),
        random=_eval("random", -1.0, 0.2),
    )
    result = BCTrainingResultDTO(
        manifest="m", accuracy=0.95, loss=0.2, learning_rate=1e-3, batch_size=64, epochs=3,
        val_accuracy=0.93, duration_sec=12.34, evaluation=block,
    )  # fmt: skip
    text = format_run_summary(result, tmp_path, objective="val_accuracy", objective_value=0.93)
    assert text.startswith("townlet-train: bc run completed in 12.3 s\n")
    assert f"run dir     {tmp_path}" in text and "val_accuracy = 0.93" in text
    assert "accuracy=0.95" in text and "val_loss" not in text  # absent figures are skipped
    rows = {line.split()[0]: line.split() for line in text.splitlines()[-3:]}
    assert set(rows) == {"trained", "scripted", "random"}
    assert rows["trained"][1] == "2.500" and rows["random"][-1] == "0.200"


def _anneal(**extra: Any) -> AnnealSummaryDTO:
    stages = [
        AnnealStageResultDTO(cycle=0, mode="bc", accuracy=0.96, threshold=0.9, passed=True),
        AnnealStageResultDTO(cycle=0, mode="ppo", loss_total=0.5, anneal_queue_flag=True),
    ]
    return AnnealSummaryDTO(stages=stages, status="HOLD", dataset_label="scripted", **extra)


def test_anneal_summary_lists_stages_reasons_and_promotion(tmp_path: Path) -> None:
    snapshot = {"state": "monitoring", "pass_streak": 0, "required_passes": 2, "candidate_ready": False}
    side = {"reasons": ["queue_flag_cycle_0"], "promotion": snapshot, "state_dir": "/s"}
    (tmp_path / "anneal_results.json").write_text(json.dumps(side))
    text = format_run_summary(_anneal(promotion_state="monitoring"), tmp_path)
    assert "anneal: HOLD (queue_flag_cycle_0)" in text
    assert "stage 1  cycle 0  bc   accuracy=0.96 threshold=0.9 passed" in text
    assert "stage 2  cycle 0  ppo  loss_total=0.5 flags=queue" in text
    assert "promotion (state dir /s):" in text and "pass_streak" in text and "0/2" in text


def test_anneal_without_promotion_says_why(tmp_path: Path) -> None:
    text = format_run_summary(_anneal(), tmp_path)  # no side file, nothing recorded
    assert "promotion: not recorded" in text and "paths.state_dir" in text
