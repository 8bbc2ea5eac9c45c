"""The end-of-run summary (key figures, evaluation table, anneal/promotion verdict) and ``townlet-report``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from townlet.cli.report import format_run_summary
from townlet.cli.report import main as report_main
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


# ------------------------------------------------------------------------------ townlet-report


def _record(run_dir: Path, **extra: Any) -> None:
    fields: dict[str, Any] = {
        "run_id": "r1", "run_name": "smoke", "status": "completed", "started_at": "2026-01-01T00:00:00Z",
        "duration_sec": 3.5, "seed": 4, "config_hash": "0" * 16, "strategy": "bc",
        "objective": "val_accuracy", "objective_value": 0.93, "overrides": ["experiment=smoke", "seed=4"],
        "run_dir": str(run_dir), "device": "cpu", "host": "h", "pid": 1, "python": "3.11",
    }  # fmt: skip
    (run_dir / "run.json").write_text(json.dumps({**fields, **extra}))


def _bc_run(run_dir: Path) -> Path:
    """A run dir as townlet-train leaves it: record, result, saved config and choices, files."""
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "best.pt").write_bytes(b"x")
    (run_dir / "plots").mkdir()
    (run_dir / "plots" / "training_curves.png").write_bytes(b"png")
    (run_dir / "metrics.jsonl").write_text('{"epoch": 1}\n')
    (run_dir / "metrics.jsonl.1").write_text('{"epoch": 2}\n')
    config = {
        "seed": 4, "objective": "val_accuracy", "objective_mode": "max", "run_name": "smoke",
        "strategy": {"_target_": "townlet.strategies.bc.BCStrategy", "lr": 0.003, "batch_size": 512,
                     "epochs": 1, "weight_decay": 0.0, "val_fraction": 0.125},
        "world": {"name": "default", "num_envs": 2, "num_agents": 2, "episode_length": 40},
        "model": {"kind": "mlp"}, "logger": {"filename": "metrics.jsonl"},
    }  # fmt: skip
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    choices = {
        "strategy": "bc",
        "world": "default",
        "model": "mlp",
        "dataset": "scripted",
        "experiment": "smoke",
    }
    (run_dir / ".hydra" / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}})
    )
    block = EvaluationBlock(
        policy=_eval("trained", 2.5, 0.97),
        scripted=_eval("scripted", 3.0, 1.0),
        random=_eval("random", -1.0, 0.2),
    )
    result = BCTrainingResultDTO(
        manifest="m", accuracy=0.95, loss=0.2, learning_rate=3e-3, batch_size=512, epochs=1,
        val_accuracy=0.93, duration_sec=1.5, evaluation=block,
        checkpoint=str(run_dir / "checkpoints" / "best.pt"),
    )  # fmt: skip
    (run_dir / "result.json").write_text(result.model_dump_json())
    _record(run_dir)
    return run_dir


def test_run_report_has_config_result_evaluation_and_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _bc_run(tmp_path / "run")
    assert report_main([str(run_dir)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"townlet-report: run {run_dir.resolve()}\n  status      completed in 3.5 s\n")
    assert "strategy    bc (experiment=smoke)" in text
    assert "world       default (2 towns x 2 agents, 40 ticks/episode)" in text
    assert "model       mlp   dataset scripted   device cpu" in text and "seed        4" in text
    assert "hparams     lr=0.003  batch_size=512  epochs=1  weight_decay=0" in text
    assert "val_fraction" not in text  # only the key hyper-parameters
    assert "objective   val_accuracy = 0.93" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("  ")}
    assert rows["trained"][1] == "2.500" and rows["scripted"][1] == "3.000" and rows["random"][1] == "-1.000"
    assert f"  metrics     {run_dir / 'metrics.jsonl.1'}" in text  # rotations listed too
    assert f"  plots       {run_dir / 'plots' / 'training_curves.png'}" in text
    assert f"  checkpoint  {run_dir / 'checkpoints' / 'best.pt'}" in text


def test_run_report_json_carries_the_same_content(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _bc_run(tmp_path / "run")
    assert report_main([str(run_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "run" and data["status"] == "completed"
    assert (
        data["config"]["strategy"] == "bc"
        and data["config"]["seed"] == 4
        and data["config"]["model"] == "mlp"
    )
    assert data["config"]["hyperparameters"]["lr"] == 0.003
    assert data["objective"] == {"key": "val_accuracy", "mode": "max", "value": 0.93}
    assert data["result"]["evaluation"]["scripted"]["mean_return"] == 3.0
    assert data["paths"]["plots"] == [str(run_dir / "plots" / "training_curves.png")]
    assert data["promotion"] is None


def test_anneal_run_report_shows_the_promotion_decision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "anneal"
    run_dir.mkdir()
    (run_dir / "result.json").write_text(_anneal(promotion_state="monitoring").model_dump_json())
    _record(run_dir, strategy="anneal", objective="evaluation.policy.mean_return", objective_value=None)
    snapshot = {"state": "monitoring", "pass_streak": 1, "required_passes": 2, "candidate_ready": False}
    side = {"status": "HOLD", "reasons": ["queue_flag_cycle_0"], "promotion": snapshot, "state_dir": "/s"}
    (run_dir / "anneal_results.json").write_text(json.dumps(side))
    assert report_main([str(run_dir)]) == 0
    text = capsys.readouterr().out
    assert "anneal: HOLD (queue_flag_cycle_0)" in text and "promotion (state dir /s):" in text
    assert report_main([str(run_dir), "--json"]) == 0
    promotion = json.loads(capsys.readouterr().out)["promotion"]
    assert promotion["status"] == "HOLD" and promotion["promotion"]["pass_streak"] == 1


def test_a_run_still_going_has_no_result_yet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "running"
    run_dir.mkdir()
    _record(run_dir, status="running", duration_sec=None)
    assert report_main([str(run_dir)]) == 0
    text = capsys.readouterr().out
    assert "status      running\n" in text and "result: none yet" in text


def test_sweep_report_lists_jobs_best_seed_spread_and_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from townlet.sweeps.render import write_summary

    sweep = tmp_path / "sweep"
    for num, (seed, accuracy) in enumerate([(0, 0.8), (1, 0.9)]):
        job = sweep / str(num)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"seed={seed}"]))
        (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"objective": "accuracy"}))
        result = BCTrainingResultDTO(
            manifest="m", accuracy=accuracy, loss=0.1, learning_rate=1e-3, batch_size=8, epochs=1
        )
        (job / "result.json").write_text(result.model_dump_json())
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    write_summary(sweep)  # draws the objective plot the report then lists
    assert report_main([str(sweep)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"townlet-report: sweep {sweep.resolve()}\n")
    assert "best        job 1 (seed=1) -> 0.9" in text and "2: 2 ok, 0 failed" in text
    assert "over seeds  all jobs: 0.85 ± 0.07071 (2/2 ok)" in text
    assert str(sweep.resolve() / "sweep_objective.png") in text
    assert report_main([str(sweep), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "sweep" and data["best_num"] == 1 and len(data["rows"]) == 2
    assert data["plots"] == [str(sweep.resolve() / "sweep_objective.png")]


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt", "newer"])
def test_a_bad_path_is_one_line_and_exit_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / case
    if case != "missing":
        target.mkdir()
    if case == "corrupt":
        (target / "result.json").write_text('{"kind": "bc", "accuracy": 2}')
    if case == "newer":
        (target / "result.json").write_text('{"kind": "bc", "schema_version": "3.0.0", "grown": 1}')
    assert report_main([str(target)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith(f"townlet-report: {target}")
    assert ("newer townlet-train (schema 3.0.0" in captured.err) == (case == "newer")
