"""Checkpoint files: round trip, weights_only safety, spec/architecture refusal, path resolution."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from townlet.nets.checkpoints import (
    CheckpointError,
    CheckpointModelMismatchError,
    CheckpointSpecMismatchError,
    load_checkpoint,
    resolve_checkpoint_path,
    save_checkpoint,
    warm_start,
)
from townlet.world.spec import ObservationSpec

if TYPE_CHECKING:
    import torch
else:
    torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


SPEC = ObservationSpec(map_channels=("walls", "objects"), window=5, feature_names=("a", "b", "c"))
CFG = {"kind": "conv", "hidden_dim": 16, "conv_channels": [4], "conv_strides": [1]}


def _trained(tmp: Path) -> tuple[torch.nn.Module, torch.optim.Optimizer, Path]:
    from townlet.nets.models import build_network

    torch.manual_seed(0)
    net = build_network(CFG, SPEC)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    logits, value = net(torch.ones(4, *SPEC.map_shape), torch.ones(4, 3))
    (logits.sum() + value.sum()).backward()
    opt.step()
    path = save_checkpoint(
        tmp / "checkpoints" / "last.pt",
        model=net,
        optimizer=opt,
        model_cfg=CFG,
        spec=SPEC,
        epoch=5,
        config_hash="cafe",
        extra={"world_name": "tiny", "best": {"epoch": np.int64(4), "val_accuracy": np.float32(0.5)}},
    )
    return net, opt, path


def test_round_trip_restores_everything(tmp_path: Path) -> None:
    net, opt, path = _trained(tmp_path)
    ckpt = load_checkpoint(tmp_path, SPEC)  # run dir → falls back to last.pt when there is no best.pt
    assert ckpt.path == path and ckpt.epoch == 5 and ckpt.config_hash == "cafe"
    assert ckpt.spec == SPEC and ckpt.model_cfg == CFG
    assert ckpt.extra == {"world_name": "tiny", "best": {"epoch": 4, "val_accuracy": 0.5}}
    rebuilt = ckpt.build_network()
    for k, v in net.state_dict().items():
        assert torch.equal(v, rebuilt.state_dict()[k])
    opt2 = torch.optim.Adam(rebuilt.parameters(), lr=1e-3)
    assert ckpt.optimizer_state is not None
    opt2.load_state_dict(dict(ckpt.optimizer_state))
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_rng_states_are_restored(tmp_path: Path) -> None:
    torch.manual_seed(123)
    np.random.seed(7)
    _, _, path = _trained(tmp_path)  # _trained reseeds torch with 0 before saving
    expected_torch, expected_np = torch.rand(3), np.random.rand(3)
    load_checkpoint(path).restore_rng()
    assert torch.equal(torch.rand(3), expected_torch)
    np.testing.assert_array_equal(np.random.rand(3), expected_np)


def test_other_observation_spec_is_refused_with_the_difference(tmp_path: Path) -> None:
    _trained(tmp_path)
    other = ObservationSpec(map_channels=("walls", "objects"), window=7, feature_names=("a", "b", "z"))
    with pytest.raises(CheckpointSpecMismatchError) as err:
        load_checkpoint(tmp_path, other)
    msg = str(err.value)
    assert "window 5 != expected 7" in msg and "'z'" in msg and "world=tiny" in msg


def test_warm_start_refuses_other_architecture(tmp_path: Path) -> None:
    from townlet.nets.models import build_network

    _trained(tmp_path)
    mlp_cfg = {"kind": "mlp", "hidden_dim": 16}
    with pytest.raises(CheckpointModelMismatchError, match="model=conv"):
        warm_start(build_network(mlp_cfg, SPEC), tmp_path, mlp_cfg, SPEC)


def test_best_is_preferred_and_missing_is_clear(tmp_path: Path) -> None:
    _, _, last = _trained(tmp_path)
    assert resolve_checkpoint_path(tmp_path) == last
    best = last.with_name("best.pt")
    best.write_bytes(last.read_bytes())
    assert resolve_checkpoint_path(tmp_path) == best
    assert resolve_checkpoint_path(tmp_path, which="last") == last
    assert resolve_checkpoint_path(tmp_path / "checkpoints") == best
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        resolve_checkpoint_path(empty)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")


def test_pickled_objects_are_not_loaded(tmp_path: Path) -> None:
    """weights_only=True: a file carrying arbitrary Python objects is rejected, not executed."""
    evil = tmp_path / "evil.pt"
    torch.save({"format": "townlet-checkpoint", "obj": Path("/etc")}, evil)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(evil)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError):
        load_checkpoint(junk)


def _first(state: dict[str, torch.Tensor]) -> str:
    return next(iter(state))


@pytest.mark.parametrize(
    ("edit", "phrase"),
    [
        (lambda p: p.pop("spec"), "missing 'spec'"),
        (lambda p: p["model_cfg"].update(kind="evil"), "model.kind must be one of"),
        (lambda p: p.update(model_state=[1, 2]), "model_state is not a table of weights"),
        (lambda p: p["model_cfg"].update(hidden_dim=10**9), "its network config wants"),  # no 10^9 alloc
        (lambda p: p["model_state"].update({_first(p["model_state"]): torch.zeros(3)}), "its network config"),
        (lambda p: p["model_state"][_first(p["model_state"])].fill_(float("nan")), "holds NaN or Inf"),
    ],
    ids=["no_spec", "unknown_kind", "state_not_a_table", "huge_sizes", "wrong_shape", "nan_weights"],
)
def test_a_damaged_or_forged_checkpoint_is_one_clear_error(tmp_path: Path, edit: Any, phrase: str) -> None:
    """Everything the file claims is checked before it sizes memory or reaches a rollout."""
    _, _, path = _trained(tmp_path)
    payload = torch.load(path, weights_only=True)
    edit(payload)
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=f"is a damaged townlet checkpoint.*{re.escape(phrase)}"):
        load_checkpoint(path)


def test_checkpoint_loads_in_a_fresh_process_without_our_classes(tmp_path: Path) -> None:
    _, _, path = _trained(tmp_path)
    code = f"import torch; d = torch.load({str(path)!r}, weights_only=True); assert d['epoch'] == 5"
    subprocess.run([sys.executable, "-c", code], check=True)
