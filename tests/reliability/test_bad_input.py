"""Bad input is refused before anything is written: one stderr line naming the problem, a non-zero exit,
no run dir or ``.hydra/`` created, and an existing run dir left byte-identical.

Each row is one bad input (docs/reliability.md lists the same table). Most rows call ``main()`` in
this process (a refusal costs one composition); the rows marked ``SUB`` run ``python -m townlet.train``
in a subprocess, so the real console path (Hydra's own error printing included) is covered too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

SUB = "subprocess"
RUN_ERROR, CONFIG_ERROR = 1, 2


@dataclass(frozen=True)
class Row:
    args: tuple[str, ...]  # townlet-train arguments; {done}, {root}, {snap}, {garbage} are filled in
    code: int
    phrase: str
    how: str = "in-process"
    needs: str = ""  # "snapshot:<edit>" for the -cp rows


BC = ("strategy=bc",)
SNAP = ("-cp", "{snap}", "-cn", "config", "hydra.run.dir={root}/again")

ROWS: dict[str, Row] = {
    # --- the allow-list: every dotted import path in a config
    "target_stdlib_reexport": Row(
        (*BC, "strategy._target_=townlet.runs.record.os.system"), CONFIG_ERROR, "defined in posix", SUB
    ),
    "target_importlib_reexport": Row(
        (*BC, "strategy._target_=townlet.config.instantiate.importlib.import_module"),
        CONFIG_ERROR,
        "defined in importlib",
    ),
    "target_outside": Row((*BC, "strategy._target_=os.system"), CONFIG_ERROR, "outside the allowed packages"),
    "target_builtins_eval": Row(
        (*BC, "strategy._target_=builtins.eval"), CONFIG_ERROR, "outside the allowed packages"
    ),
    "target_missing_component": Row(
        (*BC, "strategy._target_=townlet.strategies.nope.Nope"), CONFIG_ERROR, "not part of this installation"
    ),
    "target_not_a_name": Row((*BC, "strategy._target_=1abc.x"), CONFIG_ERROR, "is not a dotted name"),
    "anneal_stage_target": Row(
        ("strategy=anneal", "strategy.ppo._target_=subprocess.call"),
        CONFIG_ERROR,
        "strategy.ppo._target_='subprocess.call' is not allowed",
    ),
    "services_swap_outside": Row(
        (*BC, "+services.implementations.replay=code.interact"),
        CONFIG_ERROR,
        "services.implementations.replay='code.interact' is not allowed",
        SUB,
    ),
    "services_swap_reexport": Row(
        (*BC, "+services.implementations.rollout=townlet.runs.record.os.system"),
        CONFIG_ERROR,
        "defined in posix",
    ),
    "services_unknown_name": Row(
        (*BC, "+services.implementations.replya=townlet.rollout.datasets.ReplayDatasetService"),
        CONFIG_ERROR,
        "unknown service name(s) replya",
    ),
    # --- ranges, per group
    "bc_lr_negative": Row((*BC, "strategy.lr=-1"), CONFIG_ERROR, "strategy.lr", SUB),
    "bc_val_fraction": Row((*BC, "strategy.val_fraction=1.5"), CONFIG_ERROR, "strategy.val_fraction"),
    "ppo_clip_param": Row(("strategy=ppo", "strategy.clip_param=2"), CONFIG_ERROR, "strategy.clip_param"),
    "ppo_gamma": Row(("strategy=ppo", "strategy.gamma=1.5"), CONFIG_ERROR, "gamma must be in [0, 1]"),
    "anneal_threshold": Row(
        ("strategy=anneal", "strategy.accuracy_threshold=2"), CONFIG_ERROR, "strategy.accuracy_threshold"
    ),
    "anneal_nested_ppo_lr": Row(("strategy=anneal", "strategy.ppo.lr=-1"), CONFIG_ERROR, "lr must be > 0"),
    "world_num_envs": Row((*BC, "world.num_envs=0"), CONFIG_ERROR, "world.num_envs=0"),
    "world_window_even": Row((*BC, "world.window=4"), CONFIG_ERROR, "world.window=4"),
    # sizes past half any machine's memory: refused in one line instead of swapping it to a halt
    "world_too_big": Row((*BC, "world.num_agents=1000000"), CONFIG_ERROR, "more than half this machine's"),
    "model_hidden_dim": Row((*BC, "model.hidden_dim=0"), CONFIG_ERROR, "model.hidden_dim must be >= 1"),
    "model_conv_layers": Row((*BC, "model.conv_strides=[1]"), CONFIG_ERROR, "one entry per conv layer"),
    "dataset_ticks": Row((*BC, "dataset.ticks=0"), CONFIG_ERROR, "dataset.ticks must be >= 1"),
    "dataset_manifest_no_path": Row((*BC, "dataset=manifest"), CONFIG_ERROR, "dataset.path"),
    "device_threads": Row((*BC, "device.num_threads=0"), CONFIG_ERROR, "device.num_threads"),
    "evaluation_episodes_zero": Row((*BC, "evaluation.episodes=0"), CONFIG_ERROR, "evaluation.episodes"),
    "evaluation_every_zero": Row((*BC, "evaluation.every=0"), CONFIG_ERROR, "evaluation.every"),
    "log_frequency_zero": Row(
        (*BC, "logger.log_frequency=0"), CONFIG_ERROR, "logger.log_frequency must be >= 1"
    ),
    "progress_every_zero": Row(
        (*BC, "logger.progress_every_sec=0"), CONFIG_ERROR, "logger.progress_every_sec"
    ),
    "ppo_minibatch_too_large": Row(
        ("strategy=ppo", "strategy.minibatch_size=100000"), CONFIG_ERROR, "set strategy.minibatch_size<=4096"
    ),
    # --- types, keys, options
    "wrong_type_float": Row((*BC, "strategy.lr=abc"), CONFIG_ERROR, "strategy.lr"),
    "wrong_type_int": Row((*BC, "seed=1.5"), CONFIG_ERROR, "seed"),
    "unknown_key_plus": Row((*BC, "+new_key=1"), CONFIG_ERROR, "unknown key 'new_key'", SUB),
    "unknown_key_plus_nested": Row((*BC, "+strategy.lrr=1"), CONFIG_ERROR, "unknown key 'strategy.lrr'"),
    "unknown_key": Row((*BC, "strategy.lrr=1"), CONFIG_ERROR, "unknown key 'strategy.lrr'"),
    "bad_device_type": Row((*BC, "device.type=gpu"), CONFIG_ERROR, "device.type"),
    "bad_world_name": Row((*BC, "world=nope"), CONFIG_ERROR, "unknown option 'nope'"),
    "bad_strategy_name": Row(("strategy=sac",), CONFIG_ERROR, "unknown option 'sac'"),
    "bad_objective": Row((*BC, "objective=nope"), CONFIG_ERROR, "objective='nope'"),
    "bad_objective_mode": Row((*BC, "objective_mode=sideways"), CONFIG_ERROR, "objective_mode"),
    # --- files
    "init_from_missing": Row((*BC, "init_from={root}/nope.pt"), CONFIG_ERROR, "does not exist"),
    "init_from_garbage": Row(
        (*BC, "init_from={garbage}"), CONFIG_ERROR, "not a checkpoint written by townlet-train", SUB
    ),
    "finished_run_dir": Row((*BC, "hydra.run.dir={done}"), RUN_ERROR, "resume=true", SUB),
    # --- sweeps: import paths and finished job dirs are checked for every job before the sweep dir
    # exists (a bad value fails only its own job: tests/sweeps/test_multirun.py)
    "sweep_one_job_outside_allow_list": Row(
        ("-m", *BC, "strategy._target_=townlet.strategies.bc.BCStrategy,townlet.runs.record.os.system"),
        CONFIG_ERROR,
        "sweep job #1",
        SUB,
    ),
    "sweep_into_finished_dir": Row(
        ("-m", *BC, "seed=0,1", "hydra.sweep.dir={root}", "hydra.sweep.subdir=done"), RUN_ERROR, "resume=true"
    ),
    # --- re-running an edited .hydra snapshot (-cp RUN/.hydra -cn config)
    "snapshot_target_reexport": Row(SNAP, CONFIG_ERROR, "defined in posix", needs="snapshot:target"),
    "snapshot_services_swap": Row(SNAP, CONFIG_ERROR, "code.interact", needs="snapshot:services"),
    "snapshot_episodes_zero": Row(SNAP, CONFIG_ERROR, "evaluation.episodes", needs="snapshot:episodes"),
    "snapshot_unknown_key": Row(SNAP, CONFIG_ERROR, "unknown key 'extra'", needs="snapshot:unknown"),
}

SNAPSHOT_EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "target": lambda c: c["strategy"].update(_target_="townlet.runs.record.os.system"),
    "services": lambda c: c["services"].update(implementations={"replay": "code.interact"}),
    "episodes": lambda c: c["evaluation"].update(episodes=0),
    "unknown": lambda c: c.update(extra=1),
}


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for folders): the before/after comparison."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))
    }


def _finished_run(root: Path) -> Path:
    done = root / "done"
    (done / ".hydra").mkdir(parents=True)
    (done / "result.json").write_text(json.dumps({"kind": "bc", "accuracy": 0.5}))
    (done / "run.json").write_text(json.dumps({"status": "completed", "run_id": "r1"}))
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (done / ".hydra" / name).write_text(f"# the finished run's {name}\n")
    return done


def _snapshot(root: Path, edit: str) -> Path:
    """A ``.hydra/`` snapshot as a real run writes it (the composed job), with one edit."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from townlet.config.schema import conf_dir, register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir())):
        cfg = compose("train", overrides=["strategy=bc"])
    GlobalHydra.instance().clear()
    config: Any = yaml.safe_load(OmegaConf.to_yaml(cfg))
    SNAPSHOT_EDITS[edit](config)
    snap = root / "snap" / ".hydra"
    snap.mkdir(parents=True)
    (snap / "config.yaml").write_text(yaml.safe_dump(config))
    (snap / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"name": "train"}}}))
    (snap / "overrides.yaml").write_text(yaml.safe_dump(["strategy=bc"]))
    return snap


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TOWNLET_ROOT", str(tmp_path))
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)  # main() sets it; restored afterwards
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _in_process(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> int:
    from hydra.core.global_hydra import GlobalHydra

    from townlet.cli.train import main

    GlobalHydra.instance().clear()
    monkeypatch.setattr(sys, "argv", ["townlet-train", *args])
    capsys.readouterr()
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        GlobalHydra.instance().clear()
    return 0


def _subprocess(args: list[str], root: Path, cli_env: dict[str, str]) -> tuple[int, str]:
    env = {**cli_env, "TOWNLET_ROOT": str(root)}
    proc = subprocess.run(
        [sys.executable, "-m", "townlet.train", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stderr


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.parametrize("name", list(ROWS))
def test_bad_input_is_refused_before_anything_is_written(
    name: str,
    root: Path,
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    row = ROWS[name]
    fill = {"root": str(root), "done": str(_finished_run(root)), "garbage": str(root / "garbage.pt")}
    (root / "garbage.pt").write_bytes(os.urandom(512))
    if row.needs.startswith("snapshot:"):
        fill["snap"] = str(_snapshot(root, row.needs.partition(":")[2]))
    args = [a.format(**fill) for a in row.args]
    before = _tree(root)

    if row.how == SUB:
        code, err = _subprocess(args, root, cli_env)
    else:
        code = _in_process(args, monkeypatch, capsys)
        err = capsys.readouterr().err

    assert code == row.code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert row.phrase in lines[0], err
    assert "Traceback" not in err
    assert _tree(root) == before  # no run dir, no .hydra/, the finished run untouched


@pytest.mark.skipif(_cuda_available(), reason="this machine has CUDA: device=cuda is valid here")
def test_cuda_without_cuda_is_refused_before_the_run_dir(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _tree(root)
    assert _in_process([*BC, "device=cuda"], monkeypatch, capsys) == CONFIG_ERROR
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "device=cuda" in lines[0] and "device=cpu" in lines[0]
    assert _tree(root) == before


# ----------------------------------------------------------------------------------------- reproduce


def _reproducible_run(root: Path, *, overrides: list[str], config: dict[str, Any]) -> Path:
    run = _finished_run(root)
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (run / ".hydra" / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"job": {"name": "train", "config_name": "train"}}})
    )
    return run


REPRODUCE_ROWS: dict[str, tuple[list[str], dict[str, Any], str]] = {
    "overrides_services_swap": (
        ["strategy=bc", "+services.implementations.replay=code.interact"],
        {"seed": 0},
        "services.implementations.replay='code.interact' is not allowed",
    ),
    "overrides_services_reexport": (
        ["strategy=bc", "+services.implementations.replay=townlet.runs.record.os.system"],
        {"seed": 0},
        "defined in posix",
    ),
    "overrides_target_reexport": (
        ["strategy=bc", "strategy._target_=townlet.runs.record.os.system"],
        {"seed": 0},
        "defined in posix",
    ),
    "overrides_hydra_key": (["strategy=bc", "hydra.run.dir=/tmp/elsewhere"], {"seed": 0}, "hydra.* keys"),
    "config_target_reexport": (
        ["strategy=bc"],
        {"strategy": {"_target_": "townlet.runs.record.os.system"}},
        "defined in posix",
    ),
    "config_services_swap": (
        ["strategy=bc"],
        {"services": {"implementations": {"evaluation": "code.interact"}}},
        "code.interact",
    ),
    "config_episodes_zero": (["strategy=bc"], {"evaluation": {"episodes": 0}}, "evaluation.episodes"),
}


@pytest.mark.parametrize("name", list(REPRODUCE_ROWS))
def test_reproduce_refuses_a_tampered_snapshot_before_running(
    name: str, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from townlet.cli import reproduce

    overrides, config, phrase = REPRODUCE_ROWS[name]
    run = _reproducible_run(root, overrides=overrides, config=config)
    before = _tree(root)
    capsys.readouterr()
    assert reproduce.main([str(run)]) == reproduce.EXIT_REFUSED
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and phrase in lines[0], lines
    assert _tree(root) == before  # no outputs/reproduce/..., the original untouched


DEEP = "[" * 100_000 + "]" * 100_000  # past the interpreter's recursion limit when parsed


def test_json_nested_past_the_recursion_limit_is_bad_json_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from townlet.cli.evaluate import main as eval_main
    from townlet.promotion.state import PromotionService, PromotionStateError
    from townlet.runs.atomic import loads_json, read_json_object

    with pytest.raises(json.JSONDecodeError, match="nested too deeply"):
        loads_json(DEEP)
    (tmp_path / "deep.json").write_text(DEEP)
    assert read_json_object(tmp_path / "deep.json") is None
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "result.json").write_text(DEEP)
    assert eval_main([str(run)]) == 2
    result = run / "result.json"
    assert capsys.readouterr().err.splitlines() == [
        f"townlet-eval: error: {result} is not readable JSON (JSONDecodeError); rerun the training"
    ]
    service = PromotionService(tmp_path / "state")
    service.history_path.parent.mkdir(parents=True)
    service.history_path.write_text(DEEP + "\n")
    with pytest.raises(PromotionStateError, match="line 1 is corrupt"):
        service.history(3)
