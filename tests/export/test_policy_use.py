"""Using a trained policy elsewhere: townlet-eval on .onnx without torch, load_policy, townlet-render."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import GifImagePlugin, Image

from townlet import load_policy
from townlet.cli.export import main as export_main
from townlet.world import make_town
from townlet.world.pz import TownParallelEnv

pytestmark = pytest.mark.torch

# Any attempt to import torch in the subprocess fails, as on a machine without it.
BLOCKER = """
import importlib.abc, sys
class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by test)", name=name)
sys.meta_path.insert(0, _NoTorch())
"""


@pytest.fixture(scope="module")
def onnx_file(bc_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "policy.onnx"
    assert export_main([str(bc_run), f"out={out}"]) == 0
    return out


def test_eval_of_an_onnx_policy_never_imports_torch(onnx_file, cli_env, tmp_path) -> None:
    code = BLOCKER + (
        "import sys\n"
        "from townlet.cli.evaluate import main\n"
        "from townlet import load_policy\n"
        "assert main([sys.argv[1], 'episodes=2', 'seed=3', 'world.episode_length=30']) == 0\n"
        "policy = load_policy(sys.argv[1])\n"
        "assert policy.world.episode_length == 150\n"
        "leaked = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not leaked, leaked\n"
        "print('torch-free')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(onnx_file)],
        capture_output=True,
        text=True,
        env=cli_env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "trained" in proc.stdout and "scripted" in proc.stdout and "torch-free" in proc.stdout


def test_onnx_and_checkpoint_evaluate_to_the_same_table(onnx_file, bc_run, capsys) -> None:
    from townlet.cli.evaluate import main

    args = ["episodes=2", "seed=4", "baselines=false"]
    assert main([str(bc_run), *args]) == 0
    from_checkpoint = capsys.readouterr().out
    assert main([str(onnx_file), *args]) == 0
    assert capsys.readouterr().out == from_checkpoint
    assert main([str(onnx_file), "world.window=7"]) == 2
    assert "another observation spec" in capsys.readouterr().err


def test_eval_takes_every_format_export_writes(onnx_file, bc_run, tmp_path, capsys) -> None:
    from townlet.cli.evaluate import main
    from townlet.nets.export import EXPORT_FORMATS

    args = ["episodes=2", "seed=4", "baselines=false"]
    assert main([str(bc_run), *args]) == 0
    from_checkpoint = capsys.readouterr().out
    for fmt in EXPORT_FORMATS:
        out = tmp_path / f"policy.{fmt}"
        assert export_main([str(bc_run), f"format={fmt}", f"out={out}"]) == 0
        capsys.readouterr()
        assert main([str(out), *args]) == 0, capsys.readouterr().err
        assert capsys.readouterr().out == from_checkpoint, fmt
    assert main([str(tmp_path / "policy.pt2"), "world.window=7"]) == 2
    assert "another observation spec" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["run", "onnx"])
def test_load_policy_acts_in_the_pettingzoo_env(kind, bc_run, onnx_file) -> None:
    policy = load_policy(bc_run if kind == "run" else onnx_file)
    env = TownParallelEnv(policy.world, seed=0)
    obs, _ = env.reset(seed=0)
    steps, seen = 0, set()
    while env.agents:
        actions = policy.act(obs)
        assert set(actions) == set(env.agents)
        for agent, action in actions.items():
            assert obs[agent]["action_mask"][action] == 1  # only allowed actions
            seen.add(action)
        obs, _rewards, _terms, _truncs, _infos = env.step(actions)
        steps += 1
    assert steps == policy.world.episode_length and len(seen) > 1
    single = policy.act(obs["agent_0"] if obs else env.reset(seed=1)[0]["agent_0"])
    assert isinstance(single, int)
    noop_only = np.zeros(policy.spec.num_actions, dtype=bool)
    noop_only[0] = True
    first = env.reset(seed=2)[0]["agent_1"]
    assert policy.act(first, mask=noop_only) == 0  # an explicit mask wins over the observation's


def test_load_policy_batches_match_between_checkpoint_and_onnx(bc_run, onnx_file, episode_world) -> None:
    obs = make_town(episode_world, 7).reset()
    from_run, from_onnx = load_policy(bc_run), load_policy(onnx_file)
    assert np.array_equal(from_run.act(obs), from_onnx.act(obs))
    with pytest.raises(TypeError, match="act\\(\\) takes"):
        from_run.act([1, 2, 3])


def test_render_records_a_trained_episode_as_a_gif(bc_run, tmp_path, capsys) -> None:
    from townlet.cli.render import main

    gif = tmp_path / "episode.gif"
    assert main([str(bc_run), "ticks=12", "tile=8", f"out={gif}"]) == 0
    assert "13 frames of policy=trained" in capsys.readouterr().out
    with Image.open(gif) as image:
        assert isinstance(image, GifImagePlugin.GifImageFile)
        assert image.n_frames == 13 and image.size == (16 * 8, 17 * 8)


def _renamed_input(model: Any) -> None:
    old = model.graph.input[0].name
    model.graph.input[0].name = "renamed"
    for node in model.graph.node:
        node.input[:] = ["renamed" if name == old else name for name in node.input]


def _nan_logits(model: Any) -> None:
    from onnx import helper, numpy_helper

    for node in model.graph.node:
        node.output[:] = ["raw" if name == "logits" else name for name in node.output]
    model.graph.initializer.append(numpy_helper.from_array(np.array(np.nan, dtype=np.float32), "nan"))
    model.graph.node.append(helper.make_node("Mul", ["raw", "nan"], ["logits"]))


def _twice_the_actions(model: Any) -> None:
    from onnx import helper

    for node in model.graph.node:
        node.output[:] = ["raw" if name == "logits" else name for name in node.output]
    model.graph.node.append(helper.make_node("Concat", ["raw", "raw"], ["logits"], axis=1))


def _forged_window(model: Any) -> None:
    """Metadata for a 7x7 window, its fingerprint recomputed, over a graph built for 11x11."""
    import json

    from townlet.world.spec import ObservationSpec

    (prop,) = [p for p in model.metadata_props if p.key == "townlet_policy"]
    meta = json.loads(prop.value)
    meta["spec"]["window"], meta["map_shape"] = 7, [meta["map_shape"][0], 7, 7]
    meta["spec_fingerprint"] = ObservationSpec.from_dict(meta["spec"]).fingerprint()
    prop.value = json.dumps(meta)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_renamed_input, "takes action_mask, features, renamed"),
        (_forged_window, "input maps has sizes"),
        (_nan_logits, "gave NaN/Inf logits"),
        (_twice_the_actions, "gave logits"),
    ],
)
def test_eval_refuses_an_edited_onnx_policy(edit, message, onnx_file, tmp_path, capsys) -> None:
    """Hostile files (docs/reliability.md, Every command): one line naming the file, exit 2."""
    import onnx

    from townlet.cli.evaluate import main as eval_main

    model = onnx.load(str(onnx_file))
    edit(model)
    bad = tmp_path / "bad.onnx"
    onnx.save(model, str(bad))
    assert eval_main([str(bad), "episodes=1"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"townlet-eval: error: {bad} {message}")


@pytest.mark.parametrize("kind", ["run", "onnx"])
def test_eval_refuses_a_bad_world_override(kind, bc_run, onnx_file, tmp_path, capsys) -> None:
    """Evaluation picks its own town count; a bad ``world.*`` override is still one line, exit 2."""
    from townlet.cli.evaluate import main as eval_main

    source = bc_run if kind == "run" else onnx_file
    out = tmp_path / "eval.json"
    assert eval_main([str(source), "world.num_envs=-3", "episodes=1", "--json", str(out)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].endswith("must both be >= 1")
    assert lines[0].startswith("townlet-eval: error: world.num_envs=-3 and world.num_agents=")
    assert not out.exists()


def test_export_to_stdout_and_through_a_symlink(bc_run, tmp_path, capfd) -> None:
    """``out=-`` puts only the model on stdout; a symlinked ``out`` keeps its link (docs/reliability.md)."""
    assert export_main([str(bc_run), "out=-"]) == 0
    captured = capfd.readouterr()
    assert captured.out.encode("utf-8", "surrogateescape")[:1] != b"" and "townlet-export" not in captured.out
    target = tmp_path / "real.onnx"
    target.write_bytes(b"old")
    link = tmp_path / "policy.onnx"
    link.symlink_to(target.name)
    assert export_main([str(bc_run), f"out={link}"]) == 0
    assert link.is_symlink() and target.stat().st_size > 1000


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("evaluate", ["{run}", "--json", "{target}"]),
        ("export", ["{run}", "out={target}"]),
        ("render", ["{run}", "mode=ansi", "ticks=2", "out={target}"]),
    ],
)
@pytest.mark.parametrize("via_link", [False, True], ids=["direct", "link"])
def test_an_output_never_replaces_a_file_of_a_run(
    bc_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    module: str,
    args: list[str],
    via_link: bool,
) -> None:
    """``--json RUN/result.json`` (or a link to it) would overwrite the run's record: refused, one line."""
    run = tmp_path / "run"
    shutil.copytree(bc_run, run)
    record = (run / "result.json").read_bytes()
    target = run / "result.json"
    if via_link:
        target = tmp_path / "out.json"
        target.symlink_to(run / "result.json")
    main = importlib.import_module(f"townlet.cli.{module}").main
    try:
        code = main([a.format(run=run, target=target) for a in args])
    except SystemExit as exc:
        code = exc.code
    (line,) = capsys.readouterr().err.splitlines()
    assert code == 2 and f"{target} is a file of the run in {run}" in line
    assert (run / "result.json").read_bytes() == record


def test_standard_output_is_never_a_file_of_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``-`` is stdout to every writer: allowed even inside a run dir that holds a file named ``-``."""
    from townlet.cli._common import refuse_run_file

    (tmp_path / "run.json").write_text("{}")
    (tmp_path / "-").write_text("kept")
    monkeypatch.chdir(tmp_path)
    refuse_run_file("-", "out=")
    with pytest.raises(ValueError, match="is a file of the run"):
        refuse_run_file("./-", "out=")
