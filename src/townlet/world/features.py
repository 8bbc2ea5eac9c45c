"""Names of the observation: map channels and the feature vector (the order is part of the data format).

The features carry everything the scripted teacher decides from (docs/world.md), so a network can
imitate it exactly."""

from __future__ import annotations

from townlet.world.config import NEED_NAMES, OBJECT_KINDS, WorldConfig
from townlet.world.spec import ACTION_NAMES, ObservationSpec

MAP_CHANNELS: tuple[str, ...] = ("walls", *OBJECT_KINDS, "agents", "occupied", "queue")
DIRECTIONS: tuple[str, ...] = ("north", "south", "east", "west")  # same order as the move actions

FEATURE_NAMES: tuple[str, ...] = (
    *(f"need_{n}" for n in NEED_NAMES), "needs_ok", "urgent_need", "wallet",
    "time_sin", "time_cos", "episode_progress",
    "has_job", "working", "shift_pre", "shift_on_time", "shift_late", "shift_absent", "shift_post",
    "job_window", "shift_overtime", "lateness_counter", "attendance_ratio",
    "occupying", "use_remaining", "use_satisfied", *(f"occupying_{k}" for k in OBJECT_KINDS),
    "in_queue", "queue_position", "queue_length", "queue_is_head", "queue_has_rival",
    *(f"here_{k}" for k in OBJECT_KINDS), "here_occupied", "here_queue_len", "here_usable",
    *(f"{k}_{c}" for k in OBJECT_KINDS for c in ("dx", "dy", "dist")),
    "goal_active", "goal_is_job", *(f"goal_need_{n}" for n in NEED_NAMES),
    "goal_here", "goal_dx", "goal_dy", "goal_dist", *(f"goal_dir_{d}" for d in DIRECTIONS),
    "rivalry_max", "rivalry_avoid_count", "rival_near", "rival_dist", *(f"rival_dir_{d}" for d in DIRECTIONS),
    "neighbour_count", "nearest_agent_distance", "neighbour_is_rival", "chat_ready",
    "social_trust_mean", "social_trust_max", "social_familiarity_mean", "social_rivalry_mean",
    *(f"last_action_{a}" for a in ACTION_NAMES),
)  # fmt: skip
FEATURE_INDEX: dict[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}


def build_spec(cfg: WorldConfig) -> ObservationSpec:
    """The observation spec of a town built from ``cfg`` (only the window size varies by config)."""
    return ObservationSpec(map_channels=MAP_CHANNELS, window=int(cfg.window), feature_names=FEATURE_NAMES)
