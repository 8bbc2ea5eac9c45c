"""townlet-reproduce without training: snapshot checks and result comparison on fabricated run dirs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from townlet.cli import reproduce
from townlet.cli.reproduce import ReproduceError, compare_results, format_differences, load_snapshot


def _run_dir(
    root: Path, name: str, *, config: dict[str, Any] | None = None, overrides: list[str] | None = None
) -> Path:
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    cfg = config or {"seed": 0, "strategy": {"_target_": "townlet.strategies.bc.BCStrategy"}}
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides or ["strategy=bc"]))
    (run / ".hydra" / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"job": {"name": "train", "config_name": "train"}}})
    )
    return run


def _result(run: Path, **fields: Any) -> None:
    base = {
        "kind": "bc",
        "accuracy": 0.9,
        "loss": 0.3,
        "duration_sec": 1.0,
        "samples_per_sec": 1000.0,
        "checkpoint": str(run / "checkpoints" / "best.pt"),
        "evaluation": {"policy": {"mean_return": 1.5, "episodes": 2}},
    }
    base.update(fields)
    (run / "result.json").write_text(json.dumps(base))


def test_snapshot_is_read(tmp_path: Path) -> None:
    snap = load_snapshot(_run_dir(tmp_path, "a", overrides=["strategy=bc", "seed=3"]))
    assert snap.overrides == ["strategy=bc", "seed=3"]
    assert snap.config_name == "train" and snap.config["seed"] == 0


def test_tampered_target_in_config_is_refused(tmp_path: Path) -> None:
    cfg = {"strategy": {"_target_": "os.system", "command": "echo pwned"}}
    with pytest.raises(ReproduceError, match=r"strategy\._target_='os.system' is not allowed"):
        load_snapshot(_run_dir(tmp_path, "a", config=cfg))


def test_tampered_overrides_are_refused(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, "a", overrides=["strategy._target_=subprocess.call"])
    with pytest.raises(ReproduceError, match=r"subprocess\.call"):
        load_snapshot(run)
    run = _run_dir(tmp_path, "b", overrides=["+hydra.callbacks.x._target_=os.system"])
    with pytest.raises(ReproduceError, match="hydra"):
        load_snapshot(run)


def test_cli_refuses_before_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run_dir(tmp_path, "a", config={"model": {"net": {"_target_": "builtins.eval"}}})
    _result(run)
    assert reproduce.main([str(run)]) == reproduce.EXIT_REFUSED
    err = capsys.readouterr().err
    assert "refusing to reproduce" in err and "model.net._target_='builtins.eval'" in err
    assert not (tmp_path / "outputs").exists()


def test_missing_snapshot_is_explained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "plain"
    run.mkdir()
    _result(run)
    assert reproduce.main([str(run)]) == reproduce.EXIT_REFUSED
    assert "overrides.yaml is missing" in capsys.readouterr().err


def test_compare_ignores_timings_and_own_paths(tmp_path: Path) -> None:
    a, b = _run_dir(tmp_path, "a"), _run_dir(tmp_path, "b")
    _result(a, duration_sec=1.0, samples_per_sec=900.0)
    _result(b, duration_sec=7.5, samples_per_sec=100.0)
    assert compare_results(a, b) == []
    assert format_differences([]).startswith("identical")


def test_compare_lists_every_differing_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _run_dir(tmp_path, "a"), _run_dir(tmp_path, "b")
    _result(a)
    _result(b, accuracy=0.8, evaluation={"policy": {"mean_return": 1.5, "episodes": 3}})
    diffs = compare_results(a, b)
    assert [d.field for d in diffs] == ["accuracy", "evaluation.policy.episodes"]
    assert (diffs[0].original, diffs[0].reproduced) == (0.9, 0.8)
    assert reproduce.main([str(a), "--compare-with", str(b)]) == reproduce.EXIT_DIFFERENT
    assert "accuracy: 0.9 -> 0.8" in capsys.readouterr().out


def test_a_block_present_on_one_side_is_one_difference(tmp_path: Path) -> None:
    """Code that gained a result block since the original run: one line, not one per leaf."""
    a, b = _run_dir(tmp_path, "a"), _run_dir(tmp_path, "b")
    _result(a)
    _result(b, best={"accuracy": 0.9, "loss": 0.3, "epoch": 2})
    diffs = compare_results(a, b)
    assert [(d.field, d.original, d.reproduced) for d in diffs] == [("best", "<absent>", "<3 fields>")]


def test_a_null_field_an_older_result_lacks_is_no_difference(tmp_path: Path) -> None:
    a, b = _run_dir(tmp_path, "a"), _run_dir(tmp_path, "b")
    _result(a)
    _result(b, stop_reason=None)
    assert compare_results(a, b) == []
    _result(b, stop_reason="max_wall_sec")
    assert [d.field for d in compare_results(a, b)] == ["stop_reason"]


def test_a_cached_dataset_under_another_root_is_no_difference(tmp_path: Path) -> None:
    a, b = _run_dir(tmp_path, "a"), _run_dir(tmp_path, "b")
    _result(a, manifest="/home/me/townlet/data/scripted-t300-s0-a59c9c249edcc258")
    _result(b, manifest="/scratch/townlet/data/scripted-t300-s0-a59c9c249edcc258")
    assert compare_results(a, b) == []  # TOWNLET_ROOT moved; the content-named folder did not
    _result(b, manifest="/scratch/townlet/data/scripted-t600-s0-0f1e2d3c4b5a6978")
    assert [d.field for d in compare_results(a, b)] == ["manifest"]


def test_the_new_run_dir_is_this_machines_whatever_the_snapshot_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edited ``paths.output_root`` (another run's dir, a system folder) never decides where we write."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from townlet.config.schema import conf_dir, register_configs

    monkeypatch.setenv("TOWNLET_ROOT", str(tmp_path / "root"))
    config = {"seed": 0, "paths": {"output_root": str(tmp_path / "victim")}}
    snapshot = load_snapshot(_run_dir(tmp_path, "a", config=config))
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(conf_dir()), job_name=snapshot.job_name):
        _, target = reproduce.compose_config(snapshot, None)
    assert target.is_relative_to(tmp_path / "root" / "outputs" / "reproduce")
