"""Schema of the ``model=`` group: which policy/value network to build and its sizes.

Checkpoints store these fields (``townlet.nets.models.model_config_dict``), so a saved network can
be rebuilt without Hydra and ``init_from`` can refuse a checkpoint of another architecture.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelConfig:
    kind: str = "conv"  # conv: ConflictAwarePolicyNetwork | mlp: MLPPolicyNetwork (flattened map)
    hidden_dim: int = 256  # width of the map/feature encoders, the shared trunk and the heads' input
    conv_channels: list[int] = field(default_factory=lambda: [16, 32])  # one 3x3 conv per entry (conv only)
    conv_strides: list[int] = field(default_factory=lambda: [1, 1])  # one stride per conv layer
