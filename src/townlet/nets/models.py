"""The policy networks a model config builds; importing this module never imports torch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from townlet.config.schema.model import ModelConfig
from townlet.torch_guard import require_torch
from townlet.world.spec import ObservationSpec


def model_config_dict(model_cfg: Any) -> dict[str, Any]:
    """A model config (dataclass, DictConfig or dict) as the plain, checked dict a checkpoint stores, so a
    saved network is rebuilt without Hydra; ``ModelConfig`` refuses what cannot build a network."""

    def get(key: str, default: Any) -> Any:
        return (
            model_cfg.get(key, default)
            if isinstance(model_cfg, Mapping)
            else getattr(model_cfg, key, default)
        )

    channels = [int(c) for c in (get("conv_channels", None) or [16, 32])]
    cfg = ModelConfig(
        kind=str(get("kind", "conv")),
        hidden_dim=int(get("hidden_dim", 256)),
        conv_channels=channels,
        conv_strides=[int(s) for s in (get("conv_strides", None) or [1] * len(channels))],
    )
    out: dict[str, Any] = {"kind": cfg.kind, "hidden_dim": cfg.hidden_dim}
    if cfg.kind == "mlp":  # conv sizes do not apply; leaving them out keeps init_from comparisons honest
        return out
    return {**out, "conv_channels": cfg.conv_channels, "conv_strides": cfg.conv_strides}


def build_network(model_cfg: Any, spec: ObservationSpec) -> Any:
    """The torch policy/value ``nn.Module`` that ``model_cfg`` describes for observations of ``spec``."""
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
