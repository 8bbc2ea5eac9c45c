"""Dataset statistics, accumulated chunk by chunk (the writer never holds a dataset whole) and kept in the
manifest, for `summarise`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from townlet.replay.data import ReplayData
from townlet.world.spec import EVENT_COUNTERS, ObservationSpec

CONFLICT_FEATURES: tuple[str, ...] = ("rivalry_max", "rivalry_avoid_count")


class StatsAccumulator:
    """Running reward moments, action histograms and done counts over [t, N] chunks."""

    def __init__(self, spec: ObservationSpec) -> None:
        self.spec = spec
        self.count = self.agree = self.terminated = self.truncated = 0
        self.reward_sum = self.reward_sq = self.log_prob_sum = 0.0
        self.reward_min, self.reward_max = float("inf"), float("-inf")
        self.actions, self.teacher = np.zeros((2, spec.num_actions), np.int64)

    def update(self, chunk: Mapping[str, np.ndarray]) -> None:
        rewards = chunk["rewards"].astype(np.float64, copy=False)
        if rewards.size == 0:
            return
        self.count += rewards.size
        self.reward_sum += float(rewards.sum())
        self.reward_sq += float(np.square(rewards).sum())
        self.reward_min = min(self.reward_min, float(rewards.min()))
        self.reward_max = max(self.reward_max, float(rewards.max()))
        self.log_prob_sum += float(chunk["log_probs"].sum(dtype=np.float64))
        self.agree += int(np.count_nonzero(chunk["actions"] == chunk["teacher_actions"]))
        self.terminated += int(np.count_nonzero(chunk["terminated"]))
        self.truncated += int(np.count_nonzero(chunk["truncated"]))
        a = self.spec.num_actions
        self.actions += np.bincount(chunk["actions"].ravel(), minlength=a)[:a]
        self.teacher += np.bincount(chunk["teacher_actions"].ravel(), minlength=a)[:a]

    def result(self) -> dict[str, Any]:
        n = max(self.count, 1)
        mean = self.reward_sum / n
        var = max(self.reward_sq / n - mean * mean, 0.0)
        names = self.spec.action_names
        return {
            "transitions": self.count,
            "reward": {
                "mean": mean,
                "std": var**0.5,
                "min": self.reward_min if self.count else 0.0,
                "max": self.reward_max if self.count else 0.0,
            },
            "log_prob_mean": self.log_prob_sum / n,
            "teacher_agreement": self.agree / n,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "action_histogram": {names[i]: int(c) for i, c in enumerate(self.actions)},
            "teacher_action_histogram": {names[i]: int(c) for i, c in enumerate(self.teacher)},
        }


def dataset_summary(
    spec: ObservationSpec,
    ticks: int,
    agents: int,
    stats: Mapping[str, Any],
    events: Mapping[str, float],
    episodes: Mapping[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """What `summarise` reports, from accumulated ``stats`` (computed in memory or read from a manifest):
    every event counter's total and the derived rates the DTOs report."""
    agent_ticks = ticks * agents
    totals = {name: float(events.get(name, 0.0)) for name in EVENT_COUNTERS}
    totals.update({k: float(v) for k, v in events.items() if k not in totals})
    succ = totals.get("chat_success_events", 0.0)
    totals["chat_quality_mean"] = totals.get("chat_quality_sum", 0.0) / succ if succ else 0.0
    conflicts = totals.get("queue_conflict_events", 0.0)
    totals["conflicts_per_100_agent_ticks"] = 100.0 * conflicts / agent_ticks if agent_ticks else 0.0
    skip = ("transitions", "events", "episodes")
    return {
        "ticks": ticks,
        "agents": agents,
        "transitions": agent_ticks,
        **extra,
        "feature_dim": spec.feature_dim,
        "map_shape": list(spec.map_shape),
        **{k: v for k, v in stats.items() if k not in skip},
        "events": totals,
        "episodes": dict(episodes),
    }


def summarise(data: ReplayData) -> dict[str, Any]:
    """Dataset-wide statistics, with the rivalry features' mean/max (where the spec has them) and the
    capture's provenance."""
    acc = StatsAccumulator(data.spec)
    acc.update(data.columns())
    summary = dataset_summary(
        data.spec, data.num_ticks, data.num_agents, acc.result(), data.events, data.episode_stats
    )
    conflict: dict[str, float] = {}
    flat = data.flat("features")
    for name in CONFLICT_FEATURES:
        if name in data.spec.feature_names and flat.shape[0]:
            col = flat[:, data.spec.feature_names.index(name)]
            conflict.update({f"{name}_mean": float(col.mean()), f"{name}_max": float(col.max())})
    summary["conflict"] = conflict
    summary["meta"] = {k: data.meta[k] for k in ("behaviour", "epsilon", "seed", "ticks") if k in data.meta}
    return summary
