"""What survives a resume: counters, best iteration and running normalisers travel in the checkpoint's
``extra``, so a resumed run continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from townlet.algorithms.returns import ReturnScaler, RunningMoments
from townlet.dto.metrics import EVAL_RETURN_KEY

if TYPE_CHECKING:
    from townlet.replay import ReplayData


@dataclass
class Best:
    """The best iteration so far (:meth:`RunState.offer_best` says by what)."""

    iteration: int = 0
    score: float = -math.inf
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunState:
    """Counters of one run, stored in ``checkpoints/last.pt`` extra."""

    iteration: int = 0
    steps: float = 0.0  # transitions trained on (rows x epochs run), cumulative
    env_steps: float = 0.0  # agent-steps collected in rollouts
    log_stream_offset: int = 0
    episodes: int = 0
    target_kl_stops: int = 0
    best: Best = field(default_factory=Best)
    normalisers: dict[str, Any] = field(default_factory=dict)  # running reward/feature statistics
    last: dict[str, Any] = field(default_factory=dict)  # the latest iteration's metrics line
    steps_last: float = 0.0  # transitions trained on in the latest iteration (not persisted)
    rollout: dict[str, Any] = field(default_factory=dict)  # town, episode returns (read, not written)

    def to_extra(self) -> dict[str, Any]:
        extra = asdict(self)
        del extra["steps_last"], extra["rollout"]
        return extra

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> RunState:
        saved = {f.name for f in fields(cls)} - {"best", "steps_last"}
        state = cls(**{k: v for k, v in extra.items() if k in saved and v is not None})
        state.best = Best(**(extra.get("best") or {}))
        return state

    def advance(
        self, iteration: int, summary: dict[str, float], seen: Any, normalisers: dict[str, Any]
    ) -> None:
        """Count one finished iteration: its update ``summary`` and what its sources ``seen``."""
        self.iteration = iteration
        self.episodes += seen.env.get("episodes_completed", 0)
        self.env_steps += seen.rows_collected
        self.steps_last = summary["transitions"] * summary["epochs_run"]
        self.steps += self.steps_last
        self.log_stream_offset += 1
        self.target_kl_stops += int(summary["early_stopped"])
        self.normalisers = normalisers

    def offer_best(self, iteration: int, record: dict[str, Any], env: dict[str, Any]) -> bool:
        """Keep ``record`` if best so far (True if so): evaluated beats unevaluated and competes on its
        mean return; otherwise the collected reward, or for replay the negated total loss."""
        evaluated = record.get(EVAL_RETURN_KEY)
        if evaluated is not None:
            score = float(evaluated)
            better = EVAL_RETURN_KEY not in self.best.summary or score > self.best.score
        elif EVAL_RETURN_KEY in self.best.summary:
            return False
        else:
            found = env.get("reward_per_step_mean") if env else None
            score = float(found) if found is not None else -float(record["loss_total"])
            better = score > self.best.score
        if better:
            self.best = Best(iteration, score, dict(record))
            return True
        return False


#: Features whose spread stays below this are divided by it instead: a feature that barely moves
#: in early rollouts (wallet, shift flags) must not be blown up by a tiny standard deviation.
MIN_FEATURE_STD = 0.1


class Normalisers:
    """The run's reward scaler and feature moments (each None when its option is off), continuing
    from the ``saved`` statistics on resume."""

    def __init__(self, strategy: Any, spec: Any, town: Any, saved: dict[str, Any]) -> None:
        agents = town.n_agents if town is not None else 0
        self.rewards = ReturnScaler(strategy.gamma, agents) if strategy.reward_scaling else None
        self.features = RunningMoments((spec.feature_dim,)) if strategy.feature_normalisation else None
        if self.rewards is not None and "rewards" in saved:
            self.rewards.load_state(saved["rewards"])
        if self.features is not None and "features" in saved:
            self.features = RunningMoments.from_state(saved["features"])

    def observe(self, net: Any, data: ReplayData) -> float | None:
        """Fold one rollout into the statistics; returns the reward factor for its GAE (or None)."""
        if self.features is not None:
            import torch

            self.features.update(data.flat("features"))
            std = np.maximum(np.sqrt(self.features.var), MIN_FEATURE_STD)
            mean, inv_std = net.feature_mean, net.feature_inv_std
            with torch.no_grad():
                mean.copy_(torch.as_tensor(self.features.mean, dtype=mean.dtype))
                inv_std.copy_(torch.as_tensor(1.0 / std, dtype=inv_std.dtype))
        if self.rewards is None:
            return None
        return self.rewards.update(data.rewards, data.terminated | data.truncated)

    def state(self) -> dict[str, Any]:
        parts = {"rewards": self.rewards, "features": self.features}
        return {name: part.state() for name, part in parts.items() if part is not None}
