"""The anneal stopped by a signal, in its BC stage or inside a PPO stage, and resumed with
``resume=true`` ends with the result and metrics lines of the run that was never stopped: finished
stages return their results again, the stopped stage continues from its checkpoint."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from townlet.cli.train import run_job
from townlet.runs import interrupt
from townlet.runs.metrics import read_metrics
from townlet.strategies.bc.run import BCStrategy
from townlet.strategies.ppo.run import PPORun

TINY = [
    "world.num_envs=2",
    "world.num_agents=2",
    "world.episode_length=40",
    "dataset.ticks=80",
    "evaluation.episodes=1",
    "strategy.evaluation_episodes=1",
    "strategy.accuracy_threshold=0.0",
    "strategy.schedule=[{cycle:0,mode:bc,epochs:2,bc_weight:1.0},"
    "{cycle:1,mode:ppo,epochs:3,bc_weight:0.0},{cycle:2,mode:ppo,epochs:3,bc_weight:0.0}]",
    "strategy.ppo.n_steps=16",
    "seed=3",
]
_VOLATILE = re.compile(r"(duration|_sec$|^sps$|per_sec|_at$|timestamp|^checkpoint$|init_from|run_dir|path)")


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if not _VOLATILE.search(k)}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _run(compose: Callable[..., Any], run_dir: Path, tmp: Path, *extra: str) -> None:
    paths = [f"paths.data_dir={tmp / 'data'}", f"paths.state_dir={tmp / run_dir.name / 'state'}"]
    run_job(compose([*TINY, *paths, *extra], support=False), run_dir=run_dir)


def _lines(run_dir: Path) -> list[dict[str, Any]]:
    return [_stable(r) for r in read_metrics(run_dir / "metrics.jsonl")]


@pytest.fixture
def whole(compose_train: Callable[..., Any], tmp_path: Path) -> Path:
    run_dir = tmp_path / "whole"
    _run(compose_train, run_dir, tmp_path)
    return run_dir


@pytest.mark.slow
@pytest.mark.parametrize("where", ["bc-epoch-1", "ppo-stage-1-iteration-2", "ppo-stage-2-iteration-1"])
def test_stopped_anneal_resumes_to_the_same_result(
    where: str,
    whole: Path,
    compose_train: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = {"ppo": 0}
    if where == "bc-epoch-1":
        epoch = BCStrategy._epoch

        def stop_in_bc(self: Any, *args: Any) -> Any:
            stats = epoch(self, *args)
            interrupt.deliver(signal.SIGTERM)  # inside the epoch loop: honoured after its checkpoint
            return stats

        monkeypatch.setattr(BCStrategy, "_epoch", stop_in_bc)
    else:
        stop_at = {"ppo-stage-1-iteration-2": 2, "ppo-stage-2-iteration-1": 4}[where]
        iteration = PPORun.iteration

        def stop_in_ppo(self: Any, it: int) -> Any:
            record = iteration(self, it)
            calls["ppo"] += 1
            if calls["ppo"] == stop_at:
                interrupt.deliver(signal.SIGTERM)
            return record

        monkeypatch.setattr(PPORun, "iteration", stop_in_ppo)
    run_dir = tmp_path / "stopped"
    with pytest.raises(interrupt.TrainingInterrupted):
        _run(compose_train, run_dir, tmp_path)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    monkeypatch.undo()
    _run(compose_train, run_dir, tmp_path, "resume=true")
    expected = _stable(json.loads((whole / "result.json").read_text()))
    assert _stable(json.loads((run_dir / "result.json").read_text())) == expected
    assert _lines(run_dir) == _lines(whole)
