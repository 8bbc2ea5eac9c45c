"""``strategy=ppo``: the network being trained acts in vectorised towns and learns from what it did.

``run`` reads one PPO run top to bottom; ``settings`` holds the validated hyper-parameters.
``PPOStrategy`` below joins the two: it is the object Hydra builds (``townlet.strategies.ppo.PPOStrategy``
is the ``_target_`` in configs and saved snapshots). Torch is imported only inside functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from townlet.config.schema.strategy_ppo import PPOConfigError
from townlet.strategies.ppo.records import (
    COUNTERS,
    TELEMETRY_VERSION,
    event_counters,
)
from townlet.strategies.ppo.run import PPORun
from townlet.strategies.ppo.schedules import scheduled_value, social_stage_for
from townlet.strategies.ppo.settings import PPOSettings
from townlet.world.spec import EVENT_COUNTERS

if TYPE_CHECKING:
    from townlet.dto import PPOTrainingResultDTO
    from townlet.strategies.context import TrainingContext


class PPOStrategy(PPOSettings):
    """``strategy=ppo``: the settings plus ``run()``."""

    def run(self, context: TrainingContext) -> PPOTrainingResultDTO:
        self.ensure_torch()
        return PPORun(self, context).execute()


__all__ = [
    "COUNTERS",
    "EVENT_COUNTERS",
    "TELEMETRY_VERSION",
    "PPOConfigError",
    "PPORun",
    "PPOStrategy",
    "event_counters",
    "scheduled_value",
    "social_stage_for",
]
