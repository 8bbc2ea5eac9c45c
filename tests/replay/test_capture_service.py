"""Capture in the real world, the cached `dataset=` service, and the two command-line tools."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from townlet.config.schema.dataset import DatasetConfig, DatasetKind
from townlet.replay import ReplayData, StreamingDataset, load_dataset
from townlet.rollout.collect import RolloutCaptureService, RolloutError
from townlet.rollout.datasets import ReplayDatasetService
from townlet.world import load_world_config
from townlet.world.config import WorldConfig


@pytest.fixture(scope="module")
def world() -> WorldConfig:
    cfg = load_world_config("default")
    cfg.num_envs, cfg.num_agents = 2, 3
    return cfg


def test_capture_round_trip_is_exact(tmp_path: Path, world: WorldConfig) -> None:
    data = RolloutCaptureService().capture(
        world, "scripted", ticks=30, seed=1, epsilon=0.2, output_dir=tmp_path / "d"
    )
    loaded = load_dataset(tmp_path / "d")
    assert isinstance(loaded, ReplayData)
    for name, arr in data.columns().items():
        assert np.array_equal(getattr(loaded, name), arr), name
    assert loaded.events == data.events and loaded.episode_stats == data.episode_stats
    assert loaded.meta["world"]["hash"] == data.meta["world"]["hash"]
    assert loaded.meta["behaviour"] == "scripted" and loaded.meta["epsilon"] == 0.2
    # epsilon exploration: executed actions sometimes differ from the teacher, log-probs are exact logs
    assert (data.actions != data.teacher_actions).any()
    assert (data.log_probs <= 0).all() and (data.log_probs > -20).all()


def test_same_seed_same_bytes(world: WorldConfig) -> None:
    a = RolloutCaptureService().capture(world, "random", ticks=10, seed=3)
    b = RolloutCaptureService().capture(world, "random", ticks=10, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a.columns().values(), b.columns().values(), strict=True))


def test_unknown_behaviour(world: WorldConfig) -> None:
    with pytest.raises((RolloutError, ValueError), match="behaviour"):
        RolloutCaptureService().capture(world, "telepathic", ticks=3)


def _cfg(**kw: object) -> DatasetConfig:
    return DatasetConfig(**{"ticks": 8, "seed": 0, **kw})  # type: ignore[arg-type]


def test_scripted_dataset_is_captured_once_then_cached(tmp_path: Path, world: WorldConfig) -> None:
    svc = ReplayDatasetService()
    first = svc.resolve(_cfg(), world, tmp_path)
    dirs = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(dirs) == 1 and dirs[0].name.startswith("scripted-t8-s0-")
    mtime = (dirs[0] / "manifest.json").stat().st_mtime_ns
    second = svc.resolve(_cfg(), world, tmp_path)
    assert (dirs[0] / "manifest.json").stat().st_mtime_ns == mtime, "second resolve must not re-capture"
    assert isinstance(first, ReplayData) and isinstance(second, ReplayData)
    assert np.array_equal(first.actions, second.actions)
    # anything that changes the data changes the key
    svc.resolve(_cfg(epsilon=0.1), world, tmp_path)
    world2 = load_world_config("default")
    world2.num_envs, world2.num_agents = 2, 2
    svc.resolve(_cfg(), world2, tmp_path)
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 3
    streaming = svc.resolve(_cfg(streaming=True), world, tmp_path)
    assert isinstance(streaming, StreamingDataset) and streaming.num_transitions == first.num_transitions


def test_corrupted_cache_is_recaptured(tmp_path: Path, world: WorldConfig) -> None:
    svc = ReplayDatasetService()
    first = svc.resolve(_cfg(), world, tmp_path)
    (cache,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    shard = next(cache.glob("shard-*.npz"))
    shard.write_bytes(b"garbage")
    again = svc.resolve(_cfg(), world, tmp_path)
    assert np.array_equal(again.actions, first.actions)  # type: ignore[union-attr]


def test_concurrent_resolves_capture_once(tmp_path: Path, world: WorldConfig) -> None:
    results: list[object] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(ReplayDatasetService().resolve(_cfg(), world, tmp_path))
        )
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_manifest_kind_and_its_errors(tmp_path: Path, world: WorldConfig) -> None:
    RolloutCaptureService().capture(world, ticks=5, output_dir=tmp_path / "given")
    svc = ReplayDatasetService()
    data = svc.resolve(DatasetConfig(kind=DatasetKind.manifest, path=str(tmp_path / "given")), world, None)
    assert data.num_transitions == 5 * 6
    from townlet.replay import DatasetError

    with pytest.raises(DatasetError, match=r"dataset\.path"):
        svc.resolve(DatasetConfig(kind=DatasetKind.manifest), world, None)
    with pytest.raises(DatasetError, match="does not exist"):
        svc.resolve(DatasetConfig(kind=DatasetKind.manifest, path=str(tmp_path / "nope")), world, None)


def test_queue_conflict_dataset_uses_its_scenario(tmp_path: Path, world: WorldConfig) -> None:
    data = ReplayDatasetService().resolve(
        _cfg(kind=DatasetKind.queue_conflict, world="queue_conflict", ticks=20), world, tmp_path
    )
    assert isinstance(data, ReplayData) and data.meta["world"]["name"] == "queue_conflict"
    assert (
        data.num_agents
        == load_world_config("queue_conflict").num_envs * load_world_config("queue_conflict").num_agents
    )


# ------------------------------------------------------------------------------------------- CLIs
def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, check=False)


def test_dataset_cli_inspect_validate_and_errors(tmp_path: Path, world: WorldConfig) -> None:
    RolloutCaptureService().capture(world, ticks=6, output_dir=tmp_path / "d")
    from townlet.cli.dataset import main

    assert main(["inspect", str(tmp_path / "d"), "--json"]) == 0
    assert main(["validate", str(tmp_path / "d"), "--world", "default"]) == 0
    shard = next((tmp_path / "d").glob("shard-*.npz"))
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 1
    shard.write_bytes(bytes(raw))
    out = _cli("-m", "townlet.cli.dataset", "validate", str(tmp_path / "d"))
    assert out.returncode == 1
    assert "checksum mismatch" in out.stderr and shard.name in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_capture_cli_writes_a_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hydra import compose, initialize_config_dir

    from townlet.cli.capture import run_capture
    from townlet.config.schema import conf_dir

    with initialize_config_dir(str(conf_dir())):
        cfg = compose("capture", overrides=[f"out={tmp_path / 'cap'}", "world=queue_conflict", "ticks=12"])
    cfg.progress = False
    run_capture(cfg)
    assert "wrote" in capsys.readouterr().out
    doc = json.loads((tmp_path / "cap" / "manifest.json").read_text())
    assert doc["world"]["name"] == "queue_conflict" and doc["counts"]["ticks"] == 12


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["ticks=3"], 2, "out=PATH is required"),
        (["ticks=abc", "out=x"], 2, "ticks"),
        (["ticks=3", "progress=false", "out={existing}"], 1, "already exists"),
    ],
)
def test_capture_cli_errors_are_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    fragment: str,
    world: WorldConfig,
) -> None:
    from townlet.cli import capture

    existing = tmp_path / "existing"
    RolloutCaptureService().capture(world, ticks=2, output_dir=existing)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    monkeypatch.setattr(sys, "argv", ["townlet-capture", *(a.format(existing=existing) for a in args)])
    with pytest.raises(SystemExit) as info:
        capture.main()
    err = capsys.readouterr().err
    assert info.value.code == code
    assert fragment in err and "Traceback" not in err
