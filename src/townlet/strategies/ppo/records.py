"""What a PPO run reports: the per-iteration metrics record, its event counters and episode returns,
the batch diagnostics, and the result DTO built from the last record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from townlet.config.schema.strategy_ppo import DataMode
from townlet.dto import PPOTrainingResultDTO
from townlet.dto.metrics import (
    PPO_COUNT_KEYS,
    PPO_HEALTH_KEYS,
    PPO_KL_KEYS,
    PPO_LOSS_KEYS,
    PPO_RESULT_KEYS,
    PPO_ROLLOUT_RESULT_KEYS,
    PPO_SPREAD_KEYS,
    STRATEGY_KEY,
)
from townlet.nets.checkpoints import LAST
from townlet.world.spec import EVENT_COUNTERS

if TYPE_CHECKING:
    from townlet.algorithms.gae import PreparedBatch
    from townlet.replay import ReplayData
    from townlet.rollout.collect import EpisodeTracker
    from townlet.strategies.ppo.state import RunState


@dataclass
class Seen:
    """What preparing an iteration's data saw: batch diagnostics, town metrics, event totals."""

    batch: dict[str, float] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)  # empty without a rollout
    events: dict[str, float] = field(default_factory=dict)
    reward_scale: float | None = None
    collect_sec: float = 0.0
    rows_collected: int = 0


TELEMETRY_VERSION = 1.2
# The DTO carries the per-event counts; chat quality is reported as a mean (event_counters).
COUNTERS = tuple(name for name in EVENT_COUNTERS if name != "chat_quality_sum")


def event_counters(events: dict[str, float]) -> dict[str, float]:
    """The eight DTO counters from a dataset's/rollout's EVENT_COUNTERS totals (present for replay too)."""
    out = {name: float(events.get(name, 0.0)) for name in COUNTERS}
    succ = float(events.get("chat_success_events", 0.0))
    quality = float(events.get("chat_quality_sum", 0.0)) / succ if succ else 0.0
    out["chat_quality_mean"] = min(max(quality, 0.0), 1.0)
    return out


def env_metrics(data: ReplayData, tracker: EpisodeTracker, world_cfg: Any) -> dict[str, Any]:
    """What one rollout did in the town: completed episodes, reward per step, needs, faints, conflicts."""
    rewards = data.rewards.astype(np.float64)
    for t in range(rewards.shape[0]):
        tracker.update(rewards[t], data.terminated[t], data.truncated[t])
    done, lengths = tracker.take_completed()
    names = data.spec.feature_names
    needs = [names.index(n) for n in names if n.startswith("need_")]
    t_len, n = rewards.shape
    ep_len = max(int(getattr(world_cfg, "episode_length", None) or t_len), 1)
    episodes_equiv = n * t_len / ep_len
    faints = float(data.terminated.sum())
    conflicts = float(data.events.get("queue_conflict_events", 0.0))
    return {
        "episodes_completed": int(done.size),
        "episode_return_mean": float(np.mean(done)) if done.size else None,
        "episode_return_std": float(np.std(done)) if done.size else None,
        "episode_length_mean": float(np.mean(lengths)) if lengths.size else None,
        # mean need level (1 = all satisfied) over the rollout's agent-ticks: what faints come from
        "needs_mean": float(data.features[..., needs].mean()) if needs else None,
        "reward_per_step_mean": float(rewards.mean()),
        "return_estimate": float(rewards.mean()) * ep_len,
        "faint_rate": faints / episodes_equiv if episodes_equiv else 0.0,
        "faints": faints,
        "conflicts_per_100_agent_ticks": 100.0 * conflicts / max(t_len * n, 1),
    }


def batch_diagnostics(prepared: list[PreparedBatch]) -> dict[str, float]:
    """Critic fit, reward/advantage correlation and raw advantage moments over all rows, in one sync."""
    import torch

    from townlet.algorithms.gae import explained_variance, pearson_corr

    advantages = torch.cat([p.batch.advantages for p in prepared])
    rewards = torch.cat([p.rewards for p in prepared])
    values = torch.cat([p.batch.old_values for p in prepared])
    returns = torch.cat([p.batch.returns for p in prepared])
    raw_adv = [(p.raw_adv_mean, p.raw_adv_std, len(p.batch)) for p in prepared]
    ev, corr, adv_mean, adv_std = torch.stack(
        [explained_variance(values, returns), pearson_corr(rewards, advantages), *_pooled_moments(raw_adv)]
    ).tolist()
    return {"explained_variance": ev, "reward_advantage_corr": corr, "adv_mean": adv_mean, "adv_std": adv_std}


def _pooled_moments(parts: list[tuple[Any, Any, int]]) -> list[Any]:
    """Mean and (biased) std of the pre-normalisation advantages pooled over the sources."""
    import torch

    n = sum(p[2] for p in parts)
    mean = sum(p[0] * p[2] for p in parts) / n
    second = sum((p[1].pow(2) + p[0].pow(2)) * p[2] for p in parts) / n
    return [mean, torch.sqrt(torch.clamp(second - mean.pow(2), min=0.0))]


def _take(source: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """``keys`` of ``source`` under the same names; a missing one is a KeyError naming it."""
    return {k: source[k] for k in keys}


def iteration_record(
    strategy: Any,
    state: RunState,
    iteration: int,
    schedule: dict[str, Any],
    summary: dict[str, float],
    seen: Seen,
    timing: dict[str, float],
) -> dict[str, Any]:
    """One metrics line (telemetry 1.2 keys): the update summary (``PPO_SUMMARY_KEYS``, named as on the
    line), the run counters, the batch diagnostics, the rollout's town metrics, the timings and the
    optional schedules (``reward_scale``, a scheduled ``entropy_coef``), present only when they are on."""
    s, it, diagnostics = strategy, iteration, seen.batch
    collected = seen.rows_collected
    record: dict[str, Any] = {
        STRATEGY_KEY: "ppo",  # the CSV's strategy column, as BC's lines carry it
        "epoch": it,
        "iteration": it,
        **_take(summary, (*PPO_COUNT_KEYS, *PPO_LOSS_KEYS)),
        **_take(diagnostics, ("adv_mean", "adv_std")),
        **_take(summary, PPO_KL_KEYS),
        "bc_coef": s.bc_coef,
        "telemetry_version": TELEMETRY_VERSION,
        "lr": schedule["lr"],
        "steps": state.steps,
        **_take(summary, PPO_HEALTH_KEYS),
        "data_mode": str(s.data_mode),  # a plain string: records travel into checkpoints
        "cycle_id": it - 1,
        **_take(summary, PPO_SPREAD_KEYS),
        **_take(diagnostics, ("reward_advantage_corr",)),
        "rollout_ticks": s.n_steps if s.data_mode != DataMode.replay else 0,
        "log_stream_offset": state.log_stream_offset,
        **event_counters(seen.events),
        **_take(diagnostics, ("explained_variance",)),
        "epochs_run": summary["epochs_run"],
        "target_kl_stopped": bool(summary["early_stopped"]),  # the line's flag is a bool
        "env_steps": state.env_steps,
        "social_reward_stage": schedule["stage"],
        **seen.env,
        "epoch_duration_sec": timing["duration"],
        "collect_sec": seen.collect_sec,
        "update_sec": timing["update"],
        "sps": collected / timing["duration"] if collected else None,
        "update_samples_per_sec": state.steps_last / timing["update"] if timing["update"] > 0 else None,
    }
    entropy = schedule["entropy_coef"] if s.entropy_schedule != "constant" else None
    optional = {"reward_scale": seen.reward_scale, "entropy_coef": entropy}
    return {**record, **{k: v for k, v in optional.items() if v is not None}}


def result_dto(
    ctx: Any, state: RunState, record: dict[str, Any], evaluation: Any, duration: float, device: str
) -> PPOTrainingResultDTO:
    """The run's result: the last iteration's record (``PPO_*RESULT_KEYS``), run totals, the best iteration
    and the evaluation."""
    values = _take(record, (*PPO_RESULT_KEYS, *COUNTERS, "chat_quality_mean"))
    if record["data_mode"] != DataMode.replay:
        values.update(_take(record, PPO_ROLLOUT_RESULT_KEYS))
    return PPOTrainingResultDTO(
        **values,
        duration_sec=duration,
        seed=ctx.seed,
        device=device,
        checkpoint=str(ctx.run_dir.checkpoints / LAST),
        init_from=str(ctx.init_from) if ctx.init_from else None,
        evaluation=evaluation,
        iterations=state.iteration,
        env_steps=state.env_steps,
        episodes=state.episodes,
        target_kl_stops=state.target_kl_stops,
        samples_per_sec=record["sps"] or record["update_samples_per_sec"],
        best_iteration=state.best.iteration,
        best={k: float(v) for k, v in state.best.summary.items() if is_number(v)},
    )


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))
