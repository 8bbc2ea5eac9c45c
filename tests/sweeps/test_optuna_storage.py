"""Stored Optuna studies: a second sweep with the same study and storage resumes and extends it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.storages.journal import JournalFileBackend

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


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, check=False)


JOURNAL = (
    "hydra.sweeper.storage={{_target_:optuna.storages.JournalStorage,"
    "log_storage:{{_target_:optuna.storages.journal.JournalFileBackend,file_path:'{path}'}}}}"
)


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_second_sweep_extends_the_stored_study(kind: str, tmp_path: Path) -> None:
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
