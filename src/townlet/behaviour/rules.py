"""One interface for all that acts in the town, so capture, evaluation and PPO rollouts share one loop:
``act(obs)`` gives the actions, their exact log-probabilities under the acting policy, and a value."""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from townlet.world.features import DIRECTIONS
from townlet.world.rules import OPPOSITE_DIR
from townlet.world.spec import Action, Observation, ObservationSpec


class PolicyOutput(NamedTuple):
    actions: np.ndarray  # int64 [N], the executed actions
    log_probs: np.ndarray  # float32 [N], log pi(action | obs) under the behaviour policy
    values: np.ndarray  # float32 [N], state-value estimates (0 for policies without a critic)
    teacher_actions: np.ndarray | None = None  # int64 [N], the scripted teacher's choice; None = no teacher


@runtime_checkable
class BehaviourPolicy(Protocol):
    name: str

    def act(self, obs: Observation) -> PolicyOutput: ...


class UnknownBehaviourError(ValueError):
    """``make_behaviour`` was asked for a policy it does not know."""


def check_observation(obs: Observation, spec: ObservationSpec, error: type[ValueError]) -> None:
    """Refuse observations of another layout before a network acts on them (its output would be noise)."""
    maps, features = tuple(obs.maps.shape[1:]), obs.features.shape[1]
    if maps != spec.map_shape or features != spec.feature_dim:
        raise error(
            f"observation maps {maps} / features {features} do not match the policy's spec (maps "
            f"{spec.map_shape}, features {spec.feature_dim}); evaluate the policy in the world it was "
            "trained for"
        )


def _pick_unmasked(mask: np.ndarray, u: np.ndarray | float) -> np.ndarray:
    """The k-th allowed action per row with k = floor(u * n_allowed): uniform over the mask, vectorised."""
    n_ok = mask.sum(axis=1)
    k = np.minimum((u * n_ok).astype(np.int64), n_ok - 1)
    return (np.cumsum(mask, axis=1) > k[:, None]).argmax(axis=1).astype(np.int64)


class RandomPolicy:
    """Uniform over the unmasked actions; log-probs are exact (-log n_allowed)."""

    name = "random"

    def __init__(self, spec: ObservationSpec, seed: int = 0) -> None:
        self.spec = spec
        self._rng = np.random.default_rng(seed)

    def act(self, obs: Observation) -> PolicyOutput:
        mask = np.asarray(obs.action_mask, dtype=bool)
        actions = _pick_unmasked(mask, self._rng.random(mask.shape[0]))
        log_probs = (-np.log(mask.sum(axis=1))).astype(np.float32)
        return PolicyOutput(actions, log_probs, np.zeros(mask.shape[0], dtype=np.float32), None)


class ScriptedPolicy:
    """The teacher: a fixed priority order over needs, decided from the observation alone (the order
    and the ``epsilon`` mixture: docs/world.md, "The scripted teacher")."""

    name = "scripted"

    def __init__(self, spec: ObservationSpec, epsilon: float = 0.0, seed: int = 0) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon={epsilon} must lie in [0, 1]")
        self.spec = spec
        self.epsilon = float(epsilon)
        self._rng = np.random.default_rng(seed)
        idx = {name: i for i, name in enumerate(spec.feature_names)}
        missing = [n for n in _TEACHER_FEATURES if n not in idx]
        if missing:
            raise ValueError(f"ScriptedPolicy needs features {missing}, absent from this observation spec")
        self._cols = np.array([idx[n] for n in _TEACHER_FEATURES], dtype=np.int64)

    def teacher(self, obs: Observation) -> np.ndarray:
        """The scripted action for every agent (int64 [N]); a pure function of the observation."""
        raw = np.asarray(obs.features)[:, self._cols]
        v = dict(zip(_TEACHER_FEATURES, (raw > 0.5).T, strict=True))
        v["here_queue_len"] = raw[:, _TEACHER_FEATURES.index("here_queue_len")] > 0.0
        overtime_done = raw[:, _TEACHER_FEATURES.index("shift_overtime")] >= 1.0
        mask = np.asarray(obs.action_mask, dtype=bool)
        use_ok = mask[:, _USE]
        move_ok = mask[:, _MOVE_N : _MOVE_N + 4]
        n = mask.shape[0]
        rows = np.arange(n)
        goal_dir = np.stack([v[f"goal_dir_{d}"] for d in DIRECTIONS], axis=1)
        rival_dir = np.stack([v[f"rival_dir_{d}"] for d in DIRECTIONS], axis=1)
        gd = np.where(goal_dir.any(axis=1), goal_dir.argmax(axis=1), -1)
        away = np.where(rival_dir.any(axis=1), OPPOSITE_DIR[rival_dir.argmax(axis=1)], -1)
        goal_move = np.where((gd >= 0) & move_ok[rows, np.maximum(gd, 0)], gd + _MOVE_N, _NOOP)
        away_move = np.where((away >= 0) & move_ok[rows, np.maximum(away, 0)], away + _MOVE_N, _NOOP)

        job_release = v["occupying_job_site"] & v["shift_post"] & (v["here_queue_len"] | overtime_done)
        occ_action = np.where(job_release | v["use_satisfied"], _RELEASE, _NOOP)
        queue_action = np.where(v["queue_has_rival"] | ~use_ok, _RELEASE, _USE)
        goal_action = np.where(v["goal_here"], np.where(use_ok, _USE, _NOOP), goal_move)
        chat = mask[:, _CHAT] & v["needs_ok"] & ~v["neighbour_is_rival"]
        return np.select(
            [v["occupying"], v["in_queue"], v["goal_active"], chat, v["rival_near"]],
            [occ_action, queue_action, goal_action, np.full(n, _CHAT), away_move],
            default=_NOOP,
        ).astype(np.int64)

    def act(self, obs: Observation) -> PolicyOutput:
        teacher = self.teacher(obs)
        n = teacher.shape[0]
        zeros = np.zeros(n, dtype=np.float32)
        if self.epsilon == 0.0:
            return PolicyOutput(teacher, zeros.copy(), zeros, teacher)
        mask = np.asarray(obs.action_mask, dtype=bool)
        explore = self._rng.random(n) < self.epsilon
        uniform = _pick_unmasked(mask, self._rng.random(n))
        actions = np.where(explore, uniform, teacher)
        n_ok = mask.sum(axis=1)
        prob = (1.0 - self.epsilon) * (actions == teacher) + self.epsilon / n_ok
        return PolicyOutput(actions, np.log(prob).astype(np.float32), zeros, teacher)


_NOOP, _MOVE_N, _USE, _RELEASE, _CHAT = (
    int(a) for a in (Action.NOOP, Action.MOVE_NORTH, Action.USE, Action.RELEASE, Action.CHAT)
)
_TEACHER_FEATURES: tuple[str, ...] = (
    "occupying", "occupying_job_site", "use_satisfied", "shift_post", "shift_overtime", "here_queue_len",
    "in_queue", "queue_has_rival", "goal_active", "goal_here", *(f"goal_dir_{d}" for d in DIRECTIONS),
    "needs_ok", "neighbour_is_rival", "rival_near", *(f"rival_dir_{d}" for d in DIRECTIONS),
)  # fmt: skip


def make_behaviour(name: str, spec: ObservationSpec, seed: int = 0, epsilon: float = 0.0) -> BehaviourPolicy:
    """Build a torch-free behaviour policy by name: ``scripted`` or ``random``."""
    if name == "scripted":
        return ScriptedPolicy(spec, epsilon=epsilon, seed=seed)
    if name == "random":
        return RandomPolicy(spec, seed=seed)
    raise UnknownBehaviourError(f"unknown behaviour {name!r}; choose 'scripted' or 'random'")
