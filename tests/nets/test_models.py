"""Policy networks and the torch behaviour policy: shapes, masking, sizes from config, batching."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from townlet.nets.models import build_network, model_config_dict
from townlet.world.spec import NUM_ACTIONS, Action, Observation, ObservationSpec

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


SPEC = ObservationSpec(map_channels=("walls", "objects", "agents"), window=7, feature_names=tuple("abcde"))


def _obs(n: int, seed: int = 0) -> Observation:
    rng = np.random.default_rng(seed)
    mask = rng.random((n, NUM_ACTIONS)) < 0.6
    mask[:, Action.NOOP] = True
    return Observation(
        maps=rng.integers(0, 3, (n, *SPEC.map_shape), dtype=np.uint8),
        features=rng.standard_normal((n, SPEC.feature_dim)).astype(np.float32),
        action_mask=mask,
    )


def test_import_is_torch_free() -> None:
    code = "import sys, townlet.nets.models as m; m.model_config_dict({}); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("kind", ["conv", "mlp"])
def test_forward_shapes_and_mask(kind: str) -> None:
    net = build_network({"kind": kind, "hidden_dim": 32, "conv_channels": [4, 8]}, SPEC)
    obs = _obs(9)
    logits, value = net(
        torch.from_numpy(obs.maps), torch.from_numpy(obs.features), torch.from_numpy(obs.action_mask)
    )
    assert logits.shape == (9, NUM_ACTIONS) and value.shape == (9,)
    probs = torch.softmax(logits, -1).detach().numpy()
    assert np.all(probs[~obs.action_mask] == 0.0)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def test_conv_is_really_convolutional_and_sized_from_config() -> None:
    small = build_network({"kind": "conv", "hidden_dim": 16, "conv_channels": [4]}, SPEC)
    big = build_network(
        {"kind": "conv", "hidden_dim": 64, "conv_channels": [8, 16], "conv_strides": [1, 2]}, SPEC
    )
    convs = [m for m in big.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16] and convs[1].stride == (2, 2)
    assert big.trunk[0].out_features == 64 and small.trunk[0].out_features == 16
    assert sum(p.numel() for p in big.parameters()) > sum(p.numel() for p in small.parameters())
    mlp = build_network({"kind": "mlp", "hidden_dim": 16}, SPEC)
    assert not any(isinstance(m, torch.nn.Conv2d) for m in mlp.modules())


def test_reference_conv_net_parameter_count() -> None:
    """The default conv net equals the performance note's reference net (1,141,145 params at 6x11x11/40/8)."""
    spec = ObservationSpec(
        map_channels=tuple("abcdef"), window=11, feature_names=tuple(f"f{i}" for i in range(40))
    )
    net = build_network({"kind": "conv"}, spec)
    assert sum(p.numel() for p in net.parameters()) == 1_141_145


def test_uint8_and_float_maps_agree() -> None:
    net = build_network({"kind": "conv", "hidden_dim": 16, "conv_channels": [4]}, SPEC)
    obs = _obs(4)
    feats = torch.from_numpy(obs.features)
    a, _ = net(torch.from_numpy(obs.maps), feats)
    b, _ = net(torch.from_numpy(obs.maps).float(), feats)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "cfg",
    [
        {"kind": "transformer"},
        {"kind": "conv", "hidden_dim": 0},
        {"kind": "conv", "conv_channels": [4], "conv_strides": [1, 2]},
    ],
)
def test_bad_model_config_is_refused(cfg: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"^model\."):
        model_config_dict(cfg)


def test_input_normalisation_is_saved_in_state_dict() -> None:
    net = build_network({"kind": "mlp", "hidden_dim": 8}, SPEC)
    net.set_input_normalisation(torch.tensor([1.0, 2.0, 4.0]))
    assert torch.allclose(net.state_dict()["map_scale"].flatten(), torch.tensor([1.0, 0.5, 0.25]))


def test_torch_policy_one_forward_per_tick_greedy_and_sampled() -> None:
    from townlet.behaviour.torch_policy import TorchPolicy

    net = build_network({"kind": "conv", "hidden_dim": 16, "conv_channels": [4]}, SPEC)
    calls = []
    net.register_forward_hook(lambda *_: calls.append(1))
    obs = _obs(64, seed=3)
    greedy = TorchPolicy(net, SPEC, greedy=True).act(obs)
    assert len(calls) == 1, "all agents must be batched into one forward"
    assert greedy.actions.dtype == np.int64 and greedy.actions.shape == (64,)
    assert greedy.log_probs.dtype == np.float32 and greedy.values.shape == (64,)
    assert obs.action_mask[np.arange(64), greedy.actions].all()
    logits, _ = net(
        torch.from_numpy(obs.maps), torch.from_numpy(obs.features), torch.from_numpy(obs.action_mask)
    )
    np.testing.assert_array_equal(greedy.actions, logits.argmax(-1).numpy())

    sampled_a = TorchPolicy(net, SPEC, seed=7).act(obs)
    sampled_b = TorchPolicy(net, SPEC, seed=7).act(obs)
    np.testing.assert_array_equal(sampled_a.actions, sampled_b.actions)  # seeded
    assert obs.action_mask[np.arange(64), sampled_a.actions].all()  # never a masked action
    logp = torch.log_softmax(logits, -1).gather(1, torch.from_numpy(sampled_a.actions)[:, None]).squeeze(1)
    np.testing.assert_allclose(sampled_a.log_probs, logp.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_torch_policy_refuses_other_layout() -> None:
    from townlet.behaviour.torch_policy import SpecMismatchError, TorchPolicy

    net = build_network({"kind": "mlp", "hidden_dim": 8}, SPEC)
    obs = _obs(2)
    bad = Observation(obs.maps[:, :, :5, :5], obs.features, obs.action_mask)
    with pytest.raises(SpecMismatchError, match="world it was trained for"):
        TorchPolicy(net, SPEC).act(bad)
