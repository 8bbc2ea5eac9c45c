"""``device.num_threads``: a run uses the count it was given (``auto`` follows ``OMP_NUM_THREADS``,
which tests/conftest.py pins to 1), and its result depends on config, seed, machine and that count
only: two runs with two intra-op threads give the same result."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

# the default MLP (hidden 256) at 128-row minibatches: layers big enough for torch to split them
PPO = [
    "strategy=ppo",
    "model=mlp",
    "strategy.n_steps=32",
    "strategy.total_steps=256",
    "strategy.minibatch_size=128",
    "world.num_envs=2",
    "world.num_agents=2",
    "world.episode_length=40",
    "evaluation.episodes=1",
]
VOLATILE = re.compile(r"(_sec$|duration|sps|per_sec|checkpoint|run_dir|_at$)")


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if not VOLATILE.search(k)}
    return value


def _train(run_cli: Callable[..., Any], run_dir: Path, *extra: str) -> tuple[dict[str, Any], str]:
    proc = run_cli(*PPO, *extra, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    log = (run_dir / "train.log").read_text()
    return _stable(json.loads((run_dir / "result.json").read_text())), log


def test_two_threads_are_used_and_give_the_same_result_twice(run_cli: Any, tmp_path: Path) -> None:
    first, log = _train(run_cli, tmp_path / "a", "device.num_threads=2")
    second, _ = _train(run_cli, tmp_path / "b", "device.num_threads=2")
    assert "threads=2 " in log  # torch's own count, read back after seeding
    assert first == second


def test_auto_follows_the_pinned_thread_count(run_cli: Any, tmp_path: Path) -> None:
    _, log = _train(run_cli, tmp_path / "auto")  # device.num_threads=auto is the default
    assert "threads=1 " in log
