"""Torch policy/value networks (imported only through `townlet.nets.models`): ``forward(maps, features,
action_mask=None) -> (logits [B, A], value [B])``. Input normalisation lives in buffers, so a checkpoint
carries the statistics it was trained with."""

from __future__ import annotations

import math

import torch
from torch import nn

MASKED_LOGIT = -1.0e9  # finite, so a (never expected) all-masked row still gives a finite softmax


class PolicyNetwork(nn.Module):
    """Common input normalisation, trunk and heads; subclasses provide the map encoder."""

    map_encoder: nn.Module
    map_scale: torch.Tensor  # buffers (saved in the state dict)
    feature_mean: torch.Tensor
    feature_inv_std: torch.Tensor

    def __init__(
        self, map_shape: tuple[int, int, int], feature_dim: int, num_actions: int, hidden_dim: int
    ) -> None:
        super().__init__()
        self.feature_dim = int(feature_dim)
        self.register_buffer("map_scale", torch.ones(map_shape[0], 1, 1))
        self.register_buffer("feature_mean", torch.zeros(feature_dim))
        self.register_buffer("feature_inv_std", torch.ones(feature_dim))
        self.feature_encoder = nn.Sequential(nn.Linear(max(feature_dim, 1), hidden_dim), nn.ReLU())
        self.trunk = nn.Sequential(nn.Linear(2 * hidden_dim, hidden_dim), nn.ReLU())
        self.policy_head = nn.Linear(hidden_dim, num_actions)
        self.value_head = nn.Linear(hidden_dim, 1)

    def _init_weights(self) -> None:
        """Orthogonal init (small policy head, unit value head): a near-uniform starting policy for PPO."""
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                nn.init.orthogonal_(module.weight, gain=math.sqrt(2.0))
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.orthogonal_(self.policy_head.weight, gain=0.01)
        nn.init.orthogonal_(self.value_head.weight, gain=1.0)

    @torch.no_grad()
    def set_input_normalisation(self, map_max: torch.Tensor) -> None:
        """Scale each map channel to [0, 1] by the data's maximum (the features are already in [-1, 1])."""
        self.map_scale.copy_((1.0 / map_max.to(self.map_scale).clamp_min(1.0)).reshape(-1, 1, 1))

    def forward(
        self, maps: torch.Tensor, features: torch.Tensor, action_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x_map = self.map_encoder(maps.to(self.map_scale.dtype) * self.map_scale)
        feats = (features - self.feature_mean) * self.feature_inv_std
        if self.feature_dim == 0:
            feats = feats.new_zeros(feats.shape[0], 1)
        hidden = self.trunk(torch.cat((x_map, self.feature_encoder(feats)), dim=1))
        logits = self.policy_head(hidden)
        if action_mask is not None:
            logits = logits.masked_fill(~action_mask, MASKED_LOGIT)
        return logits, self.value_head(hidden).squeeze(-1)


class ConflictAwarePolicyNetwork(PolicyNetwork):
    """Convolutional encoder over the egocentric map window + feature MLP, shared trunk, two heads."""

    def __init__(
        self,
        map_shape: tuple[int, int, int],
        feature_dim: int,
        num_actions: int,
        hidden_dim: int = 256,
        conv_channels: tuple[int, ...] = (16, 32),
        conv_strides: tuple[int, ...] = (1, 1),
    ) -> None:
        super().__init__(map_shape, feature_dim, num_actions, hidden_dim)
        layers: list[nn.Module] = []
        in_ch, size = map_shape[0], map_shape[1]
        for out_ch, stride in zip(conv_channels, conv_strides, strict=True):
            layers += [nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1), nn.ReLU()]
            in_ch, size = out_ch, (size - 1) // stride + 1
        layers += [nn.Flatten(), nn.Linear(in_ch * size * size, hidden_dim), nn.ReLU()]
        self.map_encoder = nn.Sequential(*layers)
        self._init_weights()


class MLPPolicyNetwork(PolicyNetwork):
    """The flattened map through one linear layer: cheaper per step than the conv net on CPU."""

    def __init__(
        self, map_shape: tuple[int, int, int], feature_dim: int, num_actions: int, hidden_dim: int = 256
    ) -> None:
        super().__init__(map_shape, feature_dim, num_actions, hidden_dim)
        flat = map_shape[0] * map_shape[1] * map_shape[2]
        self.map_encoder = nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden_dim), nn.ReLU())
        self._init_weights()


class ProgramNetwork(nn.Module):
    """A loaded ``torch.export`` program behind the network contract; it accepts ``train()``/``eval()``
    (which the frozen program refuses) as no-ops, so it goes wherever a policy network goes."""

    def __init__(self, program: nn.Module) -> None:
        super().__init__()
        self.program = program

    def train(self, mode: bool = True) -> ProgramNetwork:
        self.training = bool(mode)
        return self

    def forward(
        self, maps: torch.Tensor, features: torch.Tensor, action_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.program(maps, features, action_mask)
