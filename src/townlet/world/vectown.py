"""The vectorised town: ``num_envs`` towns x ``num_agents`` agents stepped at once with NumPy (state in
``vectown_state``, a tick's rules in ``vectown_rules``; ``townlet_tools.oracle`` is the reference)."""

from __future__ import annotations

from typing import Any

import numpy as np

from townlet.world.config import WorldConfig, WorldConfigError
from townlet.world.layout import STAGES
from townlet.world.loader import to_world_config
from townlet.world.spec import NUM_ACTIONS, Observation, StepResult
from townlet.world.vectown_rules import TownRules

_NO_ROWS = np.zeros(0, dtype=np.intp)

#: Every array of a town that a tick changes. Everything else is rebuilt from (cfg, seed), and the
#: observation is rebuilt from these, so they are all an exact resume has to carry.
DYNAMIC_ARRAYS = (
    "x", "y", "needs", "home_x", "home_y", "wallet", "occ", "use_left", "elapsed", "q_obj", "q_seq",
    "counter", "last_action", "last_chat", "since_term", "arrived", "late_flag", "lateness",
    "shifts_due", "shifts_attended", "obj_occ", "stall", "stock", "trust", "fam", "riv",
)  # fmt: skip


class ActionError(ValueError):
    """Actions of the wrong shape or outside the vocabulary."""


class VecTown(TownRules):
    """Many towns stepped in lock-step; agent index = env * num_agents + agent."""

    def __init__(self, cfg: WorldConfig, seed: int) -> None:
        super().__init__(cfg, seed)
        self._obs_cache: Observation | None = None

    # ------------------------------------------------------------------ public API
    def reset(self) -> Observation:
        """Start episode 0 again (same seed -> same town) and return the first observation."""
        return self._start(0)

    def new_episode(self) -> Observation:
        """Abandon the current episode and start the next one (episode + 1: fresh agents from the same
        seed stream), so an env face's ``reset()`` without a seed never replays an episode."""
        return self._start(self.episode + 1)

    def _start(self, episode: int) -> Observation:
        self.episode = episode
        self._init_episode()
        self._obs_cache = self._observe()
        return self._obs_cache

    def observe(self) -> Observation:
        if self._obs_cache is None:
            self._obs_cache = self._observe()
        return self._obs_cache

    @property
    def social_stage(self) -> str:
        """The social reward stage in force (OFF | C1 | C2 | C3)."""
        return STAGES[self._stage]

    def set_social_stage(self, stage: str) -> None:
        """Switch the social reward stage (chat rewards only) from the next tick on."""
        if stage not in STAGES:
            raise WorldConfigError(f"social stage {stage!r} is unknown; choose one of {', '.join(STAGES)}")
        self._stage = STAGES.index(stage)

    def snapshot(self) -> dict[str, Any]:
        """The town's changing state as plain arrays and ints (copies): what a resumed training run
        needs to continue the very episode it was interrupted in."""
        state: dict[str, Any] = {name: getattr(self, name).copy() for name in DYNAMIC_ARRAYS}
        state.update(tick=self.tick, episode=self.episode, stage=self._stage)
        return state

    def restore(self, state: dict[str, Any]) -> None:
        """Put back a :meth:`snapshot` of a town built from the same config and seed (a snapshot from
        another world is refused, naming the first array that does not fit); the observation is rebuilt."""
        missing = [name for name in (*DYNAMIC_ARRAYS, "tick", "episode", "stage") if name not in state]
        if missing:
            raise WorldConfigError(f"town snapshot lacks {', '.join(missing)}; it is not from this version")
        for name in DYNAMIC_ARRAYS:
            value, own = np.asarray(state[name]), getattr(self, name)
            if value.shape != own.shape:
                raise WorldConfigError(
                    f"town snapshot array {name} has shape {value.shape}, this town {own.shape}: "
                    "it was saved for another world"
                )
            setattr(self, name, value.astype(own.dtype, copy=True))
        self.tick, self.episode, self._stage = int(state["tick"]), int(state["episode"]), int(state["stage"])
        self._riv_active = bool(self.riv.any())
        self._tf_rows = None  # every trust/familiarity aggregate is recomputed
        self._obs_cache = self._observe()

    def step(self, actions: np.ndarray) -> StepResult:
        """Apply one action per agent (masked ones become NOOP), advance one tick, observe."""
        self.observe()
        act = np.asarray(actions)
        if act.shape != (self.n_agents,):
            raise ActionError(f"step() needs one action per agent: shape ({self.n_agents},), got {act.shape}")
        if act.size and (act.min() < 0 or act.max() >= NUM_ACTIONS):
            raise ActionError(f"action ids must lie in [0, {NUM_ACTIONS}); see townlet.world.spec.Action")
        a = act.astype(np.int64).reshape(self.num_envs, self.num_agents)  # a fresh copy
        a *= self._obs.mask.reshape(-1).take(self._mask_rows + a.reshape(-1)).reshape(a.shape)  # masked: NOOP
        rewards, terminated, events = self._apply(a)
        self.tick += 1
        self.last_action = a
        final_obs = None
        truncated = np.zeros(self.n_agents, dtype=bool)
        if self.tick >= self.cfg.episode_length:
            final_obs = self._observe()
            truncated[:] = True
            self.episode += 1
            self._init_episode()
        self._obs_cache = self._observe()
        return StepResult(
            obs=self._obs_cache,
            rewards=rewards.reshape(-1).astype(np.float32),
            terminated=terminated.reshape(-1),
            truncated=truncated,
            final_obs=final_obs,
            events=events,
        )

    # ------------------------------------------------------------------ observation
    def _observe(self) -> Observation:
        rows = None if self._tf_rows is None else np.concatenate([_NO_ROWS, *self._tf_rows])
        obs = self._obs.build(self, self._riv_active, rows)
        self._tf_rows = []
        return obs


def make_town(cfg: WorldConfig | Any, seed: int) -> VecTown:
    """The vectorised town for ``cfg`` (WorldConfig, ``world`` node or dict); same (cfg, seed), same town."""
    return VecTown(to_world_config(cfg), seed)
