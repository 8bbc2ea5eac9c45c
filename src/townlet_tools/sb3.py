"""The Gymnasium vector town as a Stable-Baselines3 ``VecEnv`` (SB3 drives its own interface, not
Gymnasium's), answering ``env_method("action_masks")`` row by row as MaskablePPO asks. Outside the
torch-free world, since stable_baselines3 imports torch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from townlet.world.gym_vector import TownVectorEnv


class TownSB3VecEnv(VecEnv):
    """``TownSB3VecEnv(TownVectorEnv(cfg, seed))``: ``num_envs * num_agents`` SB3 envs, one per agent."""

    def __init__(self, env: TownVectorEnv) -> None:
        self.env = env
        self._actions: np.ndarray | None = None
        self._next_seed: int | None = None
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """The next reset rebuilds the towns from ``seed`` (one seed for all: they are one simulation)."""
        self._next_seed = seed
        return [None if seed is None else seed + i for i in range(self.num_envs)]

    def reset(self) -> dict[str, np.ndarray]:
        obs, infos = self.env.reset(seed=self._next_seed)
        self._next_seed = None
        self.reset_infos = [{"action_mask": row} for row in infos["action_mask"]]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list[dict[str, Any]]]:
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async(actions)")
        obs, rewards, terminated, truncated, infos = self.env.step(self._actions)
        self._actions = None
        dones = terminated | truncated
        out: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(dones):
            out[i]["terminal_observation"] = infos["final_obs"][i]
            out[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, rewards, dones, out

    def action_masks(self) -> np.ndarray:
        return self.env.action_masks()

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        value = getattr(self.env, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        raise AttributeError(f"the sub-envs of one town share their attributes; {attr_name!r} cannot be set")

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        """Per sub-env results: ``action_masks`` gives each its own row, other methods run once for all."""
        result = getattr(self.env, method_name)(*args, **kwargs)
        rows = self._indices(indices)
        if method_name == "action_masks":
            return [result[i] for i in rows]
        return [result for _ in rows]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)
