"""``launcher=slurm`` against a real one-node Slurm cluster: every way a task can end.

Each sweep is a tiny BC job (or the test-only echo strategy for a failure) and each test asserts what
the user sees: the submitter's exit code and lines, ``run.json``, the sweep summary and ``sacct``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO_ROOT, Sweep, sacct_state

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

StartSweep = Callable[..., Sweep]
LONG = ["strategy.early_stopping_patience=0", "strategy.epochs=1000000"]  # trains until stopped


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("townlet-train:")]


def test_ok_sweep_pins_paths_and_records_slurm_ids(start_sweep: StartSweep, slurm_root: Path) -> None:
    # --export=NONE: the task sees none of the submitter's environment (TOWNLET_ROOT included), and the
    # sbatch option goes through the documented additional_parameters form
    run_name = f"slurmok{slurm_root.name}"
    sweep = start_sweep(
        "ok",
        "+hydra.launcher.additional_parameters.export=NONE",
        f"run_name={run_name}",
        "seed=0,1",
        sweep_dir=False,
    )
    assert sweep.wait(240) == 0, sweep.stderr()
    [sweep_dir] = (slurm_root / "outputs" / "multiruns").glob(f"*/*_{run_name}")
    sweep.dir = sweep_dir
    assert not list((REPO_ROOT / "outputs" / "multiruns").glob(f"*/*_{run_name}")), (
        "a task wrote to the checkout"
    )
    summary = sweep.summary()
    assert [r["status"] for r in summary["rows"]] == ["ok", "ok"]
    records = [sweep.record(0), sweep.record(1)]
    array = records[0]["slurm_array_job_id"]
    assert array and records[1]["slurm_array_job_id"] == array
    assert [r["slurm_array_task_id"] for r in records] == [0, 1]
    assert all(r["slurm_job_id"] and r["node"] for r in records)
    assert [r["slurm_id"] for r in summary["rows"]] == [f"{array}_0", f"{array}_1"]
    assert f"| {array}_1 |" in (sweep_dir / "sweep_summary.md").read_text(encoding="utf-8")
    command = records[0]["command"]
    assert "launcher=slurm" in command and "seed=0,1" in command
    assert not any("_submit" in part for part in command)
    config = (sweep_dir / "0" / ".hydra" / "config.yaml").read_text(encoding="utf-8")
    assert str(slurm_root) in json.dumps(records[0]["run_dir"]) and "data_dir" in config


def test_failing_task_is_failed_everywhere(start_sweep: StartSweep) -> None:
    sweep = start_sweep(
        "fail",
        f"hydra.searchpath=[file://{REPO_ROOT / 'tests' / '_support' / 'conf'}]",
        "strategy=echo",
        "objective=accuracy",
        "strategy.fail=false,true",
        tiny=False,
    )
    assert sweep.wait(240) == 1
    err = sweep.stderr()
    assert "Traceback" not in err
    lines = _lines(err)
    task = sweep.task_id(1)
    assert any(f"job 1 (SLURM {task}) failed: EchoFailure" in line for line in lines), err
    assert any("townlet-sweep-report" in line for line in lines), err
    assert [r["status"] for r in sweep.summary()["rows"]] == ["ok", "failed"]
    assert sweep.record(1)["status"] == "failed"
    assert sacct_state(task) == "FAILED"  # the task exits non-zero
    assert sacct_state(sweep.task_id(0)) == "COMPLETED"


def test_scancel_signal_int_and_a_killed_task_end_the_sweep(start_sweep: StartSweep) -> None:
    sweep = start_sweep("cancel", *LONG, "seed=0,1,2")
    sweep.wait_epochs(0, 3)
    sweep.wait_epochs(1, 3)
    first, second = sweep.task_id(0), sweep.task_id(1)
    subprocess.run(["scancel", first], check=True)
    subprocess.run(["scancel", "--signal=INT", second], check=True)
    sweep.wait_epochs(2, 3)  # starts once a CPU is free; then dies without a word (OOM killer, node loss)
    os.kill(int(sweep.record(2)["pid"]), signal.SIGKILL)
    assert sweep.wait(300) == 1
    err = sweep.stderr()
    assert "Traceback" not in err
    for job, signame in ((0, "SIGTERM"), (1, "SIGINT")):
        record = sweep.record(job)
        assert record["status"] == "interrupted", record
        assert record["signal"] == signame
        assert (sweep.dir / str(job) / "checkpoints" / "last.pt").is_file()
    lines = _lines(err)
    assert any(f"job 0 (SLURM {first}, CANCELLED) interrupted by SIGTERM" in line for line in lines), err
    assert any(f"job 1 (SLURM {second}, " in line and "interrupted by SIGINT" in line for line in lines), err
    third = sweep.task_id(2)
    assert any(
        f"job 2 (SLURM {third}, " in line and "without a result (run.json says running)" in line
        for line in lines
    ), err
    assert any("3 of 3 SLURM task(s) did not finish" in line for line in lines), err
    assert sweep.record(2)["status"] == "running"  # what a killed run leaves; the row says failed
    assert [r["status"] for r in sweep.summary()["rows"]] == ["failed", "failed", "failed"]
    assert sacct_state(first) == "CANCELLED"


def _comparable(result: dict[str, Any]) -> dict[str, Any]:
    """A result without timings and paths (they differ between any two runs)."""
    drop = ("duration", "per_sec", "checkpoint", "path", "run_dir")
    return {
        k: _comparable(v) if isinstance(v, dict) else v
        for k, v in result.items()
        if not any(word in k for word in drop)
    }


def test_requeued_tasks_resume_to_the_uninterrupted_result(start_sweep: StartSweep) -> None:
    # three identical runs: job 0 requeued by SLURM (as preemption does), job 1 warned with SIGUSR2 (it
    # checkpoints and requeues itself, max_num_timeout=1), job 2 left alone as the reference
    epochs = 80
    sweep = start_sweep(
        "requeue",
        "hydra.launcher.max_num_timeout=1",
        "strategy.early_stopping_patience=0",
        f"strategy.epochs={epochs}",
        "run_name=a,b,c",
    )
    sweep.wait_epochs(0, 3)
    requeue = subprocess.run(["scontrol", "requeue", sweep.task_id(0)], capture_output=True, text=True)
    assert requeue.returncode == 0, requeue.stderr
    sweep.wait_epochs(1, 3)
    subprocess.run(["scancel", "--signal=USR2", sweep.task_id(1)], check=True)
    assert sweep.wait(420) == 0, sweep.stderr()
    records = [sweep.record(j) for j in range(3)]
    assert [r["status"] for r in records] == ["completed"] * 3
    assert [r["resumed"] for r in records] == [True, True, False]
    assert records[0]["parent_run"] and records[1]["parent_run"]
    results = []
    for job in range(3):
        lines = (sweep.dir / str(job) / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        assert [json.loads(line)["epoch"] for line in lines] == list(range(1, epochs + 1)), (
            f"job {job} repeated or skipped epochs"
        )
        results.append(_comparable(json.loads((sweep.dir / str(job) / "result.json").read_text("utf-8"))))
    assert results[0] == results[2] and results[1] == results[2]
    assert [r["status"] for r in sweep.summary()["rows"]] == ["ok", "ok", "ok"]
    summary = (sweep.dir / "sweep_summary.md").read_text(encoding="utf-8")
    assert "3 found of 3 expected" in summary and "never started" not in summary  # same overrides


def test_time_limit_without_requeue_fails_the_task(start_sweep: StartSweep) -> None:
    # SIGUSR2 30 s before a 2-minute limit (SLURM may send it up to a minute early): the run stops at
    # its next checkpoint, then submitit, with max_num_timeout=0, does not requeue it
    settings = ["hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=30"]
    sweep = start_sweep("timeout", *LONG, *settings, "seed=0")
    assert sweep.wait(300) == 1
    err = sweep.stderr()
    assert "Traceback" not in err
    record = sweep.record(0)
    assert record["status"] == "interrupted" and record["signal"] == "SIGUSR2", record
    assert (sweep.dir / "0" / "checkpoints" / "last.pt").is_file()
    task = record["slurm_job_id"]  # one job is submitted as a plain job, not an array
    # the task's SLURM state is named once sacct has it
    stopped = re.compile(rf"job 0 \(SLURM {task}(, [A-Z_]+)?\) interrupted by SIGUSR2")
    assert any(stopped.search(line) for line in _lines(err)), err
    log = next((sweep.dir / ".submitit").glob(f"{task}/*_log.err")).read_text(encoding="utf-8")
    assert "timed-out too many times" in log  # submitit's own decision, after the run's checkpoint
    assert [r["status"] for r in sweep.summary()["rows"]] == ["failed"]
    assert sacct_state(task) == "FAILED"


@pytest.mark.parametrize(
    ("setting", "words"),
    [("hydra.launcher.partition=nosuchpartition", "partition"), ("hydra.launcher.mem_gb=100000", "memory")],
)
def test_sbatch_rejection_is_one_line(start_sweep: StartSweep, setting: str, words: str) -> None:
    sweep = start_sweep(f"rejected-{words}", setting, "seed=0,1")
    assert sweep.wait(120) == 2
    lines = [line for line in sweep.stderr().splitlines() if not line.startswith("[")]
    assert len(lines) == 1, lines
    assert lines[0].startswith("townlet-train: error: sbatch refused the sweep:")
    assert words in lines[0].lower()
    assert not sweep.dir.exists(), "a refused sweep leaves nothing behind"
