"""``stop``: training ends early on a wall-clock limit or an evaluated return, and the run says why."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from townlet.strategies.context import StopBudget

TINY = ["world.num_envs=2", "world.num_agents=2", "world.episode_length=40", "dataset.ticks=80"]
PPO = ["strategy=ppo", "model=mlp", "strategy.n_steps=32", "strategy.total_steps=384"]
PPO += ["strategy.minibatch_size=64", "evaluation.episodes=1", *TINY]


def test_the_budget_names_the_first_limit_reached_and_keeps_it() -> None:
    budget = StopBudget(target_return=5.0)
    assert not budget.reached({"eval_return_mean": 4.9}) and not budget.reached({})
    assert budget.reached({"eval_return_mean": 5.0}) and budget.reason == "target_return"
    assert budget.reached({}) and budget.reason == "target_return"
    clock = StopBudget(max_wall_sec=10.0, started=0.0)  # started long ago on the monotonic clock
    assert clock.reached({}) and clock.reason == "max_wall_sec"
    assert not StopBudget(max_wall_sec=1e9).reached({"eval_return_mean": 1e9})


def _finished(run: Path) -> tuple[dict, dict, list[dict]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return json.loads((run / "result.json").read_text()), json.loads((run / "run.json").read_text()), rows


@pytest.mark.slow
def test_ppo_ends_at_the_first_evaluation_that_reaches_the_target(
    run_cli: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    proc = run_cli(*PPO, "evaluation.every=2", "stop.target_return=-1e9", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result, record, rows = _finished(run)
    assert [r["iteration"] for r in rows] == [1, 2]  # of 6 planned; the first evaluation is at 2
    assert result["stop_reason"] == record["stop_reason"] == "target_return"
    assert record["status"] == "completed" and result["evaluation"] is not None
    assert (run / "checkpoints" / "last.pt").is_file()


@pytest.mark.slow
def test_bc_ends_after_the_epoch_that_passes_the_wall_clock_limit(
    run_cli: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    bc = ["strategy=bc", "strategy.epochs=5", "objective=accuracy", "evaluation.episodes=1", *TINY]
    proc = run_cli(*bc, "stop.max_wall_sec=0.001", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result, record, _ = _finished(run)
    assert result["epochs_run"] == 1 and result["stop_reason"] == record["stop_reason"] == "max_wall_sec"


def test_a_target_return_without_periodic_evaluation_is_refused(
    run_cli: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    proc = run_cli(*PPO, "evaluation.every=null", "stop.target_return=3", f"hydra.run.dir={tmp_path / 'r'}")
    assert proc.returncode == 2 and "set evaluation.every=N" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


@pytest.mark.slow
def test_the_anneal_ends_its_schedule_with_the_stage_that_stopped(
    run_cli: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    schedule = "[{cycle:0,mode:bc,epochs:2,bc_weight:1.0},{cycle:1,mode:ppo,epochs:2,bc_weight:0.5}]"
    anneal = ["strategy.evaluation_episodes=1", "strategy.accuracy_threshold=0.0", "strategy.ppo.n_steps=16"]
    proc = run_cli(*anneal, f"strategy.schedule={schedule}", *TINY, "evaluation.episodes=1",
                   "stop.max_wall_sec=0.001", f"hydra.run.dir={run}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result, record, _ = _finished(run)
    assert [stage["mode"] for stage in result["stages"]] == ["bc"] and result["stages"][0]["bc"][
        "epochs_run"
    ] == 1
    assert result["stop_reason"] == record["stop_reason"] == "max_wall_sec"
