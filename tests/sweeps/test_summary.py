"""Sweep summary built from fabricated job directories (no Hydra run, no torch)."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
import yaml
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from townlet.cli import sweep_report
from townlet.sweeps.jobs import SweepReportError, build_summary
from townlet.sweeps.render import write_summary
from townlet.sweeps.summary import SweepSummaryCallback

from .conftest import MakeJob

GRID = {
    0: (["seed=0", "strategy.lr=0.1"], 0.80),
    1: (["seed=0", "strategy.lr=0.01"], 0.90),
    2: (["seed=1", "strategy.lr=0.1"], 0.70),
    3: (["seed=1", "strategy.lr=0.01"], 0.94),
}


def _write_multirun_yaml(sweep_dir: Path, task: list[str]) -> None:
    cfg = {
        "hydra": {
            "sweeper": {
                "_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                "params": None,
            },
            "overrides": {"task": task},
        }
    }
    (sweep_dir / "multirun.yaml").write_text(yaml.safe_dump(cfg))


def test_grid_rows_best_and_seed_statistics(make_job: MakeJob, sweep_dir: Path) -> None:
    for num, (overrides, acc) in GRID.items():
        make_job(num, ["strategy=bc", *overrides], accuracy=acc)
    summary = build_summary(sweep_dir)

    assert [r.num for r in summary.rows] == [0, 1, 2, 3]
    assert summary.axes == ["seed", "strategy.lr"]  # strategy=bc is fixed, so not an axis
    assert summary.objective == "accuracy" and summary.objective_mode == "max"
    assert [r.best for r in summary.rows] == [False, False, False, True]
    assert summary.best_num == 3
    assert summary.counts == {"ok": 4, "failed": 0, "diverged": 0, "incomplete": 0, "total": 4}
    assert summary.rows[0].metrics["accuracy"] == pytest.approx(0.80)
    assert summary.rows[0].duration_sec == pytest.approx(2.0)

    groups = {g.params["strategy.lr"]: g for g in summary.seed_groups}
    assert set(groups) == {"0.1", "0.01"}
    assert groups["0.01"].objective_mean == pytest.approx(0.92)
    assert groups["0.01"].objective_std == pytest.approx(statistics.stdev([0.90, 0.94]))
    assert groups["0.1"].objective_mean == pytest.approx(0.75)
    assert groups["0.01"].best and not groups["0.1"].best
    assert groups["0.1"].n_ok == 2 and groups["0.1"].seeds == ["0", "1"]


def test_min_mode_picks_the_smallest(make_job: MakeJob, sweep_dir: Path) -> None:
    for num, (overrides, acc) in GRID.items():
        make_job(num, overrides, accuracy=acc)
    summary = build_summary(sweep_dir, objective="loss", mode="min")
    assert summary.objective == "loss"
    # the records carry the accuracy objective; asking for another key reads it from result.json
    assert [r.objective for r in summary.rows] == pytest.approx([0.2, 0.1, 0.3, 0.06])
    assert summary.best_num == 3


def test_failures_are_reported_and_never_best(make_job: MakeJob, sweep_dir: Path) -> None:
    make_job(0, ["seed=0"], accuracy=0.5)
    make_job(
        1,
        ["seed=1"],
        status="failed",
        accuracy=None,
        error="boom in epoch 2",
        error_type="RuntimeError",
    )
    make_job(2, ["seed=2"], status="failed", accuracy=None, error="objective is NaN", error_type="X")
    # a job Hydra saw raise before the runner could record anything but a 'running' record
    make_job(
        3,
        ["seed=3"],
        status="running",
        accuracy=None,
        job_status={"num": 3, "status": "failed", "error": "ValueError: bad input", "overrides": ["seed=3"]},
    )
    summary = build_summary(sweep_dir)
    by_num = {r.num: r for r in summary.rows}
    assert by_num[0].status == "ok" and by_num[0].best
    assert by_num[1].status == "failed" and by_num[1].error == "RuntimeError: boom in epoch 2"
    assert by_num[2].status == "diverged"
    assert by_num[3].status == "failed" and by_num[3].error == "ValueError: bad input"
    assert summary.counts["failed"] == 2 and summary.counts["diverged"] == 1

    write_summary(sweep_dir)
    md = (sweep_dir / "sweep_summary.md").read_text()
    assert "boom in epoch 2" in md and "ValueError: bad input" in md
    assert "## Failed or unfinished jobs" in md


def test_interrupted_sweep_lists_jobs_that_never_started(make_job: MakeJob, sweep_dir: Path) -> None:
    _write_multirun_yaml(sweep_dir, ["seed=0,1", "strategy.lr=0.1,0.01"])
    make_job(0, ["seed=0", "strategy.lr=0.1"], accuracy=0.6)
    make_job(1, ["seed=0", "strategy.lr=0.01"], write_result=False, write_record=False)  # killed mid-run
    summary = build_summary(sweep_dir)
    assert summary.expected_jobs == 4
    assert [r.status for r in summary.rows] == ["ok", "incomplete"]
    assert sorted(map(sorted, summary.missing_overrides)) == [
        ["seed=1", "strategy.lr=0.01"],
        ["seed=1", "strategy.lr=0.1"],
    ]


def test_written_files_agree(make_job: MakeJob, sweep_dir: Path) -> None:
    for num, (overrides, acc) in GRID.items():
        make_job(num, overrides, accuracy=acc)
    write_summary(sweep_dir)
    data = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert len(data["rows"]) == 4 and data["best_num"] == 3
    rows = list(csv.DictReader((sweep_dir / "sweep_summary.csv").open()))
    assert [row["best"] for row in rows] == ["0", "0", "0", "1"]
    assert float(rows[3]["objective"]) == pytest.approx(0.94)
    assert rows[1]["strategy.lr"] == "0.01"
    md = (sweep_dir / "sweep_summary.md").read_text()
    assert "**ok (best)**" in md and "## Mean ± std over seeds" in md
    assert "0.92 ± 0.0283" in md


def test_report_cli_rebuilds_and_explains_bad_dirs(
    make_job: MakeJob, sweep_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_job(0, ["seed=0"], accuracy=0.7)
    assert sweep_report.main([str(sweep_dir), "--quiet"]) == 0
    assert (sweep_dir / "sweep_summary.csv").exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    assert sweep_report.main([str(empty)]) == 2
    assert "holds no job directories" in capsys.readouterr().err
    assert sweep_report.main([str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SweepReportError, match="mode"):
        build_summary(sweep_dir, mode="sideways")


@pytest.mark.parametrize("name", ["sweep_summary.md", ".sweep_summary.lock", "sweep_objective.png"])
def test_report_cli_refuses_to_write_through_a_planted_link(
    name: str, make_job: MakeJob, sweep_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_job(0, ["seed=0"], accuracy=0.7)
    victim = tmp_path / "victim.json"
    victim.write_text("precious")
    (sweep_dir / name).symlink_to(victim)
    assert sweep_report.main([str(sweep_dir), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{sweep_dir / name} is a symbolic link" in err and err.count("\n") == 1
    assert victim.read_text() == "precious" and not (sweep_dir / "sweep_summary.json").exists()


def test_callback_records_a_failed_job_and_refreshes(make_job: MakeJob, sweep_dir: Path) -> None:
    make_job(0, ["seed=0"], accuracy=0.8)
    job_dir = sweep_dir / "1"
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["seed=1"]))
    config = OmegaConf.create(
        {
            "objective": "accuracy",
            "objective_mode": "max",
            "hydra": {
                "mode": "MULTIRUN",
                "sweep": {"dir": str(sweep_dir)},
                "runtime": {"output_dir": str(job_dir)},
                "job": {"num": 1},
            },
        }
    )
    ret = JobReturn(overrides=["seed=1"], status=JobStatus.FAILED)
    ret.return_value = KeyError("missing key 'x'")
    callback = SweepSummaryCallback()
    callback.on_job_start(config)
    callback.on_job_end(config, ret)

    status = json.loads((job_dir / "job_status.json").read_text())
    assert status["status"] == "failed" and status["num"] == 1
    assert status["error"].startswith("KeyError")
    data = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert [r["status"] for r in data["rows"]] == ["ok", "failed"]


def test_callback_ignores_single_runs(tmp_path: Path) -> None:
    config = OmegaConf.create(
        {"hydra": {"mode": "RUN", "sweep": {"dir": str(tmp_path)}, "runtime": {"output_dir": str(tmp_path)}}}
    )
    ret = JobReturn(overrides=[], status=JobStatus.COMPLETED)
    ret.return_value = 1.0
    SweepSummaryCallback().on_job_end(config, ret)
    assert list(tmp_path.iterdir()) == []
