"""What changes from one PPO iteration to the next: learning rate, entropy weight, social reward stage.

Both are pure functions of the iteration number, so a resumed run picks up exactly where it stopped.
"""

from __future__ import annotations

from typing import Any

from townlet.config.schema.strategy_ppo import LRSchedule, schedule_field

__all__ = ["apply_social_stage", "scheduled_value", "social_stage_for"]


def scheduled_value(base: float, schedule: str, iteration: int, iterations: int) -> float:
    """Constant, or linear decay from ``base`` at iteration 1 to ``base / iterations`` at the last."""
    if schedule == LRSchedule.linear and iterations > 0:
        return base * (1.0 - (iteration - 1) / iterations)
    return base


def social_stage_for(cycle: int, default: str | None, schedule: list[Any]) -> str | None:
    """Stage for rollout cycle ``cycle``: the default, replaced by every schedule entry with
    ``entry.cycle <= cycle`` in cycle order (the last one wins)."""
    stage = default
    for entry in sorted(schedule, key=lambda e: int(schedule_field(e, "cycle", 0))):
        if int(schedule_field(entry, "cycle", 0)) <= cycle:
            stage = str(schedule_field(entry, "stage", stage))
    return None if stage is None else str(stage)


def apply_social_stage(town: Any, world_cfg: Any, strategy: Any, cycle: int) -> str | None:
    """Set the town's social reward stage for ``cycle`` and return it (for the record).

    Without ``social_reward_stage`` the schedule starts from the world's own stage. Replay-only runs
    have no town but still report the stage their schedule names.
    """
    default = strategy.social_reward_stage
    if default is None:
        default = getattr(getattr(world_cfg, "social", None), "stage", None)
    stage = social_stage_for(cycle, default, strategy.social_reward_schedule)
    if stage is not None and town is not None:
        town.set_social_stage(stage)
    return stage
