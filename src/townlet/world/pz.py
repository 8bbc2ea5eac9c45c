"""One town through PettingZoo's ``ParallelEnv`` API (a ``num_envs=1`` VecTown), for other multi-agent
libraries; faints are ``infos[agent]["fainted"]``, episodes end by truncation."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from townlet.world.config import WorldConfig
from townlet.world.gym_vector import check_render_mode, obs_spaces, warn_no_render_mode
from townlet.world.render import RENDER_MODES, render
from townlet.world.spec import NUM_ACTIONS, Observation
from townlet.world.vectown import VecTown


class TownParallelEnv(ParallelEnv):
    """PettingZoo parallel environment over a single town (agents ``agent_0`` … ``agent_{A-1}``)."""

    metadata: ClassVar[dict[str, Any]] = {
        "name": "townlet_v0",
        "render_modes": list(RENDER_MODES),
        "render_fps": 8,
    }

    def __init__(self, cfg: WorldConfig, seed: int = 0, render_mode: str | None = None) -> None:
        self.render_mode = check_render_mode(render_mode)
        self._cfg = dataclasses.replace(cfg, num_envs=1)
        self._town = VecTown(self._cfg, int(seed))
        self._unseen = True  # the town stands at the start of an episode no reset has returned yet
        self.possible_agents = [f"agent_{i}" for i in range(self._cfg.num_agents)]
        self.agents: list[str] = []
        spec = self._town.spec
        self._obs_space = spaces.Dict(
            {**obs_spaces(spec, 255), "action_mask": spaces.MultiBinary(NUM_ACTIONS)}
        )
        self._act_space = spaces.Discrete(NUM_ACTIONS)
        self.state_space = spaces.Box(
            -np.inf, np.inf, shape=(self._cfg.num_agents * spec.feature_dim,), dtype=np.float32
        )

    def observation_space(self, agent: str) -> spaces.Dict:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Space[Any]:
        return self._act_space

    def _split(self, obs: Observation) -> tuple[dict[str, Any], dict[str, Any]]:
        out, infos = {}, {}
        for i, name in enumerate(self.possible_agents):
            mask = obs.action_mask[i].astype(np.int8)
            out[name] = {"map": obs.maps[i], "features": obs.features[i], "action_mask": mask}
            infos[name] = {"action_mask": mask}
        return out, infos

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if seed is not None:
            self._town = VecTown(self._cfg, int(seed))
            self._unseen = True
        obs = self._town.observe() if self._unseen else self._town.new_episode()
        self._unseen = False
        self.agents = list(self.possible_agents)
        return self._split(obs)

    def state(self) -> np.ndarray:
        """The global state: all agents' feature vectors, concatenated in agent order."""
        return self._town.observe().features.reshape(-1).copy()

    def step(
        self, actions: dict[str, int]
    ) -> tuple[dict[str, Any], dict[str, float], dict[str, bool], dict[str, bool], dict[str, Any]]:
        act = np.zeros(self._town.n_agents, dtype=np.int64)  # agents without an action wait
        for i, name in enumerate(self.possible_agents):
            if name in actions:
                act[i] = int(actions[name])
        res = self._town.step(act)
        ended = bool(res.truncated.any())
        obs, infos = self._split(res.final_obs if ended and res.final_obs is not None else res.obs)
        rewards = {name: float(res.rewards[i]) for i, name in enumerate(self.possible_agents)}
        terms = dict.fromkeys(self.possible_agents, False)
        truncs = dict.fromkeys(self.possible_agents, ended)
        for i, name in enumerate(self.possible_agents):
            infos[name]["fainted"] = bool(res.terminated[i])
        if ended:
            self.agents = []
            self._unseen = True  # the town already stands at the next episode's start
        return obs, rewards, terms, truncs, infos

    def render(self) -> np.ndarray | str | None:
        """The current frame in ``render_mode`` (``human``: printed, None; no mode: None and a warning)."""
        if self.render_mode is None:
            warn_no_render_mode()
            return None
        return render(self._town, self.render_mode)
