"""PPO's input scaling: the maps' scale of a fresh network, and the optional running normalisers
(reward scaling and feature standardisation).

Both are off unless ``strategy.reward_scaling`` / ``strategy.feature_normalisation`` ask for them.
Their statistics travel in the checkpoint (``extra["normalisers"]``) so a resumed run scales its
next rollout exactly as the uninterrupted run would. Feature statistics end up in the network's
input buffers, so the checkpoint evaluates and warm-starts with the scale it was trained on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from townlet.algorithms.returns import ReturnScaler, RunningMoments

if TYPE_CHECKING:
    from townlet.replay import ReplayData

#: Features whose spread stays below this are divided by it instead: a feature that barely moves
#: in early rollouts (wallet, shift flags) must not be blown up by a tiny standard deviation.
MIN_FEATURE_STD = 0.1


class Normalisers:
    """The run's reward scaler and feature moments (each None when its option is off)."""

    def __init__(self, *, rewards: bool, features: bool, gamma: float, num_agents: int, feature_dim: int):
        self.rewards = ReturnScaler(gamma, num_agents) if rewards else None
        self.features = RunningMoments((feature_dim,)) if features else None

    @classmethod
    def for_run(cls, strategy: Any, spec: Any, town: Any, saved: dict[str, Any]) -> Normalisers:
        """The normalisers ``strategy`` asks for, continuing from ``saved`` statistics on resume."""
        out = cls(
            rewards=strategy.reward_scaling,
            features=strategy.feature_normalisation,
            gamma=strategy.gamma,
            num_agents=town.n_agents if town is not None else 0,
            feature_dim=spec.feature_dim,
        )
        out.load_state(saved)
        return out

    def observe(self, net: Any, data: ReplayData) -> float | None:
        """Fold one rollout into the statistics; returns the reward factor for its GAE (or None)."""
        if self.features is not None:
            self.features.update(data.flat("features"))
            _set_feature_scale(net, self.features)
        if self.rewards is None:
            return None
        return self.rewards.update(data.rewards, data.terminated | data.truncated)

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.rewards is not None:
            out["rewards"] = self.rewards.state()
        if self.features is not None:
            out["features"] = self.features.state()
        return out

    def load_state(self, state: dict[str, Any]) -> None:
        if self.rewards is not None and "rewards" in state:
            self.rewards.load_state(state["rewards"])
        if self.features is not None and "features" in state:
            self.features = RunningMoments.from_state(state["features"])


def normalise_inputs(net: Any, data: ReplayData) -> None:
    """Input scaling for a network trained from scratch.

    Map channels are scaled by their observed maxima. Features are left as the world scales
    them (already within about [-1, 1]): standardising by the statistics of a short first
    rollout divides nearly-constant features (wallet, shift flags) by ~1e-3 and blew the
    critic up to 1e9 as soon as they moved. Warm starts keep the BC statistics instead.
    """
    import torch

    maps_max = torch.from_numpy(data.maps.max(axis=(0, 1, 3, 4)).astype(np.float32))
    net.set_input_normalisation(maps_max)


def _set_feature_scale(net: Any, moments: RunningMoments) -> None:
    import torch

    with torch.no_grad():
        std = np.maximum(np.sqrt(moments.var), MIN_FEATURE_STD)
        net.feature_mean.copy_(torch.as_tensor(moments.mean, dtype=net.feature_mean.dtype))
        net.feature_inv_std.copy_(torch.as_tensor(1.0 / std, dtype=net.feature_inv_std.dtype))
