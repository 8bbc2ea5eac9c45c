"""The policy networks a model config builds; importing this module never imports torch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from townlet.torch_guard import require_torch
from townlet.world.spec import ObservationSpec

# the torch classes of `townlet.nets.networks`, imported on first access (after `require_torch`)
_LAZY_CLASSES = ("ConflictAwarePolicyNetwork", "MLPPolicyNetwork", "PolicyNetwork")
MODEL_KINDS: tuple[str, ...] = ("conv", "mlp")


class ModelConfigError(ValueError):
    """A model config that cannot build a network (unknown kind, non-positive size)."""


def _cfg_get(cfg: Any, key: str, default: Any) -> Any:
    """Read a field from a dataclass, DictConfig or plain dict model config."""
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def model_config_dict(model_cfg: Any) -> dict[str, Any]:
    """Normalise a model config (dataclass, DictConfig or dict) to plain primitives.

    Checkpoints store this dict, so a saved network can be rebuilt without Hydra.
    """
    kind = str(_cfg_get(model_cfg, "kind", _cfg_get(model_cfg, "name", "conv")))
    if kind not in MODEL_KINDS:
        raise ModelConfigError(
            f"unknown model kind {kind!r}; choose one of {list(MODEL_KINDS)} (model=conv or model=mlp)"
        )
    hidden_dim = int(_cfg_get(model_cfg, "hidden_dim", 256))
    channels = [int(c) for c in (_cfg_get(model_cfg, "conv_channels", None) or [16, 32])]
    strides = [int(s) for s in (_cfg_get(model_cfg, "conv_strides", None) or [1] * len(channels))]
    if hidden_dim <= 0 or any(c <= 0 for c in channels) or any(s <= 0 for s in strides):
        raise ModelConfigError(
            f"model sizes must be positive (hidden_dim={hidden_dim}, conv_channels={channels}, "
            f"conv_strides={strides})"
        )
    if len(strides) != len(channels):
        raise ModelConfigError(
            f"model.conv_strides has {len(strides)} entries but model.conv_channels has {len(channels)}; "
            "give one stride per conv layer"
        )
    if kind == "mlp":  # conv sizes do not apply; leaving them out keeps init_from comparisons honest
        return {"kind": kind, "hidden_dim": hidden_dim}
    return {"kind": kind, "hidden_dim": hidden_dim, "conv_channels": channels, "conv_strides": strides}


def build_network(model_cfg: Any, spec: ObservationSpec) -> Any:
    """Build the torch policy/value network that ``model_cfg`` describes for observations of ``spec``.

    Returns an ``nn.Module`` whose ``forward(maps, features, action_mask=None)`` gives
    ``(logits [B, A] with disallowed actions masked, value [B])``.
    """
    cfg = model_config_dict(model_cfg)
    require_torch(f"model={cfg['kind']}")
    from townlet.nets import networks as nets

    if cfg["kind"] == "mlp":
        return nets.MLPPolicyNetwork(
            spec.map_shape, spec.feature_dim, spec.num_actions, hidden_dim=cfg["hidden_dim"]
        )
    return nets.ConflictAwarePolicyNetwork(
        spec.map_shape,
        spec.feature_dim,
        spec.num_actions,
        hidden_dim=cfg["hidden_dim"],
        conv_channels=tuple(cfg["conv_channels"]),
        conv_strides=tuple(cfg["conv_strides"]),
    )


def __getattr__(name: str) -> Any:
    """Expose the torch network classes as attributes, importing torch only on first access."""
    if name in _LAZY_CLASSES:
        require_torch(name)
        from townlet.nets import networks as nets

        return getattr(nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
