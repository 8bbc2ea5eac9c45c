"""``resolve_run``: the checkpoint and world that belong to a run, read from untrusted files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from townlet.config.snapshot import MAX_YAML_BYTES
from townlet.runs.resolve import RunFilesError, resolve_run


def _run(tmp_path: Path, snapshot: str, reported: str | None = "last.pt") -> Path:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / ".hydra").mkdir()
    for name in ("best.pt", "last.pt"):
        (run / "checkpoints" / name).write_bytes(b"x")
    (run / ".hydra" / "config.yaml").write_text(snapshot)
    if reported is not None:
        result = {"checkpoint": f"/elsewhere/checkpoints/{reported}"}
        (run / "result.json").write_text(json.dumps(result))
    return run


def test_the_result_checkpoint_and_the_run_world(tmp_path: Path) -> None:
    run = _run(tmp_path, "world:\n  name: queue_conflict\n  num_agents: 2\nseed: 3\n")
    files = resolve_run(run)
    assert files.checkpoint == run / "checkpoints" / "last.pt"  # the one result.json evaluated
    assert files.world_config == {"name": "queue_conflict", "num_agents": 2}
    assert resolve_run(run, "best").checkpoint == run / "checkpoints" / "best.pt"
    inside = resolve_run(run / "checkpoints" / "best.pt")
    assert inside.checkpoint.name == "best.pt" and inside.run_dir == run.resolve()
    assert inside.config["seed"] == 3


def test_without_a_result_best_comes_first(tmp_path: Path) -> None:
    run = _run(tmp_path, "seed: 1\n", reported=None)
    assert resolve_run(run).checkpoint.name == "best.pt"
    assert resolve_run(run).world_config is None


@pytest.mark.parametrize(
    ("snapshot", "message"),
    [
        ("a: &x [1, 2]\nb: *x\n", "aliases .* are not accepted"),
        ("- 1\n- 2\n", "must hold a mapping"),
        ("a: [1,\n", "is not valid YAML"),
        ("a: " + "x" * MAX_YAML_BYTES + "\n", "larger than"),
    ],
)
def test_a_bad_snapshot_is_one_line(tmp_path: Path, snapshot: str, message: str) -> None:
    with pytest.raises(RunFilesError, match=message) as caught:
        resolve_run(_run(tmp_path, snapshot))
    assert "\n" not in str(caught.value)


def test_missing_things_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(RunFilesError, match="does not exist"):
        resolve_run(tmp_path / "nope")
    with pytest.raises(RunFilesError, match="no checkpoint found"):
        resolve_run(tmp_path)
    with pytest.raises(RunFilesError, match="which=best or which=last"):
        resolve_run(tmp_path, "middle")


@pytest.mark.slow
@pytest.mark.torch
def test_townlet_eval_of_a_ppo_run_replays_its_result(cli_env: dict[str, str], tmp_path: Path) -> None:
    """No arguments: the run's world (not the default), its reported checkpoint and evaluation settings."""
    pytest.importorskip("torch")
    run = tmp_path / "run"
    train = [
        f"hydra.run.dir={run}",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.state_dir={tmp_path / 'state'}",
        "seed=3",
        "strategy=ppo",
        "model=mlp",
        "world=queue_conflict",
        "world.num_envs=2",
        "world.num_agents=2",
        "world.episode_length=30",
        "strategy.n_steps=16",
        "strategy.total_steps=128",
        "strategy.minibatch_size=32",
        "evaluation.episodes=2",
    ]
    for command in (["townlet.train", *train], ["townlet.cli.evaluate", str(run), "--json", "eval.json"]):
        proc = subprocess.run(
            [sys.executable, "-m", *command],
            cwd=tmp_path,
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    expected = json.loads((run / "result.json").read_text())["evaluation"]
    assert expected["world"] == "queue_conflict"
    assert json.loads((tmp_path / "eval.json").read_text()) == expected
