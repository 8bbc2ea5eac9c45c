"""Launcher and Optuna presets compose as documented (compose API, no job runs)."""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from townlet.config.schema import conf_dir, register_configs


@pytest.fixture
def hydra_conf() -> Iterator[None]:
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(conf_dir()), job_name="train"):
        yield
    GlobalHydra.instance().clear()


def _compose(*overrides: str) -> DictConfig:
    return compose("train", overrides=list(overrides), return_hydra_config=True)


def _threads(cfg: DictConfig) -> tuple[int, str]:
    return int(cfg.device.num_threads), str(cfg.hydra.job.env_set.OMP_NUM_THREADS)


@pytest.mark.usefixtures("hydra_conf")
def test_summary_callback_is_registered() -> None:
    cfg = _compose()
    assert cfg.hydra.callbacks.sweep_summary._target_ == "townlet.sweeps.summary.SweepSummaryCallback"


@pytest.mark.usefixtures("hydra_conf")
@pytest.mark.parametrize(
    ("preset", "launcher"),
    [
        ("joblib", "JoblibLauncher"),
        ("submitit_local", "LocalLauncher"),
        ("slurm", "SlurmLauncher"),
    ],
)
def test_launcher_presets_cap_threads(preset: str, launcher: str) -> None:
    cfg = _compose("strategy=bc", f"launcher={preset}")
    assert str(cfg.hydra.launcher._target_).endswith(launcher)
    threads, omp = _threads(cfg)
    assert str(threads) == omp  # torch threads and the OpenMP pool agree
    if preset == "slurm":
        assert cfg.hydra.launcher.cpus_per_task == threads
    if preset == "joblib":
        assert threads == 1


@pytest.mark.usefixtures("hydra_conf")
@pytest.mark.parametrize(("preset", "strategy"), [("ppo_optuna", "ppo"), ("bc_optuna", "bc")])
def test_optuna_presets(preset: str, strategy: str) -> None:
    cfg = _compose(f"hparams_search={preset}", "seed=7")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.townlet_optuna_sweeper.StoredOptunaSweeper"
    assert cfg.hydra.runtime.choices.strategy == strategy
    assert sweeper.direction == "maximize" and sweeper.sampler.seed == 7
    assert sweeper.max_failure_rate == 1.0  # a diverged trial never stops the study
    assert all(key.startswith("strategy.") for key in sweeper.params)
    flipped = _compose(f"hparams_search={preset}", "objective_mode=min")
    assert flipped.hydra.sweeper.direction == "minimize"


def test_task_function_and_results_pickle() -> None:
    """submitit/joblib ship the task by reference and results by value: both must pickle."""
    from townlet.cli.train import run_job
    from townlet.dto import BCTrainingResultDTO

    assert pickle.loads(pickle.dumps(run_job)) is run_job
    dto = BCTrainingResultDTO(
        manifest="m", accuracy=0.5, loss=0.1, learning_rate=1e-3, batch_size=8, epochs=1
    )
    assert pickle.loads(pickle.dumps(dto)) == dto
    assert OmegaConf.create({"a": 1}) == pickle.loads(pickle.dumps(OmegaConf.create({"a": 1})))
