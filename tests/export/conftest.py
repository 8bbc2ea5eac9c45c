"""Tiny trained runs (a BC one, and a PPO one with feature normalisation) shared by the export tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from townlet.world import WorldConfig, load_world_config

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

TINY_WORLD = ["world.num_envs=2", "world.num_agents=2", "world.episode_length=40", "model.hidden_dim=32"]


def _train(root: Path, name: str, env: dict[str, str], *overrides: str) -> Path:
    run_dir = root / name
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "townlet.train",
            *overrides,
            f"hydra.run.dir={run_dir}",
            "evaluation.episodes=1",
        ],
        cwd=root,
        env={**env, "TOWNLET_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (run_dir / "checkpoints" / "best.pt").is_file()
    return run_dir


@pytest.fixture(scope="session")
def bc_run(tmp_path_factory: pytest.TempPathFactory, cli_env: dict[str, str]) -> Path:
    """``experiment=smoke`` BC trained until it acts (greedy) like the teacher; it stores its world."""
    root = tmp_path_factory.mktemp("bc")
    overrides = ("dataset.ticks=600", "world.episode_length=150", "strategy.epochs=20", "model.hidden_dim=64")
    return _train(root, "run", cli_env, "experiment=smoke", *overrides)


@pytest.fixture(scope="session")
def ppo_run(tmp_path_factory: pytest.TempPathFactory, cli_env: dict[str, str]) -> Path:
    """Two PPO iterations with ``feature_normalisation``: the running feature statistics live in the net."""
    root = tmp_path_factory.mktemp("ppo")
    return _train(
        root,
        "run",
        cli_env,
        "strategy=ppo",
        *TINY_WORLD,
        "strategy.total_steps=256",
        "strategy.n_steps=32",
        "strategy.minibatch_size=64",
        "strategy.feature_normalisation=true",
    )


@pytest.fixture(scope="session")
def episode_world() -> WorldConfig:
    """The fixed episode set: two towns, episodes long enough for agents to walk, eat and sleep."""
    return load_world_config("default", {"num_envs": 2, "num_agents": 2, "episode_length": 150})
