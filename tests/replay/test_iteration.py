"""Iteration: per-epoch shuffles, minibatch gathers, GAE segments, streaming, splits, summaries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from townlet.replay import DatasetError, ReplayData, StreamingDataset, load_dataset
from townlet.replay.stats import summarise

from .conftest import SPEC, make_data


def _row_keys(batch: dict[str, np.ndarray]) -> list[tuple[int, int, int]]:
    """(tick, env, agent) identifies a transition: lets tests check coverage and row integrity."""
    return list(
        zip(batch["tick"].tolist(), batch["env_id"].tolist(), batch["agent_id"].tolist(), strict=True)
    )


def test_minibatches_cover_every_row_once_and_keep_rows_intact(data: ReplayData) -> None:
    seen: list[tuple[int, int, int]] = []
    sizes = []
    for batch in data.iter_minibatches(16, seed=3, epoch=0):
        sizes.append(len(batch["actions"]))
        seen += _row_keys(batch)
        t, e, a = batch["tick"], batch["env_id"], batch["agent_id"]
        col = e * 3 + a
        assert np.array_equal(batch["maps"], data.maps[t, col])
        assert np.array_equal(batch["features"], data.features[t, col])
        assert np.array_equal(batch["rewards"], data.rewards[t, col])
        assert batch["maps"].shape[1:] == SPEC.map_shape
    assert sorted(seen) == sorted(set(seen)) and len(seen) == data.num_transitions
    assert sizes == [16, 16, 16, 16, 8]


def test_shuffle_is_seeded_per_epoch(data: ReplayData) -> None:
    def order(seed: int, epoch: int) -> list[tuple[int, int, int]]:
        return [k for b in data.iter_minibatches(8, seed=seed, epoch=epoch) for k in _row_keys(b)]

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1), "the permutation must change every epoch"
    assert order(1, 0) != order(2, 0)


def test_drop_last_and_extra_columns(data: ReplayData) -> None:
    adv = np.arange(data.num_transitions, dtype=np.float32).reshape(data.num_ticks, data.num_agents)
    batches = list(data.iter_minibatches(10, 0, 0, drop_last=True, columns=("tick",), extra={"adv": adv}))
    assert [len(b["adv"]) for b in batches] == [10] * 7
    assert set(batches[0]) == {"tick", "adv"}
    for b in batches:
        assert np.array_equal(adv.reshape(-1)[b["adv"].astype(int)], b["adv"])


def test_segments_are_contiguous_and_bootstrap_correctly(data: ReplayData) -> None:
    blocks = list(data.iter_segments(5, 4, seed=0, epoch=0))
    assert len(blocks) == 3 * 2  # ceil(12/5) time chunks x ceil(6/4) agent groups
    covered = np.zeros((data.num_ticks, data.num_agents), int)
    for blk in blocks:
        t0, idx = int(blk["t0"]), blk["agent_index"]
        length = blk["rewards"].shape[0]
        covered[t0 : t0 + length][:, idx] += 1
        assert np.array_equal(blk["tick"][:, 0], np.arange(t0, t0 + length))
        assert np.array_equal(blk["values"], data.values[t0 : t0 + length][:, idx])
        t1 = t0 + length
        want = data.values[t1, idx] if t1 < data.num_ticks else data.bootstrap_values[idx]
        assert np.array_equal(blk["next_values"], want)
    assert (covered == 1).all()


def test_split_by_agent_never_splits_a_trajectory(data: ReplayData) -> None:
    train, val = data.split_by_agent(0.34, seed=0)
    assert train.num_agents + val.num_agents == data.num_agents
    assert val.num_agents == 2 and train.num_ticks == val.num_ticks == data.num_ticks
    key = lambda d: {(int(e), int(a)) for e, a in zip(d.env_id[0], d.agent_id[0], strict=True)}  # noqa: E731
    assert not key(train) & key(val)
    for part in (train, val):
        for j in range(part.num_agents):
            e, a = int(part.env_id[0, j]), int(part.agent_id[0, j])
            assert np.array_equal(part.rewards[:, j], data.rewards[:, e * 3 + a])
    again, _ = data.split_by_agent(0.34, seed=0)
    assert np.array_equal(again.agent_id, train.agent_id)
    with pytest.raises(ValueError, match="val_fraction"):
        data.split_by_agent(1.0, seed=0)
    with pytest.raises(DatasetError, match="cannot split"):
        make_data(num_envs=1, num_agents=1).split_by_agent(0.5, 0)


def test_summarise_reports_conflict_stats_and_true_feature_dim(data: ReplayData) -> None:
    summary = summarise(data)
    riv = data.features[..., SPEC.feature_names.index("rivalry_max")]
    assert summary["conflict"]["rivalry_max_mean"] == pytest.approx(float(riv.mean()), rel=1e-6)
    assert summary["conflict"]["rivalry_max_max"] == pytest.approx(float(riv.max()))
    assert summary["feature_dim"] == SPEC.feature_dim
    assert summary["events"]["chat_quality_mean"] == pytest.approx(
        data.events["chat_quality_sum"] / data.events["chat_success_events"]
    )
    assert "rivalry_avoid_count_max" in summary["conflict"]
    assert summary["teacher_agreement"] == pytest.approx(float((data.actions == data.teacher_actions).mean()))


# ------------------------------------------------------------------------------------- streaming
def _streaming(dataset_dir: Path) -> StreamingDataset:
    ds = load_dataset(dataset_dir, streaming=True)
    assert isinstance(ds, StreamingDataset)
    return ds


@pytest.mark.parametrize("batch_size", [7, 18, 40, 100])
def test_streaming_covers_every_row_once(dataset_dir: Path, data: ReplayData, batch_size: int) -> None:
    ds = _streaming(dataset_dir)
    batches = list(ds.iter_minibatches(batch_size, seed=0, epoch=1))
    keys = [k for b in batches for k in _row_keys(b)]
    assert len(keys) == len(set(keys)) == data.num_transitions
    sizes = [len(b["actions"]) for b in batches]
    assert all(s == batch_size for s in sizes[:-1]) and 0 < sizes[-1] <= batch_size
    for b in batches:
        col = b["env_id"] * 3 + b["agent_id"]
        assert np.array_equal(b["maps"], data.maps[b["tick"], col])


def test_streaming_shuffle_is_seeded_per_epoch(dataset_dir: Path) -> None:
    ds = _streaming(dataset_dir)

    def order(epoch: int) -> list[tuple[int, int, int]]:
        return [k for b in ds.iter_minibatches(8, seed=4, epoch=epoch) for k in _row_keys(b)]

    assert order(0) == order(0)
    assert order(0) != order(1)


def test_streaming_segments_bootstrap_across_shards(dataset_dir: Path, data: ReplayData) -> None:
    ds = _streaming(dataset_dir)
    blocks = list(ds.iter_segments(2, 6, seed=0, epoch=0))
    assert sum(b["rewards"].size for b in blocks) == data.num_transitions
    for blk in blocks:
        t1 = int(blk["t0"]) + blk["rewards"].shape[0]
        idx = blk["agent_index"]
        want = data.values[t1, idx] if t1 < data.num_ticks else data.bootstrap_values[idx]
        assert np.array_equal(blk["next_values"], want)


def test_streaming_summary_comes_from_the_manifest(dataset_dir: Path, data: ReplayData) -> None:
    summary = _streaming(dataset_dir).summarise()
    assert summary["transitions"] == data.num_transitions and summary["shards"] == 4
    assert summary["events"]["queue_conflict_events"] == data.events["queue_conflict_events"]
    assert summary["episodes"]["return_mean"] == 1.5


def test_streaming_damage_surfaces_when_the_shard_is_reached(dataset_dir: Path) -> None:
    ds = _streaming(dataset_dir)
    (dataset_dir / "shard-00003.npz").unlink()
    with pytest.raises(DatasetError, match=r"shard-00003\.npz.*missing"):
        for _ in ds.iter_minibatches(8, 0, 0):
            pass


def test_streaming_rechecks_a_shard_that_changed_between_epochs(dataset_dir: Path) -> None:
    ds = _streaming(dataset_dir)
    list(ds.iter_minibatches(8, 0, 0))
    shard = dataset_dir / "shard-00000.npz"
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="checksum mismatch"):
        list(ds.iter_minibatches(8, 0, 1))
