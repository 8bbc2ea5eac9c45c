"""``logger=tensorboard``: JSONL unchanged plus event files whose scalars can be read back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import support_searchpath
from townlet.runs.loggers import MetricsFanout
from townlet.runs.metrics import read_metrics
from townlet.runs.sinks import JsonlSink, RunInfo, record_step, scalar_leaves, stage_prefix
from townlet.runs.tensorboard import TensorBoardNotAvailableError, TensorBoardSink

pytest.importorskip("tensorboard")
CONFIG_TAG = "config/text_summary"  # tensorboardX files add_text("config", ...) under this tag


def _load(logdir: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _series(acc: Any, tag: str) -> list[tuple[int, Any]]:
    return [(e.step, pytest.approx(e.value)) for e in acc.Scalars(tag)]


def test_scalar_leaves_flattens_and_skips_non_numbers() -> None:
    record = {
        "loss": 0.5,
        "count": 3,
        "nan": float("nan"),
        "inf": float("inf"),
        "flag": True,
        "name": "bc",
        "confusion_matrix": [[1, 0], [0, 1]],
        "missing": None,
        "per_action_accuracy": {"noop": 0.25, "move": None, "deep": {"x": 2.0}},
    }
    assert dict(scalar_leaves(record)) == {
        "loss": 0.5,
        "count": 3.0,
        "per_action_accuracy/noop": 0.25,
        "per_action_accuracy/deep/x": 2.0,
    }


def test_step_and_stage_prefix() -> None:
    assert record_step({"iteration": 4, "epoch": 9}, 1) == 4
    assert record_step({"epoch": 9}, 1) == 9
    assert record_step({"epoch": None, "loss": 1.0}, 7) == 7
    assert stage_prefix({"stage_index": 2, "stage": "ppo"}) == "stage2_ppo/"
    assert stage_prefix({"stage_index": 0}) == "stage0/"
    assert stage_prefix({"loss": 1.0}) == ""


def _fanout(tmp_path: Path, logdir: Path, **kw: Any) -> MetricsFanout:
    run = RunInfo(path=tmp_path, config={"seed": 7, "strategy": {"lr": 0.001}})
    return MetricsFanout([JsonlSink(run=run), TensorBoardSink(logdir.name, run=run)], **kw)


def test_writer_mirrors_records_as_grouped_scalars(tmp_path: Path) -> None:
    logdir = tmp_path / "tensorboard"
    with _fanout(tmp_path, logdir) as writer:
        for epoch in (1, 2):
            writer.log(
                {
                    "epoch": epoch,
                    "train_loss": 1.0 / epoch,
                    "val_loss": float("nan"),
                    "strategy": "bc",
                    "confusion_matrix": [[1, 2], [3, 4]],
                    "per_action_accuracy": {"noop": 0.5 * epoch, "eat": None},
                    "eval_return_mean": -float(epoch),
                }
            )
        writer.log({"summary_value": 42.0})  # no step key: the running count (3rd record) is the step
    # the JSONL file is exactly what logger=jsonl writes (NaN -> null, strings and lists kept)
    records = list(read_metrics(tmp_path / "metrics.jsonl"))
    assert len(records) == 3
    assert records[0]["val_loss"] is None and records[0]["confusion_matrix"] == [[1, 2], [3, 4]]

    acc = _load(logdir)
    assert set(acc.Tags()["scalars"]) == {
        "losses/train_loss",
        "charts/per_action_accuracy/noop",
        "eval/eval_return_mean",
        "charts/summary_value",
    }
    assert _series(acc, "losses/train_loss") == [(1, 1.0), (2, 0.5)]
    assert _series(acc, "charts/per_action_accuracy/noop") == [(1, 0.5), (2, 1.0)]
    assert _series(acc, "eval/eval_return_mean") == [(1, -1.0), (2, -2.0)]
    assert _series(acc, "charts/summary_value") == [(3, 42.0)]
    text = acc.Tensors(CONFIG_TAG)[0].tensor_proto.string_val[0].decode()
    assert "seed: 7" in text and "lr: 0.001" in text


def test_agent_steps_run_on_across_stages_and_hparams_hold_the_result(tmp_path: Path) -> None:
    """An anneal-like run: a BC stage (epochs), two PPO stages whose env_steps restart at zero, each
    closed by a verdict line without env_steps; then the HParams session with the final evaluation."""
    logdir = tmp_path / "tensorboard"
    config = {"objective": "evaluation.policy.mean_return", "strategy": {"lr": 0.01, "stages": [1, 2]}}
    run = RunInfo(path=tmp_path, config=config, seed=4, strategy="anneal", world="default")
    fanout = MetricsFanout([JsonlSink(run=run), TensorBoardSink(logdir.name, run=run)])
    fanout.log({"stage_index": 0, "stage": "bc", "epoch": 1, "train_loss": 2.0})
    for stage in (1, 2):
        for iteration, steps in ((1, 100.0), (2, 200.0)):
            fanout.log(
                {
                    "stage_index": stage,
                    "stage": "ppo",
                    "iteration": iteration,
                    "env_steps": steps,
                    "loss_policy": stage + iteration / 10,
                    "episode_return_mean": -10.0 * stage - iteration,
                }
            )
        fanout.log({"stage_index": stage, "stage": "ppo", "anneal_return": -1.0 * stage}, force=True)
    evaluation = {"policy": {"mean_return": -2.5}, "scripted": {"mean_return": -1.0}, "random": None}
    fanout.after_result(tmp_path, {"kind": "anneal", "evaluation": evaluation})
    fanout.close()

    acc = _load(logdir)
    assert _series(acc, "losses/train_loss") == [(1, 2.0)]
    assert _series(acc, "losses/loss_policy") == [(100, 1.1), (200, 1.2), (300, 2.1), (400, 2.2)]
    assert [s for s, _ in _series(acc, "charts/episode_return_mean")] == [100, 200, 300, 400]
    assert _series(acc, "charts/anneal_return") == [(200, -1.0), (400, -2.0)]  # at the stage's end
    assert [v for _, v in _series(acc, "charts/stage_index")] == [0, 1, 1, 1, 2, 2, 2]

    from tensorboard.plugins.hparams import plugin_data_pb2

    session = _load(logdir / "hparams")
    content = session.PluginTagToContent("hparams")
    start = next(
        info.session_start_info
        for info in map(plugin_data_pb2.HParamsPluginData.FromString, content.values())
        if info.HasField("session_start_info")
    )
    chosen = {
        key: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
        for key, value in start.hparams.items()
    }
    assert (
        chosen["seed"] == 4
        and chosen["strategy"] == "anneal"
        and chosen["strategy.lr"] == pytest.approx(0.01)
    )
    assert (
        chosen["strategy.stages"] == "[1, 2]" and chosen["objective_key"] == "evaluation.policy.mean_return"
    )
    assert _series(session, "objective") == [(400, -2.5)]
    assert _series(session, "evaluation.policy.mean_return") == [(400, -2.5)]
    assert _series(session, "evaluation.scripted.mean_return") == [(400, -1.0)]
    assert "evaluation.random.mean_return" not in session.Tags()["scalars"]


def test_cadence_and_rotation_keep_the_event_file_open(tmp_path: Path) -> None:
    logdir = tmp_path / "tb"
    writer = _fanout(tmp_path, logdir, log_frequency=2, max_log_entries=1)
    for epoch in range(1, 7):
        writer.log({"epoch": epoch, "loss": float(epoch)})
    writer.close()
    writer.close()  # idempotent: train.py closes again in `finally`
    assert [r["epoch"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [2, 4, 6]
    assert (tmp_path / "metrics.jsonl.2").exists()  # rotated twice, yet every record reached TensorBoard
    assert _series(_load(logdir), "losses/loss") == [(2, 2.0), (4, 4.0), (6, 6.0)]


def test_missing_tensorboard_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "tensorboardX" or m.startswith("tensorboardX.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import now raises ImportError
    with pytest.raises(TensorBoardNotAvailableError, match=r'pip install -e "\.\[tensorboard\]"') as info:
        TensorBoardSink(run=RunInfo(path=tmp_path))
    assert "logger=jsonl" in str(info.value)


def test_train_cli_writes_event_files(run_cli, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = run_cli(support_searchpath(), "strategy=echo", f"hydra.run.dir={run_dir}", "logger=tensorboard")
    assert proc.returncode == 0, proc.stderr
    assert len(list(read_metrics(run_dir / "metrics.jsonl"))) == 3  # jsonl unchanged
    events = list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = _load(run_dir / "tensorboard")
    assert _series(acc, "losses/train_loss") == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]
    assert "charts/nan_metric" not in acc.Tags()["scalars"]
    config = acc.Tensors(CONFIG_TAG)[0].tensor_proto.string_val[0].decode()
    assert "townlet.runs.tensorboard.TensorBoardSink" in config and "echo_strategy.EchoStrategy" in config


BLOCK_TENSORBOARD = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorboard", "tensorboardX"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by test)", name=name)
        return None
sys.meta_path.insert(0, _Block())
sys.argv = ['townlet-train', *sys.argv[1:]]
from townlet.cli.train import main
main()
"""


def test_train_cli_without_tensorboard_names_the_install(cli_env, tmp_path: Path) -> None:
    args = [support_searchpath(), "strategy=echo", f"hydra.run.dir={tmp_path / 'run'}", "logger=tensorboard"]
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK_TENSORBOARD, *args],
        capture_output=True,
        text=True,
        env=cli_env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 1
    assert 'pip install -e ".[tensorboard]"' in proc.stderr and "logger=jsonl" in proc.stderr
    assert "Traceback" not in proc.stderr
