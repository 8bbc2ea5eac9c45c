"""End-to-end sweeps through the real ``townlet-train`` (subprocesses, tiny BC configs).

Each test gets its own sweep dir; jobs are a few hundred ms of training, most of the cost is
interpreter + torch start-up, hence ``slow`` (still part of CI).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from townlet.cli._common import USER_ERROR_EXIT

pytestmark = pytest.mark.slow

TINY = [
    "strategy=bc",
    "world.num_envs=2",
    "world.num_agents=2",
    "world.episode_length=32",
    "dataset.ticks=64",
    "strategy.epochs=1",
    "strategy.batch_size=64",
    "evaluation.episodes=1",
    "model.hidden_dim=32",
    "objective=accuracy",
]


def _env() -> dict[str, str]:
    # thread pinning (one thread) is inherited from tests/conftest.py
    return {**os.environ, "HYDRA_FULL_ERROR": "0"}


def _run(args: list[str], *, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=_env(), check=False)


def _train(tmp: Path, *overrides: str, multirun: bool = True) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "townlet.train"]
    if multirun:
        args.append("-m")
    args += [
        *TINY,
        f"paths.output_root={tmp / 'outputs'}",
        f"paths.data_dir={tmp / 'data'}",
        f"hydra.sweep.dir={tmp / 'sweep'}",
        *overrides,
    ]
    return _run(args)


def _summary(sweep: Path) -> dict[str, Any]:
    assert (sweep / "sweep_summary.md").is_file() and (sweep / "sweep_summary.csv").is_file()
    return json.loads((sweep / "sweep_summary.json").read_text())


def _result(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "result.json").read_text())


@pytest.fixture(scope="module")
def basic_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """seed=0,1 × lr=1e-3,-1: the lr=-1 jobs raise inside the sweep, the others must still run."""
    tmp = tmp_path_factory.mktemp("basic")
    proc = _train(tmp, "seed=0,1", "strategy.lr=1e-3,-1")
    assert proc.returncode == 1, proc.stderr[-3000:]  # Hydra exits 1 when a job failed
    return tmp / "sweep"


def test_basic_multirun_reports_every_job(basic_sweep: Path) -> None:
    job_dirs = sorted(p for p in basic_sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in job_dirs] == ["0", "1", "2", "3"]
    summary = _summary(basic_sweep)
    rows = {r["num"]: r for r in summary["rows"]}
    assert summary["axes"] == ["seed", "strategy.lr"]
    assert summary["objective"] == "accuracy"
    assert [rows[n]["status"] for n in range(4)] == ["ok", "failed", "ok", "failed"]
    # the job after the first failure still ran to completion
    assert (basic_sweep / "2" / "result.json").is_file()
    for n in (0, 2):
        assert rows[n]["objective"] == pytest.approx(_result(basic_sweep / str(n))["accuracy"])
    assert "strategy.lr" in rows[1]["error"] and rows[1]["error"]
    best = max((rows[0], rows[2]), key=lambda r: r["objective"])
    assert best["best"] and summary["best_num"] == best["num"]
    groups = {g["params"]["strategy.lr"]: g for g in summary["seed_groups"]}
    assert groups["0.001"]["n_ok"] == 2 and groups["-1"]["n_ok"] == 0
    assert "## Failed or unfinished jobs" in (basic_sweep / "sweep_summary.md").read_text()


def test_report_cli_rebuilds_the_same_summary(basic_sweep: Path, tmp_path: Path) -> None:
    copy = tmp_path / "sweep"
    shutil.copytree(basic_sweep, copy)
    for name in ("sweep_summary.json", "sweep_summary.csv", "sweep_summary.md"):
        (copy / name).unlink()
    shutil.rmtree(copy / "3")  # as if the sweep had been killed before its last job
    proc = _run([sys.executable, "-m", "townlet.cli.sweep_report", str(copy), "--quiet"])
    assert proc.returncode == 0, proc.stderr
    summary = _summary(copy)
    assert [r["status"] for r in summary["rows"]] == ["ok", "failed", "ok"]
    assert summary["expected_jobs"] == 4
    assert summary["missing_overrides"] and "seed=1" in summary["missing_overrides"][0]


def test_joblib_sweep_that_would_oversubscribe_the_cores_is_refused(tmp_path: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    proc = _train(
        tmp_path, "launcher=joblib", f"hydra.launcher.n_jobs={cores}", "device.num_threads=2", "seed=0,1"
    )
    assert proc.returncode == USER_ERROR_EXIT
    assert proc.stderr.strip().splitlines() == [
        f"townlet-train: config error: launcher=joblib runs {cores} jobs at once with device.num_threads=2 "
        f"each, {2 * cores} threads on {cores} cores; lower hydra.launcher.n_jobs or device.num_threads"
    ]
    assert not (tmp_path / "sweep").exists()


def test_joblib_multirun_matches_the_basic_launcher(basic_sweep: Path, tmp_path: Path) -> None:
    proc = _train(tmp_path, "launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = tmp_path / "sweep"
    summary = _summary(sweep)
    assert [r["status"] for r in summary["rows"]] == ["ok", "ok"]
    assert summary["axes"] == ["seed"]
    pids = {json.loads((sweep / str(n) / "run.json").read_text())["pid"] for n in (0, 1)}
    assert len(pids) == 2  # both jobs ran in worker processes
    # same seed, same config -> the same result under both launchers (jobs are deterministic on CPU)
    assert _result(sweep / "0")["accuracy"] == _result(basic_sweep / "0")["accuracy"]
    assert _result(sweep / "1")["accuracy"] == _result(basic_sweep / "2")["accuracy"]


def test_optuna_preset_runs_three_trials(tmp_path: Path) -> None:
    proc = _train(tmp_path, "hparams_search=bc_optuna", "hydra.sweeper.n_trials=3", "objective=accuracy")
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = tmp_path / "sweep"
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    # batch_size is pinned by TINY on the command line, so Optuna treats it as fixed
    assert set(results["best_params"]) == {"strategy.lr", "strategy.weight_decay"}
    summary = _summary(sweep)
    assert len(summary["rows"]) == 3 and all(r["status"] == "ok" for r in summary["rows"])
    assert summary["optuna"]["best_value"] == pytest.approx(max(r["objective"] for r in summary["rows"]))


def test_submitit_local_runs_two_jobs(tmp_path: Path) -> None:
    proc = _train(tmp_path, "launcher=submitit_local", "hydra.launcher.timeout_min=5", "seed=0,1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = tmp_path / "sweep"
    assert len(list(sweep.glob(".submitit/*/*_log.out"))) == 2
    summary = _summary(sweep)
    assert [r["status"] for r in summary["rows"]] == ["ok", "ok"]
    for n in (0, 1):
        record = json.loads((sweep / str(n) / "run.json").read_text())
        assert record["status"] == "completed" and record["job_num"] == n


def test_reproduce_a_sweep_job_is_identical(basic_sweep: Path, tmp_path: Path) -> None:
    original = basic_sweep / "2"
    proc = _run(
        [sys.executable, "-m", "townlet.cli.reproduce", str(original), "--output-dir", str(tmp_path / "r")]
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "identical" in proc.stdout
    new_record = json.loads((tmp_path / "r" / "run.json").read_text())
    old_record = json.loads((original / "run.json").read_text())
    assert new_record["parent_run"] == old_record["run_id"]
    assert new_record["config_hash"] == old_record["config_hash"]
    assert yaml.safe_load((tmp_path / "r" / ".hydra" / "overrides.yaml").read_text()) == yaml.safe_load(
        (original / ".hydra" / "overrides.yaml").read_text()
    )


def test_config_path_rerun_of_a_snapshot(basic_sweep: Path, tmp_path: Path) -> None:
    original = basic_sweep / "0"
    proc = _run(
        [
            sys.executable,
            "-m",
            "townlet.train",
            "--config-path",
            str((original / ".hydra").resolve()),
            "--config-name",
            "config",
            f"hydra.run.dir={tmp_path / 'rerun'}",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    cmp = _run(
        [
            sys.executable,
            "-m",
            "townlet.cli.reproduce",
            str(original),
            "--compare-with",
            str(tmp_path / "rerun"),
        ]
    )
    assert cmp.returncode == 0 and "identical" in cmp.stdout, cmp.stdout + cmp.stderr


def test_tampered_target_in_a_real_snapshot_is_refused(basic_sweep: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(basic_sweep / "0", run)
    cfg_path = run / ".hydra" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["strategy"]["_target_"] = "os.system"
    cfg_path.write_text(yaml.safe_dump(cfg))
    proc = _run(
        [sys.executable, "-m", "townlet.cli.reproduce", str(run), "--output-dir", str(tmp_path / "r")]
    )
    assert proc.returncode == 2
    assert "strategy._target_='os.system' is not allowed" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r").exists()


JOURNAL = (
    "hydra.sweeper.storage={{_target_:optuna.storages.JournalStorage,"
    "log_storage:{{_target_:optuna.storages.journal.JournalFileBackend,file_path:'{path}'}}}}"
)


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_second_optuna_sweep_extends_the_stored_study(kind: str, tmp_path: Path) -> None:
    """Stored studies: a second sweep with the same study and storage resumes and extends it."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if kind == "sqlite":
        storage: object = f"sqlite:///{tmp_path / 'study.db'}"
        override = f"hydra.sweeper.storage={storage}"
    else:
        path = tmp_path / "study.log"
        override = JOURNAL.format(path=path)
        storage = optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    for sweep in ("first", "second"):
        proc = _run(
            [
                sys.executable,
                "-m",
                "townlet.train",
                "-m",
                "hparams_search=bc_optuna",
                "hydra.sweeper.n_trials=2",
                *TINY,
                f"paths.output_root={tmp_path / 'outputs'}",
                f"paths.data_dir={tmp_path / 'data'}",
                f"hydra.sweep.dir={tmp_path / sweep}",
                override,
            ]
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        results = yaml.safe_load((tmp_path / sweep / "optimization_results.yaml").read_text())
        assert set(results["best_params"]) == {"strategy.lr", "strategy.weight_decay"}
    study = optuna.load_study(study_name="bc_optuna", storage=storage)  # type: ignore[arg-type]
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 4  # two sweeps of two trials, one study
    assert (tmp_path / "second" / "plots" / "optuna_history.png").stat().st_size > 0
    assert (tmp_path / "second" / "plots" / "optuna_importance.png").stat().st_size > 0
