"""Importing the original per-agent .npz + JSON sidecar captures into format v1.

Fixtures are written on the fly in the original layout (reference §2.2–§2.4): per-agent samples,
plain-list and {metadata, samples} manifests, and a capture directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from townlet.cli.dataset import main as dataset_cli
from townlet.replay import DatasetError, ReplayData, load_dataset, write_dataset
from townlet_tools.legacy import import_legacy, import_legacy_groups

C, W, F = 3, 5, 4
FEATURES = ["hunger", "hygiene", "rivalry_max", "rivalry_avoid_count"]


def legacy_arrays(t: int, seed: int, *, bootstrap: bool = True) -> dict[str, np.ndarray]:
    """One agent's sample as the original capture wrote it (float32 0/1 maps, T+1 value_preds)."""
    rng = np.random.default_rng(seed)
    return {
        "map": (rng.random((t, C, W, W)) < 0.3).astype(np.float32),
        "features": rng.random((t, F), dtype=np.float32),
        "actions": rng.choice([0, 2, 5], size=t).astype(np.int64),
        "old_log_probs": np.log(rng.uniform(0.2, 1.0, t)).astype(np.float32),
        "value_preds": rng.normal(size=t + 1 if bootstrap else t).astype(np.float32),
        "rewards": rng.normal(size=t).astype(np.float32),
        "dones": rng.random(t) < 0.2,
    }


def write_sample(
    directory: Path, stem: str, arrays: dict[str, np.ndarray], sidecar: dict[str, Any] | None = None
) -> tuple[Path, Path]:
    npz, meta = directory / f"{stem}.npz", directory / f"{stem}.json"
    payload: dict[str, Any] = dict(arrays)  # Any: numpy's stubs type **kwds against allow_pickle
    np.savez_compressed(npz, **payload)
    t = int(arrays["rewards"].shape[0])
    doc = {
        "feature_names": FEATURES,
        "map_shape": [C, W, W],
        "action_lookup": {},
        "timesteps": t,
        "agent_id": stem,
        "metrics": {"timesteps": t, "reward_sum": float(arrays["rewards"].sum())},
    }
    meta.write_text(json.dumps(doc if sidecar is None else sidecar))
    return npz, meta


def buffer_capture(directory: Path, lengths: tuple[int, ...] = (6, 6, 6)) -> tuple[Path, list[dict]]:
    """`RolloutBuffer.save` shape: plain-list manifest of {sample, meta, dto}, plain-dict metrics."""
    directory.mkdir(parents=True, exist_ok=True)
    entries, metrics, arrays = [], {}, []
    for k, t in enumerate(lengths, start=1):
        stem = f"rollout_sample_agent{k}_{k:03d}"
        arr = legacy_arrays(t, seed=k)
        npz, meta = write_sample(directory, stem, arr)
        (directory / f"{stem}_dto.json").write_text(json.dumps({"schema_version": "0.2.0", "frames": []}))
        entries.append({"sample": npz.name, "meta": meta.name, "dto": f"{stem}_dto.json"})
        metrics[npz.name] = {"timesteps": t, "reward_mean": float(arr["rewards"].mean())}
        arrays.append(arr)
    manifest = directory / "rollout_sample_manifest.json"
    manifest.write_text(json.dumps(entries))
    (directory / "rollout_sample_metrics.json").write_text(json.dumps(metrics))
    return manifest, arrays


def script_capture(directory: Path, t: int = 5) -> tuple[Path, list[dict]]:
    """`capture_rollout.py` shape: {metadata, samples} manifest, value_preds of length T, no dto."""
    directory.mkdir(parents=True, exist_ok=True)
    samples, arrays = [], []
    for k, name in enumerate(("anna", "ben")):
        arr = legacy_arrays(t, seed=10 + k, bootstrap=False)
        npz, meta = write_sample(directory, f"queue_{name}", arr)
        samples.append({"sample": npz.name, "meta": meta.name, "agent_id": name, "frame_count": t})
        arrays.append(arr)
    manifest = directory / "queue_manifest.json"
    metadata = {"scenario_name": "queue_conflict", "seed": 5252, "ticks": t, "queue_conflict_events": 4}
    manifest.write_text(json.dumps({"metadata": metadata, "samples": samples}))
    return manifest, arrays


def test_plain_list_manifest_maps_every_array(tmp_path: Path) -> None:
    manifest, arrays = buffer_capture(tmp_path / "cap")
    data = import_legacy(manifest)
    assert (data.num_ticks, data.num_agents) == (6, 3)
    assert data.maps.dtype == np.uint8 and data.spec.map_shape == (C, W, W)
    assert data.spec.map_channels == ("legacy_0", "legacy_1", "legacy_2")
    assert data.spec.feature_names == tuple(FEATURES)
    assert data.spec.action_names == tuple(f"legacy_action_{i}" for i in range(6))
    # ids 0, 2 and 5 are the only ones the fixtures use: exactly those are allowed
    assert data.action_mask[0, 0].tolist() == [True, False, True, False, False, True]
    assert data.action_mask.all(axis=(0, 1)).tolist() == data.action_mask[0, 0].tolist()
    for i, arr in enumerate(arrays):
        np.testing.assert_array_equal(data.maps[:, i], arr["map"].astype(np.uint8))
        np.testing.assert_array_equal(data.features[:, i], arr["features"])
        np.testing.assert_array_equal(data.actions[:, i], arr["actions"])
        np.testing.assert_array_equal(data.teacher_actions[:, i], arr["actions"])
        np.testing.assert_array_equal(data.log_probs[:, i], arr["old_log_probs"])
        np.testing.assert_array_equal(data.values[:, i], arr["value_preds"][:6])
        np.testing.assert_array_equal(data.rewards[:, i], arr["rewards"])
        np.testing.assert_array_equal(data.terminated[:, i], arr["dones"])
        assert data.bootstrap_values[i] == arr["value_preds"][6]
        expected_episode = np.concatenate([[0], np.cumsum(arr["dones"])[:-1]])
        np.testing.assert_array_equal(data.episode_id[:, i], expected_episode)
    assert not data.truncated.any()
    assert data.agent_id[0].tolist() == [0, 1, 2] and data.tick[:, 0].tolist() == list(range(6))
    samples = data.meta["legacy"]["samples"]
    assert [s["agent_id"] for s in samples] == [
        "rollout_sample_agent1_001",
        "rollout_sample_agent2_002",
        "rollout_sample_agent3_003",
    ]
    assert samples[0]["dto"].endswith("_dto.json")
    assert samples[0]["metrics"] == {"timesteps": 6, "reward_mean": float(arrays[0]["rewards"].mean())}
    assert data.events == {}  # the original buffer saved no counters: unknown, not zero
    assert data.meta["behaviour"] == "legacy"


def test_dict_manifest_with_metadata_and_no_bootstrap(tmp_path: Path) -> None:
    manifest, arrays = script_capture(tmp_path / "cap")
    data = import_legacy(manifest)
    assert (data.num_ticks, data.num_agents) == (5, 2)
    np.testing.assert_array_equal(data.values[:, 1], arrays[1]["value_preds"])
    assert data.bootstrap_values.tolist() == [0.0, 0.0]  # value_preds had length T: unknown
    assert data.meta["world"]["name"] == "queue_conflict" and data.meta["seed"] == 5252
    assert data.events == {"queue_conflict_events": 4.0}
    assert data.meta["legacy"]["capture_metadata"]["ticks"] == 5


def test_capture_dir_finds_the_default_manifest(tmp_path: Path) -> None:
    buffer_capture(tmp_path / "cap")
    (tmp_path / "cap" / "rollout_sample_metrics.json").write_text(
        json.dumps({"metadata": {"chat_success_events": 2, "chat_quality_mean": 0.5}, "samples": {}})
    )
    data = import_legacy(tmp_path / "cap")
    assert data.num_agents == 3
    assert data.events == {"chat_success_events": 2.0, "chat_quality_sum": 1.0}
    # sample metrics fall back to the sidecar's when the metrics file has none
    assert data.meta["legacy"]["samples"][1]["metrics"]["timesteps"] == 6


def test_round_trip_import_write_load_is_exact(tmp_path: Path) -> None:
    manifest, _ = script_capture(tmp_path / "cap")
    data = import_legacy(manifest)
    write_dataset(data, tmp_path / "v1", shard_rows=4)  # 2 agents -> 2 ticks per shard: 3 shards
    back = load_dataset(tmp_path / "v1")
    assert isinstance(back, ReplayData)
    assert back.spec == data.spec
    for name, arr in data.columns().items():
        np.testing.assert_array_equal(getattr(back, name), arr, err_msg=name)
        assert getattr(back, name).dtype == arr.dtype
    np.testing.assert_array_equal(back.bootstrap_values, data.bootstrap_values)
    assert back.meta == data.meta and back.events == data.events


def test_cli_import_then_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    buffer_capture(tmp_path / "cap")
    assert dataset_cli(["import-legacy", str(tmp_path / "cap"), str(tmp_path / "v1")]) == 0
    assert "3 agent sample(s) x 6 ticks" in capsys.readouterr().out
    assert dataset_cli(["validate", str(tmp_path / "v1")]) == 0
    assert dataset_cli(["import-legacy", str(tmp_path / "cap"), str(tmp_path / "v1")]) == 1  # exists
    assert "not empty" in capsys.readouterr().err


def test_cli_bad_file_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    buffer_capture(tmp_path / "cap")
    arr = legacy_arrays(6, seed=2)
    del arr["old_log_probs"]
    payload: dict[str, Any] = dict(arr)
    np.savez(tmp_path / "cap" / "rollout_sample_agent2_002.npz", **payload)
    assert dataset_cli(["import-legacy", str(tmp_path / "cap"), str(tmp_path / "v1")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "rollout_sample_agent2_002.npz" in err and "old_log_probs" in err
    assert not (tmp_path / "v1").exists()


def _corrupt(arr: dict[str, np.ndarray], how: str) -> dict[str, np.ndarray]:
    if how == "missing":
        del arr["actions"]
    elif how == "length":
        arr["rewards"] = arr["rewards"][:-1]
    elif how == "values":
        arr["value_preds"] = np.zeros(arr["actions"].shape[0] + 2, np.float32)
    elif how == "map_shape":
        arr["map"] = arr["map"][:, :, :, :-1]
    elif how == "nan":
        arr["rewards"][2] = np.nan
    elif how == "fractional":
        arr["map"][1, 0, 2, 2] = 0.5
    elif how == "range":
        arr["map"][0, 1, 0, 0] = 300.0
    return arr


@pytest.mark.parametrize(
    ("how", "needle"),
    [
        ("missing", "missing required array(s) ['actions']"),
        ("length", "step arrays disagree on T"),
        ("values", "value_preds has length 8"),
        ("map_shape", "square window"),
        ("nan", "'rewards' holds 1 NaN/Inf"),
        ("fractional", "non-integral values (e.g. 0.5 at index (1, 0, 2, 2))"),
        ("range", "outside the uint8 range"),
    ],
)
def test_bad_sample_names_file_and_problem(tmp_path: Path, how: str, needle: str) -> None:
    npz, _ = write_sample(tmp_path, "bad", _corrupt(legacy_arrays(6, seed=1), how))
    with pytest.raises(DatasetError) as info:
        import_legacy(npz)
    assert str(info.value).startswith(str(npz)) and needle in str(info.value)


def test_sidecar_problems_name_the_sidecar(tmp_path: Path) -> None:
    npz, meta = write_sample(tmp_path, "s", legacy_arrays(4, seed=3), sidecar={"map_shape": [C, W, W]})
    with pytest.raises(DatasetError, match="no 'feature_names' list") as info:
        import_legacy(npz)
    assert info.value.file == str(meta)
    meta.write_text(json.dumps({"feature_names": FEATURES[:3]}))
    with pytest.raises(DatasetError, match=r"lists 3 feature_names but s\.npz has F=4"):
        import_legacy(npz)
    meta.unlink()
    with pytest.raises(DatasetError, match=r"sidecar JSON .* does not exist"):
        import_legacy(npz)


def test_integral_maps_up_to_255_are_kept_exactly(tmp_path: Path) -> None:
    arr = legacy_arrays(3, seed=4)
    arr["map"][:, 0] = 255.0
    arr["map"][:, 1] = 7.0
    npz, _ = write_sample(tmp_path, "counts", arr)
    data = import_legacy(npz)
    assert data.maps[:, 0, 0].max() == 255 and (data.maps[:, 0, 1] == 7).all()


def test_named_channels_in_sidecar_are_used(tmp_path: Path) -> None:
    arr = legacy_arrays(3, seed=4)
    sidecar = {"feature_names": FEATURES, "map_channels": ["walls", "agents", "objects"]}
    npz, _ = write_sample(tmp_path, "named", arr, sidecar=sidecar)
    assert import_legacy(npz).spec.map_channels == ("walls", "agents", "objects")


def test_ragged_lengths(tmp_path: Path) -> None:
    manifest, arrays = buffer_capture(tmp_path / "cap", lengths=(6, 4, 6))
    with pytest.raises(DatasetError, match=r"different lengths \(T: count = \{4: 1, 6: 2\}\)"):
        import_legacy(manifest)
    cut = import_legacy(manifest, ragged="truncate")
    assert (cut.num_ticks, cut.num_agents) == (4, 3)
    assert cut.bootstrap_values[0] == arrays[0]["value_preds"][4]  # value at the cut
    assert cut.meta["legacy"]["ragged"]["rows_dropped"] == 4
    largest = import_legacy(manifest, ragged="largest")
    assert (largest.num_ticks, largest.num_agents) == (6, 2)
    groups = import_legacy_groups(manifest)
    assert [(g.num_ticks, g.num_agents) for g in groups] == [(6, 2), (4, 1)]
    assert groups[0].spec == groups[1].spec  # one shared action vocabulary
    np.testing.assert_array_equal(groups[1].actions[:, 0], arrays[1]["actions"])


def test_cli_split_writes_one_dataset_per_length(tmp_path: Path) -> None:
    buffer_capture(tmp_path / "cap", lengths=(6, 4, 6))
    assert (
        dataset_cli(["import-legacy", str(tmp_path / "cap"), str(tmp_path / "v1"), "--ragged", "split"]) == 0
    )
    assert sorted(p.name for p in (tmp_path / "v1").iterdir()) == ["t00004", "t00006"]
    assert load_dataset(tmp_path / "v1" / "t00004").num_transitions == 4


def test_spec_policy(tmp_path: Path) -> None:
    manifest, _ = buffer_capture(tmp_path / "cap")
    odd = tmp_path / "cap" / "rollout_sample_agent2_002.json"
    doc = json.loads(odd.read_text())
    doc["feature_names"] = ["a", "b", "c", "d"]
    odd.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match="observation layout differs") as info:
        import_legacy(manifest)
    assert "rollout_sample_agent2_002.npz" in str(info.value)
    data = import_legacy(manifest, spec_policy="skip")
    assert data.num_agents == 2
    assert data.meta["legacy"]["skipped"][0]["sample"].endswith("rollout_sample_agent2_002.npz")


def test_bad_manifests(tmp_path: Path) -> None:
    (tmp_path / "empty_manifest.json").write_text("[]")
    with pytest.raises(DatasetError, match="lists no samples"):
        import_legacy(tmp_path / "empty_manifest.json")
    (tmp_path / "x_manifest.json").write_text(json.dumps({"metadata": {}}))
    with pytest.raises(DatasetError, match="no 'samples' list"):
        import_legacy(tmp_path / "x_manifest.json")
    with pytest.raises(DatasetError, match="several manifests"):
        import_legacy(tmp_path)
    (tmp_path / "m.json").write_text(json.dumps(["nowhere.npz"]))
    with pytest.raises(DatasetError, match="sample file does not exist"):
        import_legacy(tmp_path / "m.json")
