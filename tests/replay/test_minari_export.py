"""`townlet-dataset export-minari`: a captured dataset read back with Minari's own loader, and refusals."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from townlet.replay import ReplayData, load_dataset
from townlet.rollout.collect import RolloutCaptureService
from townlet.world import load_world_config

minari = pytest.importorskip("minari")

DATASET_ID = "townlet/tiny-scripted-v0"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 towns x 2 agents, 8-tick episodes over 20 ticks: two full episodes and a cut one per agent."""
    cfg = load_world_config("default")
    cfg.num_envs, cfg.num_agents, cfg.episode_length = 2, 2, 8
    out = tmp_path_factory.mktemp("replay") / "tiny"
    RolloutCaptureService().capture(cfg, "scripted", ticks=20, seed=1, epsilon=0.2, output_dir=out)
    return out


def _export(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``townlet-dataset export-minari ARGS`` (run in this process)."""
    from townlet.cli.dataset import main

    code = main(["export-minari", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _expected_episodes(data: ReplayData) -> list[tuple[int, int, int]]:
    """(agent column, first row, last row) of every episode, in the export's order."""
    out = []
    for col in range(data.num_agents):
        start = 0
        for t in range(data.num_ticks):
            if data.terminated[t, col] or data.truncated[t, col] or t == data.num_ticks - 1:
                out.append((col, start, t))
                start = t + 1
    return out


def test_export_reads_back_with_minari(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "minari"
    code, out, err = _export(capsys, str(source), "--out", str(root), "--dataset-id", DATASET_ID)
    assert code == 0, err
    assert DATASET_ID in out
    data = load_dataset(source)
    assert isinstance(data, ReplayData)

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    ds = minari.load_dataset(DATASET_ID)
    expected = _expected_episodes(data)
    assert ds.total_episodes == len(expected) == 3 * data.num_agents
    assert ds.total_steps == data.num_transitions
    assert ds.action_space.n == data.spec.num_actions
    assert ds.observation_space["map"].shape == data.spec.map_shape
    assert ds.observation_space["features"].shape == (data.spec.feature_dim,)

    metadata = list(ds.storage.get_episode_metadata(ds.episode_indices))
    for episode, meta, (col, first, last) in zip(ds.iterate_episodes(), metadata, expected, strict=True):
        rows = slice(first, last + 1)
        assert int(meta["first_row"]) == first and int(meta["town"]) == data.env_id[first, col]
        assert np.array_equal(episode.actions, data.actions[rows, col])
        assert np.array_equal(episode.rewards, data.rewards[rows, col])
        assert np.array_equal(episode.terminations, data.terminated[rows, col])
        # the source's truncation flags, plus one where the capture cut the last episode
        cut = last == data.num_ticks - 1 and not data.terminated[last, col]
        want_trunc = data.truncated[rows, col].copy()
        want_trunc[-1] |= cut
        assert np.array_equal(episode.truncations, want_trunc)
        # L + 1 observations and masks; the first L are the source's rows
        steps = last + 1 - first
        assert episode.observations["map"].shape[0] == steps + 1
        assert np.array_equal(episode.observations["map"][:steps], data.maps[rows, col])
        assert np.array_equal(episode.observations["features"][:steps], data.features[rows, col])
        mask = episode.infos["action_mask"]
        assert mask.dtype == np.bool_ and mask.shape == (steps + 1, data.spec.num_actions)
        assert np.array_equal(mask[:steps], data.action_mask[rows, col])


def test_default_id_and_root_from_the_environment(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from townlet.cli.dataset import main

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    assert main(["export-minari", str(source)]) == 0
    assert minari.load_dataset("townlet/default-scripted-v0").total_steps == 20 * 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging directory left behind"
    monkeypatch.chdir(tmp_path)  # a relative --out is taken from the working directory
    assert main(["export-minari", str(source), "--out", "rel", "--dataset-id", "rel-v0"]) == 0
    assert minari.MinariDataset(tmp_path / "rel" / "rel-v0" / "data").total_steps == 20 * 4


def test_a_faint_keeps_the_next_observation(tmp_path: Path) -> None:
    """After a faint the agent respawns: the next row is the episode's exact final observation."""
    from townlet.replay import write_dataset
    from townlet.replay.to_minari import export_minari

    from .conftest import make_data

    data = make_data(ticks=12, num_envs=1, num_agents=2)
    data.terminated[:] = False
    data.terminated[3, 0] = True
    write_dataset(data, tmp_path / "src")
    done = export_minari(tmp_path / "src", dataset_id="faint-v0", root=tmp_path / "root")
    ds = minari.MinariDataset(done.path / "data")
    first = ds[0]  # agent 0, rows 0..3, ended by the faint
    assert first.terminations[-1] and len(first) == 4
    assert np.array_equal(first.observations["features"][-1], data.features[4, 0])
    meta = next(iter(ds.storage.get_episode_metadata([0])))
    assert bool(meta["final_observation_exact"])


@pytest.mark.parametrize(
    ("make_bad", "fragment"),
    [
        (lambda src, tmp: tmp / "missing", "does not exist"),
        (lambda src, tmp: _corrupt_copy(src, tmp), "checksum mismatch"),
        (lambda src, tmp: src, "already exists"),
    ],
)
def test_refusals_are_one_line_and_write_nothing(
    source: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make_bad: Callable[[Path, Path], Path],
    fragment: str,
) -> None:
    root = tmp_path / "root"
    if fragment == "already exists":
        (root / DATASET_ID).mkdir(parents=True)
    bad = make_bad(source, tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, out, err = _export(capsys, str(bad), "--out", str(root), "--dataset-id", DATASET_ID)
    assert code == 2 and not out
    assert fragment in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_malformed_id_is_refused(source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _export(capsys, str(source), "--out", str(tmp_path / "root"), "--dataset-id", "no v!")
    assert code == 2 and "malformed Minari dataset id" in err
    assert not (tmp_path / "root").exists()


def _corrupt_copy(src: Path, tmp: Path) -> Path:
    dst = tmp / "corrupt"
    shutil.copytree(src, dst)
    shard = next(dst.glob("shard-*.npz"))
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 1
    shard.write_bytes(bytes(raw))
    return dst


def test_without_minari_the_command_says_how_to_install_it(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "minari", None)  # `import minari` now raises ImportError
    code, _, err = _export(capsys, str(source), "--out", str(tmp_path / "root"))
    assert code == 2 and "townlet-train[minari]" in err
    assert not (tmp_path / "root").exists()
