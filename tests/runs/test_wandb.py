"""``logger=wandb``: offline runs read back with W&B's own reader (``wandb leet inspect --json``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import support_searchpath
from townlet.config.instantiate import ConfigError
from townlet.runs.loggers import MetricsFanout
from townlet.runs.metrics import read_metrics
from townlet.runs.sinks import JsonlSink, RunInfo
from townlet.runs.wandb_log import resolve_mode

pytest.importorskip("wandb")


@pytest.fixture
def wandb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """W&B's caches and settings in the test's folder, no API key: offline, nothing outside."""
    env = {
        f"WANDB_{name}_DIR": str(tmp_path / f"wandb-{name.lower()}") for name in ("DATA", "CACHE", "CONFIG")
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(key, raising=False)
    return env


def inspect(run_dir: Path, *flags: str) -> Any:
    """``wandb leet inspect`` on the one offline run under ``run_dir/wandb``: its summary object, or
    its records (``--json``: one per line)."""
    (found,) = (run_dir / "wandb").glob("offline-run-*")
    proc = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", *flags, "--json", str(found)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    if "--summary" in flags:
        return json.loads(proc.stdout)
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def _of_type(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r[kind] for r in records if r.get("type") == kind]


def test_auto_mode_is_offline_without_an_api_key() -> None:
    assert resolve_mode("auto", {}) == "offline"
    assert resolve_mode("auto", {"WANDB_API_KEY": "k"}) == "online"
    assert resolve_mode("auto", {"WANDB_API_KEY": "k", "WANDB_MODE": "disabled"}) == "disabled"
    assert resolve_mode("offline", {"WANDB_API_KEY": "k"}) == "offline"
    with pytest.raises(ConfigError, match=r"logger\.wandb\.mode='cloud'"):
        resolve_mode("cloud", {})


def test_an_offline_run_holds_config_history_summary_and_artefacts(
    wandb_env: dict[str, str], tmp_path: Path
) -> None:
    from townlet.runs.wandb_log import WandbSink

    policy = tmp_path / "checkpoints" / "last.pt"
    policy.parent.mkdir()
    policy.write_bytes(b"weights")
    (tmp_path / "result.json").write_text("{}", encoding="utf-8")
    config = {"seed": 5, "objective": "evaluation.policy.mean_return", "tags": ["smoke"]}
    run = RunInfo(path=tmp_path, config=config, seed=5, strategy="anneal", world="default")
    fanout = MetricsFanout([WandbSink(run=run), JsonlSink(run=run)])
    for stage in (0, 1):  # two PPO stages whose env_steps restart: global_step runs on
        for steps in (50.0, 100.0):
            fanout.log({"stage_index": stage, "stage": "ppo", "env_steps": steps, "loss_policy": steps / 100})
    evaluation = {
        "policy": {"mean_return": -2.0},
        "scripted": {"mean_return": -1.0},
        "random": {"mean_return": -8.0},
    }
    fanout.after_result(tmp_path, {"kind": "ppo", "evaluation": evaluation, "checkpoint": str(policy)})
    fanout.close()

    summary = inspect(tmp_path, "--summary")
    assert summary["state"] == "finished" and summary["exit_code"] == 0
    assert summary["config"]["seed"] == 5 and summary["tags"] == ["anneal", "default", "smoke"]
    assert summary["summary"]["objective"] == -2.0 and summary["summary"]["status"] == "FINISHED"
    assert summary["summary"]["evaluation.scripted.mean_return"] == -1.0
    assert summary["summary"]["evaluation.random.mean_return"] == -8.0
    records = inspect(tmp_path)
    history = [h["item"] for h in _of_type(records, "history")]
    assert [h["global_step"] for h in history] == [50, 100, 150, 200]
    assert [h["losses/loss_policy"] for h in history] == [0.5, 1.0, 0.5, 1.0]
    artefacts = {a["type"]: a for a in _of_type(records, "artifact")}
    assert set(artefacts) == {"result", "model"}
    assert [e["path"] for e in artefacts["model"]["manifest"]["contents"]] == ["last.pt"]
    assert artefacts["result"]["name"].startswith("result-")
    assert len(list(read_metrics(tmp_path / "metrics.jsonl"))) == 4


def test_an_interrupted_run_ends_with_an_interrupt_exit_code(
    wandb_env: dict[str, str], tmp_path: Path
) -> None:
    from townlet.runs.wandb_log import WandbSink

    fanout = MetricsFanout([WandbSink(run=RunInfo(path=tmp_path))])
    with pytest.raises(KeyboardInterrupt):
        try:
            fanout.log({"epoch": 1, "train_loss": 1.0})
            raise KeyboardInterrupt
        finally:
            fanout.close()
    summary = inspect(tmp_path, "--summary")
    assert summary["exit_code"] == 130 and summary["summary"]["status"] == "KILLED"


@pytest.mark.slow
def test_logger_wandb_from_the_command_line(wandb_env: dict[str, str], run_cli: Any, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = ["strategy=echo", "objective=accuracy", f"hydra.run.dir={run_dir}", "logger=[jsonl,wandb]"]
    proc = run_cli(support_searchpath(), *args, "tags=[smoke]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wandb" not in proc.stderr.lower()  # W&B's own console lines stay out
    summary = inspect(run_dir, "--summary")
    result = json.loads((run_dir / "result.json").read_text())
    assert summary["state"] == "finished" and summary["name"] == "train" and summary["project"] == "townlet"
    assert summary["summary"]["objective"] == result["accuracy"] and "smoke" in summary["tags"]
    assert summary["config"]["strategy"]["_target_"] == "echo_strategy.EchoStrategy"
    history = [h["item"] for h in _of_type(inspect(run_dir), "history")]
    assert [(h["global_step"], h["losses/train_loss"]) for h in history] == [
        (1, 1.0),
        (2, 0.5),
        (3, pytest.approx(1 / 3)),
    ]
