"""The SLURM launcher's decisions that need no cluster: a requeued task resumes and a failed one exits
non-zero, tasks without a result become failed rows and lines, the SLURM ids in run.json and in the
sweep summary. (Real-cluster behaviour: test_cluster.py.)"""

from __future__ import annotations

import json
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import OmegaConf
from submitit.core.utils import UncompletedJobError

from townlet.dto import RunRecord
from townlet.runs.record import slurm_ids
from townlet.sweeps.render import write_summary
from townlet.sweeps.slurm import SlurmTasksFailed, TownletSlurmLauncher, restart_count


def _launcher() -> TownletSlurmLauncher:
    return TownletSlurmLauncher(submitit_folder="/tmp/x/.submitit/%j", timeout_min=60)


def test_restart_count_reads_slurm() -> None:
    assert restart_count({}) == 0
    assert restart_count({"SLURM_RESTART_COUNT": "2"}) == 2
    assert restart_count({"SLURM_RESTART_COUNT": "x"}) == 0


@pytest.mark.parametrize("restarts", ["0", "1"])
def test_task_pins_the_submitter_and_fails_loudly(monkeypatch: pytest.MonkeyPatch, restarts: str) -> None:
    seen: dict[str, Any] = {}

    def plugin_call(self: Any, overrides: list[str], *args: Any) -> JobReturn:
        cfg = OmegaConf.create({"resume": False})
        OmegaConf.set_struct(cfg, True)
        OmegaConf.set_readonly(cfg, True)
        self.task_function(cfg)
        seen.update(overrides=overrides, root=os.environ.get("TOWNLET_ROOT"), argv=sys.argv)
        seen["sigterm"] = signal.getsignal(signal.SIGTERM)
        ret = JobReturn(overrides=overrides)
        ret.status, ret.return_value = JobStatus.FAILED, ValueError("the run failed")
        return ret

    monkeypatch.setattr(SlurmLauncher, "__call__", plugin_call)
    monkeypatch.setenv("SLURM_RESTART_COUNT", restarts)
    monkeypatch.delenv("TOWNLET_ROOT", raising=False)
    monkeypatch.setattr(sys, "argv", ["_submit.py"])
    previous = signal.signal(signal.SIGTERM, lambda *a: None)  # submitit's logging handler
    launcher = _launcher()
    launcher.task_env, launcher.command = {"TOWNLET_ROOT": "/pinned"}, ["townlet-train", "-m", "seed=0,1"]
    launcher.task_function = lambda cfg: seen.update(resume=cfg.resume)
    try:
        with pytest.raises(ValueError, match="the run failed"):
            launcher(["seed=1"], "hydra.sweep.dir", 1, "job_id_for_1", {})
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == {
        "resume": restarts == "1",  # in the job's config; the overrides stay the sweep's
        "overrides": ["seed=1"],
        "root": "/pinned",
        "argv": ["townlet-train", "-m", "seed=0,1"],
        "sigterm": signal.SIG_DFL,
    }


class FakeJob:
    """What ``_collect`` reads of a submitit job: its outcome, SLURM state and log paths."""

    def __init__(self, job_id: str, error: Exception | None, result: Any = None, state: str = "") -> None:
        self.job_id, self.error, self.value, self.state = job_id, error, result, state
        self.paths = type("Paths", (), {"stderr": Path(f"/logs/{job_id}_log.err")})()

    def exception(self) -> Exception | None:
        return self.error

    def results(self) -> list[Any]:
        return [self.value]


def test_tasks_without_a_result_become_failed_rows_and_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    launcher = _launcher()
    launcher.config = OmegaConf.create({"objective": "accuracy", "objective_mode": "max"})
    monkeypatch.setattr(TownletSlurmLauncher, "_job_dir", lambda self, o, num: tmp_path / str(num))
    done = JobReturn(overrides=["seed=0"])
    done.status, done.return_value = JobStatus.COMPLETED, 0.5
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "run.json").write_text(json.dumps({"status": "interrupted", "signal": "SIGTERM"}))
    jobs = [
        FakeJob("7_0", None, done),
        FakeJob("7_1", UncompletedJobError("no output"), state="CANCELLED by 0"),
        FakeJob("7_2", UncompletedJobError("no output"), state="FAILED"),
    ]
    overrides = [["seed=0"], ["seed=1"], ["seed=2"]]
    returns = launcher._collect(jobs, overrides, range(3), tmp_path)
    assert [r.status for r in returns] == [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.FAILED]
    with pytest.raises(SlurmTasksFailed, match="2 of 3 SLURM task"):
        _ = returns[1].return_value
    lines = capsys.readouterr().err.splitlines()
    assert (
        lines[0]
        == "townlet-train: job 1 (SLURM 7_1, CANCELLED) interrupted by SIGTERM; continue it with resume=true"
    )
    assert "job 2 (SLURM 7_2, FAILED) ended without a result (no run.json)" in lines[1]
    assert "/logs/7_2_log.err" in lines[1]
    status = json.loads((tmp_path / "2" / "job_status.json").read_text())
    assert status["status"] == "failed" and status["slurm_id"] == "7_2"
    rows = json.loads((tmp_path / "sweep_summary.json").read_text())["rows"]
    assert sorted(r["status"] for r in rows) == ["failed", "failed"]


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


def test_a_machine_without_slurm_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # no srun, no sbatch
    launcher = _launcher()
    launcher.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "sweep")}}})
    with pytest.raises(SystemExit) as stopped:
        launcher.launch([["seed=0"]], 0)
    assert stopped.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("townlet-train: error: cannot submit:"), err
    assert "srun" in err[0]
    assert not (tmp_path / "sweep").exists(), "a refused sweep leaves nothing behind"
