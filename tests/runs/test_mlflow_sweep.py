"""The sweep's MLflow parent run, driven through the Hydra callback's own hooks: the outcome it ends
with, the best objective of its children, and a store it cannot reach (one warning, no run)."""

from __future__ import annotations

import logging
import pickle
import socket
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig, OmegaConf

from townlet.runs.sinks import RunInfo
from townlet.sweeps.mlflow_parent import MlflowSweepCallback

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.*"),
    pytest.mark.filterwarnings("ignore::FutureWarning:mlflow.*"),
]
mlflow = pytest.importorskip("mlflow")


def _config(root: Path, uri: str, **mlflow_settings: Any) -> DictConfig:
    settings = {"tracking_uri": uri, "experiment": None, "request_timeout_sec": 1, "request_max_retries": 0}
    return OmegaConf.create(
        {
            "run_name": "train",
            "objective_mode": "min",
            "tags": ["team:town"],
            "paths": {"output_root": str(root)},
            "logger": {"mlflow": {**settings, **mlflow_settings}},
            "hydra": {"sweep": {"dir": str(root / "multiruns" / "s")}, "overrides": {"task": ["seed=0,1"]}},
        }
    )


def _job(root: Path, uri: str, seed: int, objective: float) -> str:
    """One job's MLflow run, as a job's logger makes it; returns its run id."""
    from townlet.runs.loggers import MetricsFanout
    from townlet.runs.mlflow_log import MlflowSink

    sweep = root / "multiruns" / "s"
    run = RunInfo(
        path=sweep / str(seed),
        config={"seed": seed, "objective": "accuracy", "objective_mode": "min"},
        seed=seed,
        output_root=root,
        job_num=seed,
        sweep_dir=sweep,
    )
    sink = MlflowSink(uri, log_artifacts=False, run=run)
    fanout = MetricsFanout([sink])
    fanout.after_result(run.path, {"accuracy": objective})
    return sink.run_id


def test_a_failed_sweep_ends_its_parent_failed_with_the_best_objective(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = _config(tmp_path, uri)
    callback = MlflowSweepCallback()
    callback.on_multirun_start(config)
    parent = callback.run_id
    assert parent is not None
    assert pickle.loads(pickle.dumps(callback)).run_id == parent  # launchers ship it to their workers
    children = [_job(tmp_path, uri, seed, value) for seed, value in ((0, 0.5), (1, 0.25))]
    try:
        raise RuntimeError("a job failed")
    except RuntimeError:
        callback.on_multirun_end(config)  # as Hydra's ``finally`` sees it
    client = mlflow.MlflowClient(uri)
    run = client.get_run(parent)
    assert run.info.status == "FAILED" and "a job failed" in run.data.tags["error"]
    assert run.data.metrics == {"best_objective": 0.25}  # objective_mode=min
    assert run.data.tags["team"] == "town" and run.data.tags["run_role"] == "sweep"
    assert client.get_experiment(run.info.experiment_id).name == "multiruns/s"
    assert {client.get_run(c).data.tags["mlflow.parentRunId"] for c in children} == {parent}
    callback.on_multirun_end(config)  # once only
    assert client.get_run(parent).info.status == "FAILED"


def test_no_parent_without_logger_mlflow_and_a_warning_when_the_store_is_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    quiet = MlflowSweepCallback()
    config = _config(tmp_path, "unused")
    config.logger.mlflow = None
    quiet.on_multirun_start(config)
    quiet.on_multirun_end(config)
    assert quiet.run_id is None and not (tmp_path / "mlflow.db").exists()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    callback = MlflowSweepCallback()
    callback.on_multirun_start(_config(tmp_path, f"http://127.0.0.1:{port}"))
    callback.on_multirun_end(_config(tmp_path, f"http://127.0.0.1:{port}"))
    assert callback.run_id is None
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert line.startswith("logger mlflow: could not start the sweep's parent run") and "goes on" in line
