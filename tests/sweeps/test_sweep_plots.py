"""Sweep plots: objective vs each swept parameter (seeds as replicates), learning curves overlaid."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import yaml
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from townlet.cli.sweep_report import main as sweep_report
from townlet.sweeps.jobs import build_summary
from townlet.sweeps.plots import (
    CURVES_PNG,
    OBJECTIVE_PNG,
    job_curves,
    mean_references,
    numeric_values,
    objective_spreads,
)
from townlet.sweeps.render import write_summary
from townlet.sweeps.summary import SweepSummaryCallback

from .conftest import MakeJob

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _metrics(job: Path, lines: Sequence[Mapping[str, object]]) -> None:
    (job / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def _ppo_curve(job: Path, slope: float) -> None:
    _metrics(
        job,
        [{"iteration": i, "env_steps": 64 * i, "episode_return_mean": slope * i} for i in (1, 2, 3)]
        + [{"iteration": 3, "env_steps": 192, "eval_return_mean": slope * 3.5}],
    )


def _grid(make_job: MakeJob) -> None:
    """lr x batch x seed with known objectives: accuracy = lr-rank/10 + seed/100 (+0.05 for batch 64)."""
    num = 0
    for lr_rank, lr in enumerate(("1e-4", "1e-3", "1e-2")):
        for batch_bonus, batch in ((0.0, "32"), (0.05, "64")):
            for seed in (0, 1):
                accuracy = 0.5 + lr_rank / 10 + batch_bonus + seed / 100
                overrides = [f"strategy.lr={lr}", f"strategy.batch_size={batch}", f"seed={seed}"]
                make_job(num, overrides, accuracy=accuracy)
                num += 1


def test_spreads_treat_seed_as_replicate_and_split_by_the_other_parameters(
    make_job: MakeJob, sweep_dir: Path
) -> None:
    _grid(make_job)
    spreads = objective_spreads(build_summary(sweep_dir))
    assert set(spreads) == {"strategy.lr", "strategy.batch_size"}  # seed gets no panel
    by_lr = {(s.x, s.series): s for s in spreads["strategy.lr"]}
    assert len(by_lr) == 6  # 3 lr values x 2 batch sizes, each over 2 seeds
    cell = by_lr[("1e-2", "strategy.batch_size=64")]
    assert cell.seeds == ["0", "1"] and cell.values == pytest.approx([0.75, 0.76])
    assert cell.mean == pytest.approx(0.755) and cell.std == pytest.approx(0.01 / 2**0.5)
    by_batch = {(s.x, s.series): s for s in spreads["strategy.batch_size"]}
    assert by_batch[("32", "strategy.lr=1e-4")].values == pytest.approx([0.5, 0.51])


def test_only_seed_swept_gives_one_panel_over_all_jobs(make_job: MakeJob, sweep_dir: Path) -> None:
    for seed, accuracy in enumerate((0.6, 0.7, 0.8)):
        make_job(seed, [f"seed={seed}"], accuracy=accuracy)
    make_job(3, ["seed=3"], status="failed", accuracy=None, error="boom")  # no objective: left out
    (panel,) = objective_spreads(build_summary(sweep_dir))[""]
    assert panel.seeds == ["0", "1", "2"] and panel.mean == pytest.approx(0.7)


def test_axis_is_numeric_only_when_every_value_parses() -> None:
    assert numeric_values(["1e-4", "0.01", "3"]) == [1e-4, 0.01, 3.0]
    assert numeric_values(["bc", "ppo"]) is None and numeric_values(["1", "nan"]) is None


def test_learning_curves_overlay_every_job_and_fall_back_to_epochs(
    make_job: MakeJob, sweep_dir: Path
) -> None:
    for num, slope in enumerate((1.0, 2.0)):
        job = make_job(num, [f"strategy.lr={num + 1}e-3"], accuracy=0.5 + num / 10)
        _ppo_curve(job, slope)
    make_job(2, ["strategy.lr=3e-3"], accuracy=0.1)  # no metrics.jsonl: no curve, no failure
    curves, quantity = job_curves(build_summary(sweep_dir))
    assert quantity == "return" and [c.label for c in curves] == [
        "#0 strategy.lr=1e-3",
        "#1 strategy.lr=2e-3 (best)",
    ]
    assert curves[1].train == [(64.0, 2.0), (128.0, 4.0), (192.0, 6.0)] and curves[1].eval == [(192.0, 7.0)]
    assert curves[1].best and not curves[0].best


def test_bc_jobs_get_validation_accuracy_per_epoch(make_job: MakeJob, sweep_dir: Path) -> None:
    job = make_job(0, ["seed=0"])
    _metrics(job, [{"epoch": e, "val_accuracy": e / 4, "train_loss": 1 / e} for e in (1, 2)])
    curves, quantity = job_curves(build_summary(sweep_dir))
    assert quantity == "val_accuracy" and curves[0].train == [(1.0, 0.25), (2.0, 0.5)]


def test_reference_returns_are_averaged_over_jobs(make_job: MakeJob, sweep_dir: Path) -> None:
    for num, scripted in enumerate((-10.0, -12.0)):
        job = make_job(num, [f"seed={num}"])
        result = json.loads((job / "result.json").read_text())
        result["evaluation"] = {
            "policy": _evaluation("trained", 1.0),
            "scripted": _evaluation("scripted", scripted),
            "random": _evaluation("random", -20.0),
        }
        (job / "result.json").write_text(json.dumps(result))
    assert mean_references(build_summary(sweep_dir)) == {"scripted teacher": -11.0, "random": -20.0}


def _evaluation(label: str, mean_return: float) -> dict[str, object]:
    return {
        "policy": label,
        "episodes": 2,
        "mean_return": mean_return,
        "return_std": 0.0,
        "faint_rate": 0.0,
        "mean_needs": 0.5,
        "conflicts_per_100_agent_ticks": 0.0,
    }


def test_summary_writes_both_pngs_and_links_them(make_job: MakeJob, sweep_dir: Path) -> None:
    _grid(make_job)
    for job in sorted(sweep_dir.iterdir()):
        _ppo_curve(job, 1.0 + int(job.name) / 10)
    summary = write_summary(sweep_dir)
    assert summary.plots == [OBJECTIVE_PNG, CURVES_PNG]
    for name in summary.plots:
        data = (sweep_dir / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5_000
    markdown = (sweep_dir / "sweep_summary.md").read_text()
    assert f"![sweep_objective]({OBJECTIVE_PNG})" in markdown and f"({CURVES_PNG})" in markdown
    assert json.loads((sweep_dir / "sweep_summary.json").read_text())["plots"] == summary.plots
    assert not list(sweep_dir.glob(".*.tmp"))


def test_a_plotting_failure_is_logged_and_never_fails_the_summary(
    make_job: MakeJob, sweep_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    make_job(0, ["seed=0"])

    def broken(*args: object) -> list[str]:
        raise RuntimeError("no display for you")

    monkeypatch.setattr("townlet.sweeps.plots.write_sweep_plots", broken)
    with caplog.at_level(logging.WARNING):
        summary = write_summary(sweep_dir)
    assert summary.plots == [] and "## Plots" not in (sweep_dir / "sweep_summary.md").read_text()
    assert "no display for you" in caplog.text


def test_report_cli_draws_plots_unless_told_not_to(
    make_job: MakeJob, sweep_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_job(0, ["seed=0"], accuracy=0.6)
    make_job(1, ["seed=1"], accuracy=0.7)
    assert sweep_report([str(sweep_dir), "--quiet", "--no-plots"]) == 0
    assert not (sweep_dir / OBJECTIVE_PNG).exists()
    assert sweep_report([str(sweep_dir), "--quiet"]) == 0
    assert (sweep_dir / OBJECTIVE_PNG).read_bytes()[:8] == PNG_MAGIC
    assert f"wrote {sweep_dir.resolve() / OBJECTIVE_PNG}" in capsys.readouterr().err


def test_callback_draws_the_plots_once_the_grid_is_complete(make_job: MakeJob, sweep_dir: Path) -> None:
    """After each job the tables are refreshed; the PNGs come with the job that completes the grid
    (a basic sweep with a failed job never reaches on_multirun_end) and at the end of the multirun."""
    multirun = {
        "hydra": {
            "sweeper": {
                "_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                "params": None,
            },
            "overrides": {"task": ["seed=0,1"]},
        }
    }
    (sweep_dir / "multirun.yaml").write_text(yaml.safe_dump(multirun))
    callback = SweepSummaryCallback()

    def finish(num: int) -> None:
        make_job(num, [f"seed={num}"], accuracy=0.5 + num / 10)
        config = OmegaConf.create(
            {
                "objective": "accuracy",
                "hydra": {
                    "mode": "MULTIRUN",
                    "sweep": {"dir": str(sweep_dir)},
                    "runtime": {"output_dir": str(sweep_dir / str(num))},
                    "job": {"num": num},
                },
            }
        )
        ret = JobReturn(overrides=[f"seed={num}"], status=JobStatus.COMPLETED)
        ret.return_value = 0.5
        callback.on_job_end(config, ret)

    finish(0)
    assert (sweep_dir / "sweep_summary.md").exists() and not (sweep_dir / OBJECTIVE_PNG).exists()
    finish(1)
    assert (sweep_dir / OBJECTIVE_PNG).read_bytes()[:8] == PNG_MAGIC
    assert f"({OBJECTIVE_PNG})" in (sweep_dir / "sweep_summary.md").read_text()


def test_a_search_sweep_gets_one_series_per_panel(make_job: MakeJob, sweep_dir: Path) -> None:
    """Optuna draws every value afresh: no setting of the other parameter recurs, so no per-setting lines."""
    for num, (lr, clip) in enumerate([("0.001", "0.1"), ("0.002", "0.25"), ("0.004", "0.3")]):
        make_job(num, [f"strategy.lr={lr}", f"strategy.clip_param={clip}"], accuracy=0.5 + num / 10)
    spreads = objective_spreads(build_summary(sweep_dir))
    assert [(s.x, s.series, s.values) for s in spreads["strategy.lr"]] == [
        ("0.001", "", [0.5]),
        ("0.002", "", [0.6]),
        ("0.004", "", [0.7]),
    ]
