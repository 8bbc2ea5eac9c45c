"""Format v1: exact round trip, manifest content, and one clear error per kind of damage."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from townlet.replay import (
    COLUMN_NAMES,
    DatasetError,
    DatasetExistsError,
    ReplayData,
    StreamingDataset,
    load_dataset,
    read_manifest,
    validate_dataset,
    write_dataset,
)
from townlet.world.spec import ObservationSpec

from .conftest import SPEC, make_data


def test_round_trip_is_exact(data: ReplayData, dataset_dir: Path) -> None:
    loaded = load_dataset(dataset_dir)
    assert isinstance(loaded, ReplayData)
    for name in COLUMN_NAMES:
        got, want = getattr(loaded, name), getattr(data, name)
        assert got.dtype == want.dtype and got.shape == want.shape, name
        assert np.array_equal(got, want), name
    assert np.array_equal(loaded.bootstrap_values, data.bootstrap_values)
    assert loaded.spec == data.spec
    assert loaded.events == data.events
    assert loaded.episode_stats == data.episode_stats
    assert loaded.meta["behaviour"] == "synthetic"


def test_manifest_describes_dataset(data: ReplayData, dataset_dir: Path) -> None:
    doc = json.loads((dataset_dir / "manifest.json").read_text())
    assert doc["format_version"] == 1
    assert doc["counts"]["transitions"] == data.num_transitions
    assert doc["observation_spec"]["map_shape"] == list(SPEC.map_shape)
    assert doc["observation_spec"]["feature_names"] == list(SPEC.feature_names)
    assert [s["rows"] for s in doc["shards"]] == [18, 18, 18, 18]
    assert all(len(s["sha256"]) == 64 for s in doc["shards"])
    stats = doc["stats"]
    assert stats["reward"]["mean"] == pytest.approx(float(data.rewards.mean()), rel=1e-6)
    assert stats["reward"]["std"] == pytest.approx(float(data.rewards.std()), rel=1e-5)
    assert sum(stats["action_histogram"].values()) == data.num_transitions
    assert stats["events"]["queue_conflict_events"] == data.events["queue_conflict_events"]
    assert not list(dataset_dir.parent.glob(".ds.tmp-*")), "temp dir left behind"


def test_npz_loads_without_pickle(dataset_dir: Path) -> None:
    with np.load(dataset_dir / "shard-00000.npz", allow_pickle=False) as npz:
        assert set(npz.files) == set(COLUMN_NAMES)
        assert npz["maps"].dtype == np.uint8


def _flip_byte(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def _expect(path: Path, *fragments: str, **kw: object) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        load_dataset(path, **kw)  # type: ignore[arg-type]
    msg = str(info.value)
    for fragment in fragments:
        assert fragment in msg, msg
    assert "\n" not in msg
    return info.value


def test_flipped_byte_is_a_checksum_error(dataset_dir: Path) -> None:
    shard = dataset_dir / "shard-00002.npz"
    _flip_byte(shard, shard.stat().st_size // 2)
    err = _expect(dataset_dir, "shard-00002.npz", "checksum mismatch")
    assert err.file == str(shard)


def test_missing_shard(dataset_dir: Path) -> None:
    (dataset_dir / "shard-00001.npz").unlink()
    _expect(dataset_dir, "shard-00001.npz", "missing")


def test_truncated_shard(dataset_dir: Path) -> None:
    shard = dataset_dir / "shard-00003.npz"
    shard.write_bytes(shard.read_bytes()[:100])
    _expect(dataset_dir, "shard-00003.npz", "bytes")


def test_wrong_feature_list_in_manifest(dataset_dir: Path) -> None:
    mpath = dataset_dir / "manifest.json"
    doc = json.loads(mpath.read_text())
    doc["observation_spec"]["feature_names"] = doc["observation_spec"]["feature_names"][:-1]
    doc["observation_spec"].pop("feature_dim")
    mpath.write_text(json.dumps(doc))
    _expect(dataset_dir, "manifest.json", "feature list has 5 names")


def test_feature_list_not_what_the_caller_expects(dataset_dir: Path) -> None:
    other = ObservationSpec(SPEC.map_channels, SPEC.window, (*SPEC.feature_names[:-1], "queue_position"))
    _expect(dataset_dir, "feature names differ", "queue_position", expect_spec=other)


def test_nan_is_rejected_with_the_column_named(tmp_path: Path) -> None:
    data = make_data()
    data.rewards[3, 2] = np.nan
    with pytest.raises(DatasetError, match=r"rewards.*non-finite"):
        write_dataset(data, tmp_path / "nan")
    assert not (tmp_path / "nan").exists()


def test_nan_written_by_someone_else_is_caught_on_load(tmp_path: Path, dataset_dir: Path) -> None:
    """A NaN in a shard whose checksum was recomputed (so only the finiteness check can catch it)."""
    from townlet.replay.manifest import file_sha256

    shard = dataset_dir / "shard-00001.npz"
    with np.load(shard) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["features"][0, 0, 0] = np.inf
    np.savez(shard, **arrays)
    mpath = dataset_dir / "manifest.json"
    doc = json.loads(mpath.read_text())
    doc["shards"][1].update(sha256=file_sha256(shard), bytes=shard.stat().st_size)
    mpath.write_text(json.dumps(doc))
    _expect(dataset_dir, "shard-00001.npz", "'features'", "non-finite")


def test_pickled_object_array_is_refused(tmp_path: Path, dataset_dir: Path) -> None:
    from townlet.replay.manifest import file_sha256

    shard = dataset_dir / "shard-00000.npz"
    with np.load(shard) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["actions"] = np.array([object()] * 3, dtype=object)
    np.savez(shard, **arrays)
    doc = json.loads((dataset_dir / "manifest.json").read_text())
    doc["shards"][0].update(sha256=file_sha256(shard), bytes=shard.stat().st_size)
    (dataset_dir / "manifest.json").write_text(json.dumps(doc))
    _expect(dataset_dir, "shard-00000.npz")


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.update(format_version=2), "format version 2"),
        (lambda d: d.update(format="something"), "not a townlet-replay manifest"),
        (lambda d: d.pop("shards"), "missing the key 'shards'"),
        (lambda d: d["counts"].update(ticks=99), "counts.ticks"),
        (lambda d: d["shards"][0].update(file="../escape.npz"), "plain file name"),
        (lambda d: d["columns"]["maps"].update(dtype="float32"), "column 'maps' schema"),
    ],
)
def test_manifest_damage(dataset_dir: Path, mutate: object, fragment: str) -> None:
    mpath = dataset_dir / "manifest.json"
    doc = json.loads(mpath.read_text())
    mutate(doc)  # type: ignore[operator]
    mpath.write_text(json.dumps(doc))
    _expect(dataset_dir, "manifest.json", fragment)


def test_not_json_and_not_a_dataset(tmp_path: Path, dataset_dir: Path) -> None:
    (dataset_dir / "manifest.json").write_text("{not json")
    _expect(dataset_dir, "not valid JSON")
    _expect(tmp_path / "nowhere", "does not exist")
    (tmp_path / "empty").mkdir()
    _expect(tmp_path / "empty", "no manifest.json")


def test_refuses_to_overwrite_unless_asked(tmp_path: Path, data: ReplayData, dataset_dir: Path) -> None:
    with pytest.raises(DatasetExistsError):
        write_dataset(data, dataset_dir)
    other = make_data(seed=5)
    write_dataset(other, dataset_dir, overwrite=True, shard_rows=1000)
    loaded = load_dataset(dataset_dir)
    assert isinstance(loaded, ReplayData)
    assert np.array_equal(loaded.rewards, other.rewards)
    assert len(read_manifest(dataset_dir).shards) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_validate_and_compressed_shards(tmp_path: Path, data: ReplayData) -> None:
    path = write_dataset(data, tmp_path / "z", shard_rows=30, compress=True)
    with zipfile.ZipFile(path / "shard-00000.npz") as zf:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zf.infolist())
    manifest = validate_dataset(path, expect_spec=SPEC)
    assert manifest.transitions == data.num_transitions
    streaming = load_dataset(path, streaming=True)
    assert isinstance(streaming, StreamingDataset)
    assert np.array_equal(streaming.load().maps, data.maps)


def test_in_memory_validation_names_the_column(data: ReplayData) -> None:
    cols = data.columns()
    cols["features"] = cols["features"][..., :-1]
    with pytest.raises(DatasetError, match="'features' has shape"):
        ReplayData.from_columns(SPEC, cols)
    cols = data.columns()
    cols["actions"] = cols["actions"] + SPEC.num_actions
    with pytest.raises(DatasetError, match="outside"):
        ReplayData.from_columns(SPEC, cols)


def test_a_capture_buffer_past_the_machines_memory_is_refused_before_allocating() -> None:
    """Half the machine's RAM is the budget: a trillion ticks (an edited episode_length) fail in one line."""
    from townlet.replay.columns import allocate

    assert allocate(SPEC, 8, 4)["maps"].shape == (8, 4, *SPEC.map_shape)
    with pytest.raises(DatasetError, match="record fewer ticks"):
        allocate(SPEC, 10**12, 4)
