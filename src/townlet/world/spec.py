"""The fixed interface between the town and anything that acts in it.

The action vocabulary and the observation layout are part of the data format: datasets, checkpoints
and policies carry an :class:`ObservationSpec`, and loading refuses one that does not match."""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np


class Action(enum.IntEnum):
    """Discrete action vocabulary; ids are stable forever (append only)."""

    NOOP = 0
    MOVE_NORTH = 1
    MOVE_SOUTH = 2
    MOVE_EAST = 3
    MOVE_WEST = 4
    USE = 5  # join the queue of / start using the object on the agent's tile
    RELEASE = 6  # leave the object being used or the queue being waited in
    CHAT = 7  # talk to an agent on the same or an adjacent tile


ACTION_NAMES: tuple[str, ...] = tuple(a.name.lower() for a in Action)
NUM_ACTIONS: int = len(ACTION_NAMES)


@dataclass(frozen=True)
class ObservationSpec:
    """Shapes and names of one agent's observation; travels with datasets and checkpoints."""

    map_channels: tuple[str, ...]
    window: int
    feature_names: tuple[str, ...]
    action_names: tuple[str, ...] = ACTION_NAMES

    @property
    def map_shape(self) -> tuple[int, int, int]:
        return (len(self.map_channels), self.window, self.window)

    @property
    def feature_dim(self) -> int:
        return len(self.feature_names)

    @property
    def num_actions(self) -> int:
        return len(self.action_names)

    def to_dict(self) -> dict[str, object]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ObservationSpec:
        return cls(
            map_channels=tuple(data["map_channels"]),  # type: ignore[arg-type]
            window=int(data["window"]),  # type: ignore[call-overload]
            feature_names=tuple(data["feature_names"]),  # type: ignore[arg-type]
            action_names=tuple(data.get("action_names", ACTION_NAMES)),  # type: ignore[arg-type]
        )

    def fingerprint(self) -> str:
        """Short stable hash, used to refuse checkpoints/datasets built for another layout."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def describe_mismatch(self, other: ObservationSpec) -> str | None:
        """Human-readable difference, or None when the specs are equal."""
        problems = []
        if self.map_channels != other.map_channels:
            problems.append(f"map channels {list(other.map_channels)} != expected {list(self.map_channels)}")
        if self.window != other.window:
            problems.append(f"window {other.window} != expected {self.window}")
        if self.feature_names != other.feature_names:
            missing = sorted(set(self.feature_names) - set(other.feature_names))
            extra = sorted(set(other.feature_names) - set(self.feature_names))
            problems.append(f"feature names differ (missing {missing}, unexpected {extra}, or order)")
        if self.action_names != other.action_names:
            problems.append(f"action names {list(other.action_names)} != expected {list(self.action_names)}")
        return "; ".join(problems) or None


class Observation(NamedTuple):
    """Observations of N = num_envs * num_agents agents (env-major): uint8 maps [N, C, W, W], float32
    features [N, F], bool action_mask [N, A] (True = allowed; NOOP always)."""

    maps: np.ndarray
    features: np.ndarray
    action_mask: np.ndarray


class StepResult(NamedTuple):
    """One vectorised tick. ``obs`` is what the *next* action is chosen from: at an episode's end
    (``truncated``) the town has auto-reset and ``final_obs`` holds the old episode's last observation.
    ``terminated`` marks a faint: the agent respawns; GAE must cut there."""

    obs: Observation
    rewards: np.ndarray  # float32 [N]
    terminated: np.ndarray  # bool [N]
    truncated: np.ndarray  # bool [N]
    final_obs: Observation | None
    events: dict[str, np.ndarray]  # event counter name -> float64 [num_envs] counts this tick


EVENT_COUNTERS: tuple[str, ...] = (
    "queue_conflict_events", "queue_conflict_intensity_sum", "shared_meal_events", "late_help_events",
    "shift_takeover_events", "chat_success_events", "chat_failure_events",
    "chat_quality_sum",  # chat_quality_mean = chat_quality_sum / chat_success_events
)  # fmt: skip
