"""townlet-export → ONNX / torch.export program: the exported file chooses what the checkpoint chooses."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from townlet.behaviour.onnx_policy import OnnxPolicy
from townlet.behaviour.torch_policy import TorchPolicy
from townlet.cli.export import main as export_main
from townlet.nets.checkpoints import load_checkpoint
from townlet.nets.export import METADATA_KEY, PROGRAM_EXTRA_FILE, parse_metadata
from townlet.rollout.collect import RolloutCaptureService
from townlet.world import make_town

pytestmark = pytest.mark.torch


def _export(run: Path, out: Path, *extra: str) -> Path:
    assert export_main([str(run), f"out={out}", *extra]) == 0
    return out


def _episodes(policy, world, seed: int = 5):
    """Greedy episodes of every town of ``world`` (two of 150 ticks): actions and returns."""
    return RolloutCaptureService().collect(make_town(world, seed), policy, int(world.episode_length))


@pytest.mark.parametrize("run_name", ["bc_run", "ppo_run"])
def test_onnx_greedy_episodes_equal_the_checkpoints(run_name, request, tmp_path, episode_world) -> None:
    run = request.getfixturevalue(run_name)
    path = _export(run, tmp_path / "policy.onnx")
    ckpt = load_checkpoint(run)
    torch_data = _episodes(TorchPolicy(ckpt.build_network(), ckpt.spec, greedy=True), episode_world)
    onnx_data = _episodes(OnnxPolicy(path, greedy=True), episode_world)
    assert np.array_equal(onnx_data.actions, torch_data.actions)  # every tick of every agent
    assert len(np.unique(torch_data.actions)) > 1  # the episodes exercise more than one action
    assert onnx_data.episode_stats["agent_episodes"] == 4
    assert onnx_data.episode_stats["return_mean"] == pytest.approx(torch_data.episode_stats["return_mean"])


def test_ppo_feature_normalisation_is_folded_into_the_graph(ppo_run, tmp_path, episode_world) -> None:
    path = _export(ppo_run, tmp_path / "policy.onnx")
    ckpt = load_checkpoint(ppo_run)
    assert "features" in ckpt.extra["normalisers"]  # the run did normalise its features
    obs = make_town(episode_world, 1).reset()
    onnx_logits, onnx_values = OnnxPolicy(path).forward(obs)
    raw_state = dict(ckpt.model_state)
    raw_state["feature_mean"] = torch.zeros_like(raw_state["feature_mean"])
    raw_state["feature_inv_std"] = torch.ones_like(raw_state["feature_inv_std"])
    raw_net = ckpt.build_network()
    raw_net.load_state_dict(raw_state)
    args = tuple(torch.from_numpy(x) for x in obs)
    with torch.inference_mode():
        logits, values = ckpt.build_network().eval()(*args)
        raw_logits, _ = raw_net.eval()(*args)
    np.testing.assert_allclose(onnx_logits, logits.numpy(), atol=1e-4)
    np.testing.assert_allclose(onnx_values, values.numpy(), atol=1e-4)
    without_statistics = np.abs(raw_logits.numpy() - onnx_logits)[obs.action_mask]
    assert without_statistics.max() > 1e-3  # so the statistics are really in the exported graph


def test_onnx_file_carries_its_spec_and_world(bc_run, tmp_path) -> None:
    path = _export(bc_run, tmp_path / "policy.onnx")
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    spec, meta = parse_metadata(props[METADATA_KEY], str(path))
    ckpt = load_checkpoint(bc_run)
    assert spec == ckpt.spec and meta["spec_fingerprint"] == ckpt.spec.fingerprint()
    assert meta["map_shape"] == list(ckpt.spec.map_shape)
    assert meta["spec"]["feature_names"][0] == "need_hunger" and meta["spec"]["action_names"][0] == "noop"
    assert meta["world_config"]["episode_length"] == 150  # the world it was trained in
    assert meta["source"]["strategy"] == "bc"


def test_pt2_program_loads_and_matches_the_checkpoint(ppo_run, tmp_path, episode_world) -> None:
    path = _export(ppo_run, tmp_path / "policy.pt2")  # the format follows the suffix
    extra = {PROGRAM_EXTRA_FILE: ""}
    program = torch.export.load(str(path), extra_files=extra)  # plain torch reads it back
    spec, meta = parse_metadata(extra[PROGRAM_EXTRA_FILE], str(path))
    ckpt = load_checkpoint(ppo_run)
    assert spec == ckpt.spec and meta["source"]["strategy"] == "ppo"
    assert meta["world_config"]["num_agents"] == 2  # PPO's world comes from the run's .hydra snapshot
    obs = make_town(episode_world, 3).reset()  # 4 agents: another batch size than the export's
    args = (torch.from_numpy(obs.maps), torch.from_numpy(obs.features), torch.from_numpy(obs.action_mask))
    with torch.inference_mode():
        got, want = program.module()(*args), ckpt.build_network().eval()(*args)
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g, w)


def test_onnx_comes_from_the_dynamo_exporter_and_runs_identically(bc_run, tmp_path, episode_world) -> None:
    path = _export(bc_run, tmp_path / "policy.onnx")
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["maps", "features", "action_mask"]
    assert {i.type.tensor_type.shape.dim[0].dim_param for i in model.graph.input} == {"batch"}
    assert model.opset_import[0].version >= 18  # the dynamo exporter's opsets
    ckpt = load_checkpoint(bc_run)
    obs = make_town(episode_world, 7).reset()
    logits, values = OnnxPolicy(path).forward(obs)
    args = (torch.from_numpy(obs.maps), torch.from_numpy(obs.features), torch.from_numpy(obs.action_mask))
    with torch.inference_mode():
        want_logits, want_values = ckpt.build_network().eval()(*args)
    np.testing.assert_allclose(logits, want_logits.numpy(), atol=1e-5)
    np.testing.assert_allclose(values, want_values.numpy(), atol=1e-5)
    assert np.array_equal(logits.argmax(axis=1), want_logits.numpy().argmax(axis=1))


def test_export_uses_no_deprecated_torch_path(bc_run, tmp_path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _export(bc_run, tmp_path / "policy.pt2")
        _export(bc_run, tmp_path / "policy.onnx")
    deprecations = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert not deprecations  # neither torch.jit nor the legacy ONNX exporter, and nothing hidden
    source = Path(__file__).resolve().parents[2] / "src" / "townlet" / "nets" / "export.py"
    assert "simplefilter" not in source.read_text()  # no warning is silenced on the way


def test_a_successful_export_prints_only_its_summary(bc_run, tmp_path, cli_env) -> None:
    # a fresh process: torch's log handler writes to the stderr it found at import
    main = "from townlet.cli.export import main; raise SystemExit(main())"
    out = tmp_path / "policy.onnx"
    proc = subprocess.run(
        [sys.executable, "-W", "ignore::FutureWarning", "-c", main, str(bc_run), f"out={out}"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # torch's FutureWarning from inside its own pytree is ignored here only (the command shows it)
    assert proc.returncode == 0 and out.is_file()
    wrote, hint = proc.stderr.splitlines()
    assert wrote.startswith(f"townlet-export: wrote {out} (onnx, ") and "townlet-eval" in hint


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}"], "does not exist"),
        (["{run}", "format=keras"], "format='keras' is unknown"),
        (["{run}", "format=pt2", "out={tmp}/p.onnx"], "ends in .onnx"),
        (["{run}", "format=torchscript"], "use format=pt2"),
        (["{run}", "out={tmp}/no/such/dir/p.onnx"], "does not exist"),
        (["{run}", "out={tmp}"], "is a directory"),
        (["{run}", "colour=blue"], "Key 'colour' not in"),
        (["{run}", "which=middle"], "use which=best or which=last"),
    ],
)
def test_bad_export_requests_are_one_line(args, message, bc_run, tmp_path, capsys) -> None:
    filled = [a.format(run=bc_run, tmp=tmp_path, missing=tmp_path / "nope") for a in args]
    assert export_main(filled) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob("**/*.pt*"))


def test_eval_refuses_a_broken_onnx_file(tmp_path, capsys) -> None:
    from townlet.cli.evaluate import main as eval_main

    bad = tmp_path / "policy.onnx"
    bad.write_bytes(b"not a model")
    assert eval_main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert "cannot load ONNX policy" in err and err.count("\n") == 1
    meta_less = tmp_path / "plain.onnx"
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "plain", [x], [y])
    onnx.save(onnx.helper.make_model(graph), str(meta_less))  # a valid model, but not a townlet policy
    assert eval_main([str(meta_less)]) == 2
    assert "carries no 'townlet_policy' metadata" in capsys.readouterr().err


@pytest.mark.parametrize("junk", [b"not a program", b"PK\x03\x04 a zip header, then junk"])
def test_eval_refuses_a_broken_pt2_file(junk, tmp_path, capfd) -> None:
    """Torch logs a traceback before it raises: it is folded into the one line (capfd sees its handler)."""
    from townlet.cli.evaluate import main as eval_main

    bad = tmp_path / "policy.pt2"
    bad.write_bytes(junk)
    assert eval_main([str(bad)]) == 2
    err = capfd.readouterr().err
    assert "cannot load torch.export program" in err and err.count("\n") == 1, err
    assert err.rstrip().endswith("export it again with townlet-export")
