"""What survives a resume: the run's counters and best iteration, and the checkpoints that carry them.

The counters travel in the checkpoint's ``extra`` so that a resumed run continues its step totals,
its metrics stream offset and its best-so-far instead of starting them again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging

    from townlet.strategies.context import TrainingContext


@dataclass
class Best:
    """The best iteration so far, by ``reward_per_step_mean`` (rollout) or lowest ``loss_total`` (replay)."""

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
        return {
            "iteration": self.iteration,
            "steps": self.steps,
            "env_steps": self.env_steps,
            "log_stream_offset": self.log_stream_offset,
            "episodes": self.episodes,
            "target_kl_stops": self.target_kl_stops,
            "best": {
                "iteration": self.best.iteration,
                "score": self.best.score,
                "summary": self.best.summary,
            },
            "normalisers": self.normalisers,
            "last": self.last,
        }

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> RunState:
        best = extra.get("best", {}) or {}
        return cls(
            iteration=int(extra.get("iteration", 0)),
            steps=float(extra.get("steps", 0.0)),
            env_steps=float(extra.get("env_steps", 0.0)),
            log_stream_offset=int(extra.get("log_stream_offset", 0)),
            episodes=int(extra.get("episodes", 0)),
            target_kl_stops=int(extra.get("target_kl_stops", 0)),
            best=Best(
                int(best.get("iteration", 0)),
                float(best.get("score", -math.inf)),
                dict(best.get("summary", {})),
            ),
            normalisers=dict(extra.get("normalisers", {}) or {}),
            last=dict(extra.get("last", {}) or {}),
            rollout=dict(extra.get("rollout", {}) or {}),
        )

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
        """Keep ``record`` as the best if it beats the best so far; True if it did.

        Rollout iterations are scored by the reward they collected; replay iterations, which collect
        nothing, by their negated total loss.
        """
        score = env.get("reward_per_step_mean") if env else None
        score = float(score) if score is not None else -float(record["loss_total"])
        if score > self.best.score:
            self.best = Best(iteration, score, dict(record))
            return True
        return False


def save_checkpoints(
    ctx: Any,
    net: Any,
    opt: Any,
    spec: Any,
    state: RunState,
    iteration: int,
    policy: Any,
    *,
    every: int,
    final: bool,
    rollout: tuple[Any, Any] = (None, None),
) -> None:
    """Write ``last.pt`` every ``every`` iterations and at the end, ``best.pt`` when this one is best.

    ``extra`` holds the run state, the acting policy's sampling generator and, from ``rollout`` (the
    town and its EpisodeTracker), the town's state and the running episode returns and lengths, so
    that a resumed run continues the policy's random stream and the very episodes it was in:
    interrupted and resumed equals uninterrupted.
    """
    from townlet.nets.checkpoints import BEST, LAST, save_checkpoint

    is_best = state.best.iteration == iteration
    if not (final or is_best or iteration % every == 0):
        return
    extra = {**state.to_extra(), "world_name": getattr(ctx.world, "name", None), "strategy": "ppo"}
    if policy is not None:
        extra["policy_rng"] = policy.generator.get_state()
    town, tracker = rollout
    if town is not None and tracker is not None:
        extra["rollout"] = {
            "town": town.snapshot(),
            "episode_returns": tracker.returns,
            "episode_lengths": tracker.lengths,
        }
    names = ([LAST] if (final or iteration % every == 0) else []) + ([BEST] if is_best else [])
    for name in names:
        save_checkpoint(
            ctx.run_dir.checkpoints / name,
            model=net,
            optimizer=opt,
            model_cfg=ctx.model,
            spec=spec,
            epoch=iteration,
            config_hash=ctx.metadata.get("config_hash"),
            extra=extra,
        )


def warm_start_from(ctx: TrainingContext, net: Any, spec: Any, device: Any, log: logging.Logger) -> bool:
    """Load ``init_from`` (a BC or PPO checkpoint) into ``net``; True if it did.

    A warm-started network keeps the input statistics it was trained with.
    """
    if not ctx.init_from:
        return False
    from townlet.nets.checkpoints import warm_start

    src = warm_start(net, ctx.init_from, ctx.model, spec, str(device))
    log.info("ppo: warm-started from %s", src.path)
    return True


def resume(
    ctx: TrainingContext, net: Any, opt: Any, spec: Any, device: Any, policy: Any, log: logging.Logger
) -> RunState | None:
    """Restore network, optimiser, global RNGs and the policy's generator from ``last.pt``.

    Returns the run state it stored, or None when there is nothing to resume.
    """
    from townlet.nets.checkpoints import LAST, load_checkpoint

    ckpt_dir = ctx.run_dir.checkpoints
    if not (ctx.resume and (ckpt_dir / LAST).is_file()):
        return None
    ckpt = load_checkpoint(ckpt_dir, spec, str(device), which="last")
    net.load_state_dict(ckpt.model_state)
    if ckpt.optimizer_state is not None:
        opt.load_state_dict(dict(ckpt.optimizer_state))
    ckpt.restore_rng()
    state = RunState.from_extra(ckpt.extra)
    if policy is not None and "policy_rng" in ckpt.extra:
        policy.generator.set_state(ckpt.extra["policy_rng"].cpu())
    log.info("ppo: resuming %s after iteration %d", ckpt.path, state.iteration)
    return state
