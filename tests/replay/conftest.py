"""Synthetic ReplayData built from the spec types: tests of the format need no world."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from townlet.replay import ReplayData, write_dataset
from townlet.world.spec import EVENT_COUNTERS, ObservationSpec

SPEC = ObservationSpec(
    map_channels=("walls", "agents", "objects"),
    window=5,
    feature_names=("hunger", "hygiene", "energy", "rivalry_max", "rivalry_avoid_count", "in_queue"),
)


def make_data(ticks: int = 12, num_envs: int = 2, num_agents: int = 3, seed: int = 0) -> ReplayData:
    """Random but well-formed data; ids follow the env-major layout the capture writes."""
    rng = np.random.default_rng(seed)
    n = num_envs * num_agents
    a = SPEC.num_actions
    actions = rng.integers(0, a, (ticks, n))
    truncated = np.zeros((ticks, n), bool)
    truncated[ticks // 2 - 1] = True
    cols: dict[str, np.ndarray] = {
        "maps": rng.integers(0, 4, (ticks, n, *SPEC.map_shape), dtype=np.uint8),
        "features": rng.random((ticks, n, SPEC.feature_dim), dtype=np.float32),
        "action_mask": rng.random((ticks, n, a)) < 0.8,
        "actions": actions,
        "teacher_actions": np.where(rng.random((ticks, n)) < 0.9, actions, 0).astype(np.int64),
        "log_probs": np.log(rng.uniform(0.1, 1.0, (ticks, n))).astype(np.float32),
        "values": rng.normal(size=(ticks, n)).astype(np.float32),
        "final_values": np.where(truncated, 0.5, 0.0).astype(np.float32),
        "rewards": rng.normal(size=(ticks, n)).astype(np.float32),
        "terminated": rng.random((ticks, n)) < 0.05,
        "truncated": truncated,
        "env_id": np.broadcast_to(np.repeat(np.arange(num_envs), num_agents), (ticks, n)).astype(np.int32),
        "agent_id": np.broadcast_to(np.tile(np.arange(num_agents), num_envs), (ticks, n)).astype(np.int32),
        "episode_id": np.broadcast_to((np.arange(ticks) >= ticks // 2)[:, None], (ticks, n)).astype(np.int32),
        "tick": np.broadcast_to(np.arange(ticks)[:, None], (ticks, n)).astype(np.int32),
    }
    cols = {k: np.ascontiguousarray(v) for k, v in cols.items()}
    events = {name: float(i + 1) for i, name in enumerate(EVENT_COUNTERS)}
    return ReplayData.from_columns(
        SPEC,
        cols,
        bootstrap_values=rng.normal(size=n).astype(np.float32),
        meta={
            "behaviour": "synthetic",
            "epsilon": 0.0,
            "seed": seed,
            "ticks": ticks,
            "world": {"name": "none"},
        },
        events=events,
        episode_stats={"agent_episodes": float(n), "return_mean": 1.5},
    )


@pytest.fixture
def data() -> ReplayData:
    return make_data()


@pytest.fixture
def dataset_dir(tmp_path: Path, data: ReplayData) -> Path:
    """A written dataset with 4 shards (shard_rows = 3 ticks x 6 agents)."""
    return write_dataset(data, tmp_path / "ds", shard_rows=18)
