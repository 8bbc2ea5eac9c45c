"""Schema of the ``model=`` group: which policy/value network to build and its sizes (checkpoints
store them too, through ``townlet.nets.models.model_config_dict``)."""

from __future__ import annotations

from dataclasses import dataclass, field

MODEL_KINDS = ("conv", "mlp")  # the networks townlet.nets.models builds


@dataclass
class ModelConfig:
    kind: str = "conv"  # conv: ConflictAwarePolicyNetwork | mlp: MLPPolicyNetwork (flattened map)
    hidden_dim: int = 256  # width of the map/feature encoders, the shared trunk and the heads' input
    conv_channels: list[int] = field(default_factory=lambda: [16, 32])  # one 3x3 conv per entry (conv only)
    conv_strides: list[int] = field(default_factory=lambda: [1, 1])  # one stride per conv layer

    def __post_init__(self) -> None:
        """Refuse a network that cannot be built, before the run dir exists (not at the first forward)."""
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model.kind must be one of {', '.join(MODEL_KINDS)}, got {self.kind!r}")
        if self.hidden_dim < 1:
            raise ValueError(f"model.hidden_dim must be >= 1, got {self.hidden_dim}")
        if len(self.conv_channels) != len(self.conv_strides):
            raise ValueError(
                f"model.conv_channels and model.conv_strides need one entry per conv layer, got "
                f"{len(self.conv_channels)} and {len(self.conv_strides)}"
            )
        if any(int(c) < 1 for c in self.conv_channels) or any(int(s) < 1 for s in self.conv_strides):
            raise ValueError("model.conv_channels and model.conv_strides must all be >= 1")
