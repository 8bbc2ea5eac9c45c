"""The vectorised town through Gymnasium's ``VectorEnv`` API: one sub-env per agent (index = town *
num_agents + agent), so single-agent learners (SB3, MaskablePPO, CleanRL) train one shared policy.
Masks in ``infos["action_mask"]`` and ``action_masks()``; a faint is ``terminated``; autoreset is
Gymnasium's same-step mode (``infos["final_obs"]``)."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from townlet.world.config import WorldConfig
from townlet.world.loader import to_world_config
from townlet.world.render import RENDER_MODES, render
from townlet.world.spec import NUM_ACTIONS, Observation, ObservationSpec
from townlet.world.vectown import VecTown

ObsDict = dict[str, np.ndarray]


class TownVectorEnv(VectorEnv[ObsDict, np.ndarray, np.ndarray]):
    """``gymnasium.vector.VectorEnv`` over ``cfg.num_envs`` towns of ``cfg.num_agents`` agents each."""

    metadata: dict[str, Any] = {  # noqa: RUF012 - Gymnasium reads it as a class attribute
        "autoreset_mode": AutoresetMode.SAME_STEP,
        "render_modes": list(RENDER_MODES),
        "render_fps": 8,
    }

    def __init__(self, cfg: WorldConfig | Any, seed: int = 0, render_mode: str | None = None) -> None:
        self.render_mode = check_render_mode(render_mode)
        self._cfg = to_world_config(cfg)
        self._town = VecTown(self._cfg, int(seed))
        self._shown = False  # the town's current episode start was returned by a reset
        self.num_envs = self._town.n_agents
        spec = self._town.spec
        # counts of agents on a cell are the largest map values; a true bound (not 255) also keeps SB3
        # from taking the small window for an image
        self.single_observation_space = spaces.Dict(obs_spaces(spec, max(1, min(255, self._cfg.num_agents))))
        self.single_action_space = spaces.Discrete(NUM_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    @property
    def town(self) -> VecTown:
        """The town underneath (read it, e.g. for events; stepping it directly desynchronises the env)."""
        return self._town

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsDict, dict[str, Any]]:
        """``seed`` rebuilds every town from it (episode 0); without one, the next episode starts
        (the first reset of a fresh env shows episode 0 of the constructor's seed)."""
        super().reset(seed=seed)
        if seed is not None:
            self._town = VecTown(self._cfg, int(seed))
            self._shown = False
        obs = self._town.new_episode() if self._shown else self._town.observe()
        self._shown = True
        return _batch(obs), {"action_mask": obs.action_mask.copy(), "_action_mask": self._all()}

    def step(self, actions: Any) -> tuple[ObsDict, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        res = self._town.step(np.asarray(actions, dtype=np.int64).reshape(-1))
        infos: dict[str, Any] = {
            "action_mask": res.obs.action_mask.copy(),
            "_action_mask": self._all(),
            "fainted": res.terminated.copy(),
            "_fainted": self._all(),
        }
        ended = res.terminated | res.truncated
        if ended.any():
            last = res.final_obs if res.final_obs is not None else res.obs
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(ended):
                final_obs[i] = {"map": last.maps[i], "features": last.features[i]}
            infos["final_obs"], infos["_final_obs"] = final_obs, ended
            infos["final_info"] = {"action_mask": last.action_mask.copy(), "_action_mask": ended.copy()}
            infos["_final_info"] = ended.copy()
        return _batch(res.obs), res.rewards, res.terminated, res.truncated, infos

    def action_masks(self) -> np.ndarray:
        """Allowed actions of every sub-env now, bool [num_envs, NUM_ACTIONS] (MaskablePPO's hook)."""
        return self._town.observe().action_mask.copy()

    def render(self) -> tuple[Any, ...] | None:
        """One frame per town (not per sub-env: the agents of a town share it) in ``render_mode``;
        ``human`` prints them and returns None."""
        if self.render_mode is None:
            warn_no_render_mode()
            return None
        frames = tuple(render(self._town, self.render_mode, env) for env in range(self._town.num_envs))
        return None if self.render_mode == "human" else frames

    def _all(self) -> np.ndarray:
        return np.ones(self.num_envs, dtype=bool)


def check_render_mode(mode: str | None) -> str | None:
    if mode is not None and mode not in RENDER_MODES:
        raise ValueError(f"render_mode={mode!r}; choose one of {', '.join(RENDER_MODES)} or None")
    return mode


def warn_no_render_mode() -> None:
    gymnasium.logger.warn("render() without a render_mode; pass one of " + ", ".join(RENDER_MODES))


def obs_spaces(spec: ObservationSpec, top: int) -> dict[str, spaces.Space[Any]]:
    """The map window (values up to ``top``) and the feature vector of one agent."""
    return {
        "map": spaces.Box(0, top, shape=spec.map_shape, dtype=np.uint8),
        "features": spaces.Box(-np.inf, np.inf, shape=(spec.feature_dim,), dtype=np.float32),
    }


def _batch(obs: Observation) -> ObsDict:
    return {"map": obs.maps, "features": obs.features}
