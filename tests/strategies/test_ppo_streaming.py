"""``dataset.streaming=true`` with PPO replay and mixed mode: one shard per iteration, never the whole
dataset in memory, every shard once per epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from ppo_support import ppo_context

from townlet.behaviour.rules import make_behaviour
from townlet.config.schema.strategy_ppo import DataMode
from townlet.replay import StreamingDataset, load_dataset
from townlet.replay.storage import write_dataset
from townlet.rollout.collect import RolloutCaptureService
from townlet.runs.metrics import read_metrics
from townlet.strategies.ppo import PPOStrategy
from townlet.world import load_world_config, make_town


def _world() -> Any:
    w = load_world_config("default")
    w.num_envs, w.num_agents, w.episode_length = 2, 2, 12
    return w


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> StreamingDataset:
    town = make_town(_world(), 5)
    data = RolloutCaptureService().collect(town, make_behaviour("scripted", town.spec), 48)
    path = write_dataset(data, tmp_path_factory.mktemp("data") / "ds", shard_rows=16 * 4)  # 3 shards
    ds = load_dataset(path, streaming=True)
    assert isinstance(ds, StreamingDataset) and ds.num_shards == 3
    return ds


class CountingStream(StreamingDataset):
    """The stream, refusing to be loaded whole and counting the shards read."""

    def __init__(self, inner: StreamingDataset) -> None:
        super().__init__(inner.manifest, verify=inner.verify)
        self.read: list[int] = []

    def shard(self, index: int) -> Any:
        self.read.append(index)
        return super().shard(index)

    def load(self) -> Any:
        raise AssertionError("PPO loaded the streamed dataset whole")


def test_replay_mode_streams_one_shard_per_iteration(tmp_path: Path, stream: StreamingDataset) -> None:
    counting = CountingStream(stream)
    ctx = ppo_context(tmp_path, world=_world(), model={"kind": "mlp", "hidden_dim": 32}, replay=counting)
    result = PPOStrategy(data_mode=DataMode.replay, epochs=2, minibatch_size=16).run(ctx)
    assert result.iterations == 6  # 2 epochs x 3 shards
    # normalisation reads the first iteration's shard once more; then each epoch reads every shard once
    visits = counting.read[1:]
    assert sorted(visits[:3]) == sorted(visits[3:]) == [0, 1, 2]
    assert [r["iteration"] for r in read_metrics(tmp_path / "metrics.jsonl")] == list(range(1, 7))


def test_mixed_mode_streams_too(tmp_path: Path, stream: StreamingDataset) -> None:
    counting = CountingStream(stream)
    ctx = ppo_context(tmp_path, world=_world(), model={"kind": "mlp", "hidden_dim": 32}, replay=counting)
    result = PPOStrategy(data_mode=DataMode.mixed, n_steps=8, total_steps=96, minibatch_size=16).run(ctx)
    assert result.iterations == 3 and len(set(counting.read)) == 3
