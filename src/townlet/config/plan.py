"""How big a run is, answered in one place (torch-free, so preflight and progress can ask it): every
caller asks :func:`ppo_plan` or a strategy's ``plan(world)``."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class RunPlan:
    """What a run will do: ``units`` epochs or iterations in all (None: unknown before the data is read);
    a composite lists its parts as ``(label, units)`` in ``stages``, with ``units`` their sum."""

    units: int | None
    unit: str = "it"  # "epoch" | "it"
    stages: tuple[tuple[str, int], ...] = ()
    rows_per_iteration: int | None = None


def ppo_plan(
    *, n_steps: int, num_envs: int, num_agents: int, total_steps: int, replay_epochs: int | None = None
) -> RunPlan:
    """PPO's size: ``n_steps`` ticks of ``num_envs`` towns of ``num_agents`` agents per iteration, until
    ``total_steps`` agent-steps; on replay data (``replay_epochs`` given) one iteration per epoch."""
    if replay_epochs is not None:
        return RunPlan(units=max(1, int(replay_epochs)))
    rows = int(n_steps) * int(num_envs) * int(num_agents)
    return RunPlan(units=max(1, math.ceil(int(total_steps) / max(rows, 1))), rows_per_iteration=rows)
