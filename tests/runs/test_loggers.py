"""``logger=[...]``: each logger's output read back with its own library after real runs.

One tiny BC run feeds all four loggers at once (JSONL, CSV, TensorBoard, MLflow, with the policy as
MLflow model); the echo strategy (tests/_support) covers a multirun (one MLflow experiment: a parent
run, a child per job), a failing run and the single-logger choices, which need no training.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from conftest import support_searchpath
from townlet.config.instantiate import ConfigError
from townlet.config.schema.logger import LoggerConfig, LoggerKind
from townlet.runs.csv_log import LEADING, CsvSink
from townlet.runs.loggers import MetricsFanout, selected_loggers
from townlet.runs.metrics import read_metrics
from townlet.runs.sinks import RunInfo

# SQLAlchemy 2.1 deprecations raised inside MLflow's own store code: nothing this project can change
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.*")

TINY_BC = [
    "strategy=bc",
    "strategy.epochs=2",
    "strategy.batch_size=64",
    "world.num_envs=2",
    "world.num_agents=2",
    "world.episode_length=32",
    "dataset.ticks=64",
    "model.hidden_dim=32",
    "evaluation.enabled=false",
    "objective=accuracy",
]


def _client(db: Path) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{db}")


def _runs(client: Any, experiment: str, run_dir: Path | None = None) -> list[Any]:
    """The experiment's runs (those of ``run_dir`` when given: tests share one store)."""
    found = client.get_experiment_by_name(experiment)
    assert found is not None, [e.name for e in client.search_experiments()]
    runs = client.search_runs([found.experiment_id])
    return [r for r in runs if run_dir is None or r.data.tags.get("run_dir") == str(run_dir)]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``paths.output_root`` (so one MLflow database) for the echo runs of this module."""
    return tmp_path_factory.mktemp("store")


def _artifacts(client: Any, run_id: str, path: str | None = None) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id, path)}


def test_csv_widens_its_header_and_reads_back(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    path = tmp_path / "metrics.csv"
    sink = CsvSink(path.name, run=RunInfo(path=tmp_path))
    sink.write({"epoch": 1, "train_loss": 0.5, "wall_sec": 0.1})
    sink.write(
        {
            "epoch": 2,
            "train_loss": 0.25,
            "val_loss": float("nan"),
            "per_action_accuracy": {"eat": 0.75},
            "confusion_matrix": [[1, 2], [3, 4]],
            "is_best": True,
            "strategy": "bc",
            "wall_sec": 0.2,
        }
    )
    sink.close()
    CsvSink(path.name, run=RunInfo(path=tmp_path)).write(
        {"epoch": 3, "train_loss": 0.125}
    )  # a resumed run appends
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    header = list(rows[0])
    assert header[: len(LEADING)] == list(LEADING)
    assert header[len(LEADING) :] == sorted(header[len(LEADING) :])
    assert {"per_action_accuracy/eat", "confusion_matrix", "is_best", "val_loss"} <= set(header)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["is_best"] == "" and rows[1]["is_best"] == "true" and rows[1]["val_loss"] == ""
    frame = pd.read_csv(path)
    assert list(frame["train_loss"]) == [0.5, 0.25, 0.125]
    assert frame["per_action_accuracy/eat"].iloc[1] == 0.75 and pd.isna(frame["val_loss"]).all()
    assert frame["confusion_matrix"].iloc[1] == "[[1, 2], [3, 4]]"


def test_snapshot_logger_kind_maps_onto_the_logger_list() -> None:
    node = OmegaConf.structured(LoggerConfig(kind=LoggerKind.tensorboard, filename="m.jsonl"))
    chosen = selected_loggers(node)
    assert list(chosen) == ["tensorboard", "jsonl"] and chosen["jsonl"].filename == "m.jsonl"
    assert selected_loggers(OmegaConf.structured(LoggerConfig(kind=LoggerKind.none))) == {}
    assert selected_loggers(OmegaConf.structured(LoggerConfig())) == {}
    with pytest.raises(ConfigError, match=r"logger\.jsonl\.filename"):
        selected_loggers(OmegaConf.structured(LoggerConfig(filename="m.jsonl")))  # the old key alone


@pytest.mark.slow
def test_every_logger_after_a_tiny_bc_run(cli_env: dict[str, str], tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pd = pytest.importorskip("pandas")
    pytest.importorskip("mlflow")
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, out = tmp_path / "run", tmp_path / "out"
    args = [
        *TINY_BC,
        f"hydra.run.dir={run_dir}",
        f"paths.output_root={out}",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.state_dir={tmp_path / 'state'}",
        "logger=[jsonl,csv,tensorboard,mlflow]",
        "tags=[team:town,smoke]",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "townlet.train", *args],
        cwd=tmp_path,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jsonl = list(read_metrics(run_dir / "metrics.jsonl"))
    assert [r["epoch"] for r in jsonl] == [1, 2]
    assert (run_dir / "plots" / "training_curves.png").is_file()

    frame = pd.read_csv(run_dir / "metrics.csv")
    assert list(frame.columns[: len(LEADING)]) == list(LEADING)
    assert list(frame["epoch"]) == [1, 2] and list(frame["strategy"]) == ["bc", "bc"]
    assert list(frame["train_loss"]) == pytest.approx([r["train_loss"] for r in jsonl])
    assert list(frame["wall_sec"]) == [r["wall_sec"] for r in jsonl]  # one stamp for every logger

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("losses/train_loss")] == [
        (r["epoch"], pytest.approx(r["train_loss"])) for r in jsonl
    ]

    client = _client(out / "mlflow.db")
    (run,) = _runs(client, "runs")
    assert run.info.status == "FINISHED"
    assert run.data.params["strategy.epochs"] == "2" and run.data.params["world.num_envs"] == "2"
    assert run.data.tags["strategy"] == "bc" and run.data.tags["seed"] == "0"
    assert run.data.tags["world"] == "default" and run.data.tags["run_dir"] == str(run_dir)
    assert run.data.tags["team"] == "town" and run.data.tags["smoke"] == "true"  # the config's tags
    record = json.loads((run_dir / "run.json").read_text())
    assert run.data.tags.get("mlflow.source.git.commit") == record["git_commit"]
    assert run.data.tags["mlflow.source.name"] == record["command"][0]
    assert run.data.tags["mlflow.user"] and run.data.tags["mlflow.source.type"] == "LOCAL"
    result = json.loads((run_dir / "result.json").read_text())
    assert run.data.metrics["objective"] == pytest.approx(result["accuracy"])  # objective=accuracy
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [
        (r["epoch"], pytest.approx(r["train_loss"])) for r in jsonl
    ]
    top = _artifacts(client, run.info.run_id)
    assert {"result.json", "plots", "checkpoints", "hydra"} <= top
    assert "plots/training_curves.png" in _artifacts(client, run.info.run_id, "plots")
    assert any(p.endswith(".pt") for p in _artifacts(client, run.info.run_id, "checkpoints"))
    _assert_policy_model(out / "mlflow.db", run.info.run_id, run_dir / "export" / "policy.onnx")


def _assert_policy_model(db: Path, run_id: str, exported: Path) -> None:
    """The run's MLflow model ``policy`` loads with MLflow's own API and acts as the exported file."""
    import mlflow
    import numpy as np
    import onnxruntime

    from townlet.nets.export import check_inputs
    from townlet.world.spec import ObservationSpec

    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map["townlet_policy"])
    spec = ObservationSpec.from_dict(meta["spec"])
    batch = check_inputs(np.random.default_rng(1), spec, batch=6)
    want = session.run(["logits", "value"], batch)
    uri = f"runs:/{run_id}/policy"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
        assert len(mlflow.onnx.load_model(uri).graph.input) == 3
        got = mlflow.pyfunc.load_model(uri).predict(batch)
    assert got["logits"].shape == (6, spec.num_actions)
    np.testing.assert_array_equal(got["logits"], want[0])
    np.testing.assert_array_equal(got["value"], want[1])


def _echo(run_cli: Any, *extra: str, multirun: bool = False) -> subprocess.CompletedProcess[str]:
    flags = ["-m"] if multirun else []
    return run_cli(*flags, support_searchpath(), "strategy=echo", "objective=accuracy", *extra)


@pytest.mark.slow
def test_a_multirun_is_one_parent_run_with_a_child_per_job(run_cli: Any, store: Path) -> None:
    pytest.importorskip("mlflow")
    out, sweep = store, store / "multiruns" / "day" / "sweep"
    overrides = ["seed=0,1", "logger=mlflow", f"paths.output_root={out}", f"hydra.sweep.dir={sweep}"]
    parallel = ["launcher=joblib", "hydra.launcher.n_jobs=2"]  # jobs in other processes, at once
    proc = _echo(run_cli, *overrides, *parallel, multirun=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = _client(out / "mlflow.db")
    found = _runs(client, "multiruns/day/sweep")  # named after the sweep dir
    (parent,) = [r for r in found if r.data.tags.get("run_role") == "sweep"]
    runs = [r for r in found if r is not parent]
    assert parent.info.status == "FINISHED" and parent.info.run_name == "sweep"
    assert parent.data.tags["sweep_dir"] == str(sweep) and "seed=0,1" in parent.data.tags["overrides"]
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    assert parent.data.metrics == {"best_objective": 0.1}  # echo: accuracy = seed / 10
    assert sorted(r.data.tags["job_num"] for r in runs) == ["0", "1"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["run_dir"] for r in runs} == {str(sweep / "0"), str(sweep / "1")}
    assert {r.data.params["seed"] for r in runs} == {"0", "1"}
    assert not (sweep / "0" / "metrics.jsonl").exists()  # logger=mlflow alone: no JSONL file


@pytest.mark.slow
def test_a_failed_run_ends_its_mlflow_run_failed(run_cli: Any, store: Path, tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    out = store
    overrides = [f"hydra.run.dir={tmp_path / 'run'}", f"paths.output_root={out}", "logger=[csv,mlflow]"]
    proc = _echo(run_cli, *overrides, "strategy.fail=true")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    (run,) = _runs(_client(out / "mlflow.db"), "runs", tmp_path / "run")
    assert run.info.status == "FAILED" and "asked to fail" in run.data.tags["error"]


def test_an_interrupted_run_ends_its_mlflow_run_killed(store: Path, tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    from townlet.runs.mlflow_log import MlflowSink

    db = store / "mlflow.db"
    fanout = MetricsFanout([MlflowSink(f"sqlite:///{db}", run=RunInfo(path=tmp_path, config={"seed": 1}))])
    with pytest.raises(KeyboardInterrupt):
        try:
            fanout.log({"epoch": 1, "loss": 2.0, "note": "text is not a metric"})
            raise KeyboardInterrupt
        finally:
            fanout.close()  # as run_job's ``finally`` does
    client = _client(db)
    (run,) = _runs(client, "runs", tmp_path)
    assert run.info.status == "KILLED" and run.data.params == {"seed": "1"}
    assert run.data.metrics == {"loss": 2.0}


def test_csv_alone_writes_no_jsonl_and_bad_stores_are_one_line(run_cli: Any, tmp_path: Path) -> None:
    proc = _echo(run_cli, f"hydra.run.dir={tmp_path / 'run'}", "logger=csv", "logger.progress=off")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with (tmp_path / "run" / "metrics.csv").open(newline="") as handle:
        assert [r["epoch"] for r in csv.DictReader(handle)] == ["1", "2", "3"]
    assert not (tmp_path / "run" / "metrics.jsonl").exists() and not (tmp_path / "run" / "plots").exists()
    assert "progress:" not in proc.stdout

    pytest.importorskip("mlflow")
    bad_uri = "logger.mlflow.tracking_uri=nope://x"
    bad = _echo(run_cli, f"hydra.run.dir={tmp_path / 'bad'}", "logger=mlflow", bad_uri)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "logger.mlflow" in bad.stderr and "tracking_uri" in bad.stderr


def test_mlflow_runs_sort_by_their_final_evaluation(store: Path, tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    from townlet.runs.mlflow_log import MlflowSink

    db = store / "mlflow.db"
    config = {"objective": "evaluation.policy.mean_return", "tags": ["sorting"]}
    for seed, trained in ((0, -3.0), (1, -1.5)):
        run = RunInfo(path=tmp_path / str(seed), config={**config, "seed": seed}, seed=seed)
        fanout = MetricsFanout(
            [MlflowSink(f"sqlite:///{db}", experiment="sorted", log_artifacts=False, run=run)]
        )
        fanout.log({"iteration": 3, "loss_total": 1.0})
        evaluation = {
            "policy": {"mean_return": trained},
            "scripted": {"mean_return": -1.0},
            "random": {"mean_return": -9.0},
        }
        fanout.after_result(run.path, {"kind": "ppo", "evaluation": evaluation})
        fanout.close()
    client = _client(db)
    experiment = client.get_experiment_by_name("sorted")
    best, worst = client.search_runs([experiment.experiment_id], order_by=["metrics.objective DESC"])
    assert (best.data.params["seed"], worst.data.params["seed"]) == ("1", "0")
    assert best.data.metrics == {
        "loss_total": 1.0,
        "objective": -1.5,
        "evaluation.policy.mean_return": -1.5,
        "evaluation.scripted.mean_return": -1.0,
        "evaluation.random.mean_return": -9.0,
    }
    assert best.info.status == "FINISHED" and best.data.tags["sorting"] == "true"
    found = client.search_runs([experiment.experiment_id], filter_string="metrics.objective > -2")
    assert [r.info.run_id for r in found] == [best.info.run_id]
