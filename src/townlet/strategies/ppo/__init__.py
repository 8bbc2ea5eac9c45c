"""``strategy=ppo``: the network being trained acts in vectorised towns and learns from what it did.

``run`` reads one PPO run top to bottom; ``strategy`` holds the validated hyper-parameters Hydra
builds (``townlet.strategies.ppo.PPOStrategy`` is the ``_target_`` in configs and saved snapshots,
so it stays importable from here). Torch is imported only inside functions.
"""

from townlet.strategies.ppo.records import (
    COUNTERS,
    TELEMETRY_VERSION,
    EpisodeTracker,
    event_counters,
)
from townlet.strategies.ppo.run import PPORun
from townlet.strategies.ppo.schedules import learning_rate_at, social_stage_for
from townlet.strategies.ppo.strategy import PPOConfigError, PPOStrategy
from townlet.world.spec import EVENT_COUNTERS

__all__ = [
    "COUNTERS",
    "EVENT_COUNTERS",
    "TELEMETRY_VERSION",
    "EpisodeTracker",
    "PPOConfigError",
    "PPORun",
    "PPOStrategy",
    "event_counters",
    "learning_rate_at",
    "social_stage_for",
]
