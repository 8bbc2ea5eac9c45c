"""The SLURM launcher's decisions that need no cluster: when a task is lost, the preset guards,
the SLURM ids in run.json and in the sweep summary. (Real-cluster behaviour: test_cluster.py.)"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from townlet.dto import RunRecord
from townlet.runs.record import slurm_ids
from townlet.sweeps.render import write_summary
from townlet.sweeps.slurm import TownletSlurmLauncher
from townlet.sweeps.slurm_queue import TaskWatch, expand_task_ids, parse_states
from townlet.sweeps.slurm_report import SweepRefused


class FakeCluster:
    """A clock that advances on sleep and a scripted sequence of squeue/sacct answers."""

    def __init__(self, answers: Callable[[float], dict[str, str] | None]) -> None:
        self.now = 0.0
        self.answers = answers
        self.queries = 0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def query(
        self, arrays: Sequence[str], missing: Callable[[dict[str, str]], bool]
    ) -> dict[str, str] | None:
        self.queries += 1
        return self.answers(self.now)


def _watch(tmp_path: Path, cluster: FakeCluster, **kwargs: Any) -> TaskWatch:
    return TaskWatch(
        {"7_0": tmp_path / "7_0_result.pkl"},
        read_result=lambda path: ("success", path.read_text()),
        query=cluster.query,
        clock=cluster.clock,
        sleep=cluster.sleep,
        **kwargs,
    )


def test_a_task_nothing_knows_is_lost_after_the_poll_timeout(tmp_path: Path) -> None:
    cluster = FakeCluster(lambda now: {})  # no accounting, and squeue has forgotten the task
    outcomes = _watch(tmp_path, cluster, lost_after_s=100).wait()
    assert outcomes["7_0"].kind == "lost" and outcomes["7_0"].state is None
    assert 100 <= cluster.now <= 140  # it waited for the timeout, and not forever


def test_an_unreachable_controller_also_ends_in_lost(tmp_path: Path) -> None:
    cluster = FakeCluster(lambda now: {"7_0": "RUNNING"} if now < 10 else None)
    outcomes = _watch(tmp_path, cluster, lost_after_s=50).wait()
    assert outcomes["7_0"].kind == "lost" and outcomes["7_0"].state == "RUNNING"
    assert cluster.now >= 60


def test_finished_without_a_result_is_lost_after_the_short_grace(tmp_path: Path) -> None:
    cluster = FakeCluster(lambda now: {"7_0": "RUNNING"} if now < 20 else {"7_0": "CANCELLED"})
    outcomes = _watch(tmp_path, cluster, lost_after_s=1000, grace_s=10).wait()
    assert outcomes["7_0"].kind == "lost" and outcomes["7_0"].state == "CANCELLED"
    assert cluster.now < 100


def test_a_requeued_task_is_waited_for_until_its_result(tmp_path: Path) -> None:
    result = tmp_path / "7_0_result.pkl"

    def answers(now: float) -> dict[str, str]:
        if now >= 300:
            result.write_text("done")
        return {"7_0": "PENDING" if now < 200 else "RUNNING"}  # requeued: back in the queue for a while

    cluster = FakeCluster(answers)
    outcomes = _watch(tmp_path, cluster, lost_after_s=30, grace_s=5).wait()
    assert outcomes["7_0"].kind == "success" and outcomes["7_0"].result == "done"


def test_state_parsing_expands_array_ranges_and_skips_steps() -> None:
    assert expand_task_ids("12_[0-2,5%2]") == ["12_0", "12_1", "12_2", "12_5"]
    text = "12_0|RUNNING\n12_0.batch|RUNNING\n12_[1-2%1]|PENDING\n13|CANCELLED by 0\n"
    assert parse_states(text) == {"12_0": "RUNNING", "12_1": "PENDING", "12_2": "PENDING", "13": "CANCELLED"}


def _launcher(**params: Any) -> TownletSlurmLauncher:
    base = {"timeout_min": 120, "signal_delay_s": 120, "max_num_timeout": 0, "additional_parameters": {}}
    return TownletSlurmLauncher(submitit_folder="/tmp/x/.submitit/%j", **{**base, **params})


def test_signal_delay_is_capped_for_short_time_limits() -> None:
    assert _launcher()._checked_params()["signal_delay_s"] == 120
    assert _launcher(timeout_min=10)._checked_params()["signal_delay_s"] == 120
    assert _launcher(timeout_min=3)._checked_params()["signal_delay_s"] == 30
    assert _launcher(timeout_min=2)._checked_params()["signal_delay_s"] == 1  # never at once


def test_slurm_requeues_only_when_configured() -> None:
    assert _launcher()._checked_params()["additional_parameters"] == {"no-requeue": True}
    assert _launcher(max_num_timeout=2)._checked_params()["additional_parameters"] == {"requeue": True}
    export = _launcher(additional_parameters={"export": "NONE"})._checked_params()
    assert export["srun_args"] == ["--export=ALL"]  # else the task starts without SUBMITIT_EXECUTOR


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"timeout_min": 0}, "timeout_min"),
        ({"signal_delay_s": -1}, "signal_delay_s"),
        ({"max_num_timeout": "x"}, "max"),
    ],
)
def test_unusable_launcher_settings_are_refused(params: dict[str, Any], words: str) -> None:
    with pytest.raises(SweepRefused, match=words):
        _launcher(**params)._checked_params()


def test_run_record_and_summary_carry_the_slurm_ids(tmp_path: Path) -> None:
    env = {
        "SLURM_JOB_ID": "42",
        "SLURM_ARRAY_JOB_ID": "40",
        "SLURM_ARRAY_TASK_ID": "2",
        "SLURMD_NODENAME": "n1",
    }
    ids = slurm_ids(env)
    assert ids == {"slurm_job_id": "42", "slurm_array_job_id": "40", "slurm_array_task_id": 2, "node": "n1"}
    assert slurm_ids({}) == {}
    job = tmp_path / "2"
    job.mkdir()
    record = RunRecord(
        run_id="r",
        status="completed",
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        seed=0,
        config_hash="0" * 16,
        overrides=["seed=0"],
        run_dir=str(job),
        host="h",
        pid=1,
        python="3.11",
        job_num=2,
        **ids,
    )
    (job / "run.json").write_text(record.model_dump_json())
    summary = write_summary(tmp_path)
    assert summary.rows[0].slurm_id == "40_2"
    assert "| 40_2 |" in (tmp_path / "sweep_summary.md").read_text(encoding="utf-8")
    assert "slurm_id" in (tmp_path / "sweep_summary.csv").read_text(encoding="utf-8").splitlines()[0]
