"""The one act -> step -> record loop of capture, evaluation and PPO rollouts (torch-free): the
observation and the action chosen from it share a row, and event counters travel with the data."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from omegaconf import DictConfig, OmegaConf

from townlet.behaviour.rules import BehaviourPolicy, make_behaviour
from townlet.replay import DEFAULT_SHARD_ROWS, FORMAT_VERSION, ReplayData, stable_hash, write_dataset
from townlet.replay.columns import allocate
from townlet.world import make_town
from townlet.world.spec import EVENT_COUNTERS, Observation, ObservationSpec, StepResult

log = logging.getLogger(__name__)

ProgressFn = Callable[[int], None]


class VecTownLike(Protocol):
    """The part of `townlet.world.VecTown` the loop uses (kept structural: no world import here)."""

    spec: ObservationSpec
    num_envs: int
    num_agents: int
    n_agents: int
    tick: int

    def reset(self) -> Observation: ...

    def step(self, actions: np.ndarray) -> StepResult: ...


class RolloutError(ValueError):
    """Bad rollout request (non-positive ticks, unknown behaviour, policy output of the wrong shape)."""


def world_config_dict(world_cfg: Any) -> dict[str, Any]:
    """Plain dict of a WorldConfig dataclass or an OmegaConf node (what the manifest records)."""
    if dataclasses.is_dataclass(world_cfg) and not isinstance(world_cfg, type):
        return dataclasses.asdict(world_cfg)
    if isinstance(world_cfg, DictConfig):
        return OmegaConf.to_container(world_cfg, resolve=True, enum_to_str=True)  # type: ignore[return-value]
    if isinstance(world_cfg, dict):
        return dict(world_cfg)
    raise RolloutError(f"cannot read a world config of type {type(world_cfg).__name__}")


def world_provenance(world_cfg: Any) -> dict[str, Any]:
    config = world_config_dict(world_cfg)
    return {"name": config.get("name"), "config": config, "hash": stable_hash(config)}


class EpisodeTracker:
    """Per-agent running returns and lengths, recorded at truncation; PPO keeps one across its rollouts
    (cut every ``n_steps`` ticks, not at episode ends) and reads what completed once per iteration."""

    def __init__(self, n: int) -> None:
        self.returns = np.zeros(n, np.float64)
        self.lengths = np.zeros(n, np.int64)
        self.done_returns: list[np.ndarray] = []
        self.done_lengths: list[np.ndarray] = []
        self.faints = 0

    def update(self, rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> None:
        self.returns += rewards
        self.lengths += 1
        self.faints += int(np.count_nonzero(terminated))
        if truncated.any():
            self.done_returns.append(self.returns[truncated].copy())
            self.done_lengths.append(self.lengths[truncated].copy())
            self.returns[truncated] = 0.0
            self.lengths[truncated] = 0

    def take_completed(self) -> tuple[np.ndarray, np.ndarray]:
        """Returns and lengths of the agent-episodes completed since the last call, in order."""
        rets = np.concatenate(self.done_returns) if self.done_returns else np.zeros(0, np.float64)
        lens = np.concatenate(self.done_lengths) if self.done_lengths else np.zeros(0, np.int64)
        self.done_returns, self.done_lengths = [], []
        return rets, lens

    def stats(self, agent_ticks: int) -> dict[str, float]:
        """Completed agent-episodes when there are any; otherwise the partial episodes (flagged)."""
        complete = bool(self.done_returns)
        rets = np.concatenate(self.done_returns) if complete else self.returns
        lens = np.concatenate(self.done_lengths) if complete else self.lengths
        return {
            "agent_episodes": float(rets.size if complete else 0),
            "complete": float(complete),
            "return_mean": float(rets.mean()) if rets.size else 0.0,
            "return_std": float(rets.std()) if rets.size else 0.0,
            "return_min": float(rets.min()) if rets.size else 0.0,
            "return_max": float(rets.max()) if rets.size else 0.0,
            "length_mean": float(lens.mean()) if lens.size else 0.0,
            "faints": float(self.faints),
            "agent_ticks": float(agent_ticks),
            "faints_per_100_agent_ticks": 100.0 * self.faints / agent_ticks if agent_ticks else 0.0,
        }


class RolloutCaptureService:
    """Runs a policy in a vectorised town and records what happened as `ReplayData`."""

    def collect(
        self,
        town: VecTownLike,
        policy: BehaviourPolicy,
        ticks: int,
        *,
        start_obs: Observation | None = None,
        progress: ProgressFn | None = None,
    ) -> ReplayData:
        """Step ``town`` for ``ticks`` ticks under ``policy``; ``start_obs`` continues from an observation
        (PPO's ``previous.next_obs``) instead of resetting. A policy with ``value(obs)`` records V(final_obs)
        at truncations and V(next_obs) as ``bootstrap_values`` (else 0)."""
        if ticks <= 0:
            raise RolloutError(f"ticks must be positive to capture a rollout, got {ticks}")
        spec, n = town.spec, int(town.n_agents)
        num_envs, per_env = int(town.num_envs), int(town.num_agents)
        cols = allocate(spec, ticks, n)
        cols["env_id"][:] = np.repeat(np.arange(num_envs, dtype=np.int32), per_env)
        cols["agent_id"][:] = np.tile(np.arange(per_env, dtype=np.int32), num_envs)
        value_fn: Callable[[Observation], np.ndarray] | None = getattr(policy, "value", None)
        episode = np.zeros(num_envs, np.int32)
        tracker = EpisodeTracker(n)
        events = dict.fromkeys(EVENT_COUNTERS, 0.0)
        obs = start_obs if start_obs is not None else town.reset()
        every = max(1, ticks // 100)
        for t in range(ticks):
            cols["maps"][t], cols["features"][t], cols["action_mask"][t] = obs
            cols["tick"][t] = town.tick
            cols["episode_id"][t] = np.repeat(episode, per_env)
            out = policy.act(obs)
            if out.actions.shape != (n,):
                raise RolloutError(
                    f"policy {policy.name!r} returned actions of shape {out.actions.shape}, want ({n},)"
                )
            cols["actions"][t] = out.actions
            cols["teacher_actions"][t] = out.actions if out.teacher_actions is None else out.teacher_actions
            cols["log_probs"][t], cols["values"][t] = out.log_probs, out.values
            res = town.step(cols["actions"][t])
            cols["rewards"][t], cols["terminated"][t] = res.rewards, res.terminated
            cols["truncated"][t] = res.truncated
            tracker.update(res.rewards, res.terminated, res.truncated)
            fv: np.ndarray | float = 0.0
            if res.truncated.any():
                if value_fn is not None and res.final_obs is not None:
                    fv = value_fn(res.final_obs)
                episode += res.truncated.reshape(num_envs, per_env).any(axis=1)
            np.copyto(cols["final_values"][t], np.where(res.truncated, fv, 0.0), casting="unsafe")
            for name, arr in res.events.items():
                events[name] = events.get(name, 0.0) + float(arr.sum())
            obs = res.obs
            if progress is not None and ((t + 1) % every == 0 or t + 1 == ticks):
                progress(t + 1)
        boot = value_fn(obs) if value_fn is not None else np.zeros(n, np.float32)
        return ReplayData.from_columns(
            spec,
            cols,
            bootstrap_values=np.asarray(boot, np.float32),
            meta={
                "behaviour": getattr(policy, "name", type(policy).__name__),
                "ticks": ticks,
                "num_envs": num_envs,
                "num_agents": per_env,
            },
            events=events,
            episode_stats=tracker.stats(ticks * n),
            next_obs=obs,
        )

    def capture(
        self,
        world_cfg: Any,
        behaviour: str = "scripted",
        ticks: int = 400,
        seed: int = 0,
        epsilon: float = 0.0,
        output_dir: str | Path | None = None,
        *,
        shard_rows: int = DEFAULT_SHARD_ROWS,
        compress: bool = False,
        overwrite: bool = False,
        progress: ProgressFn | None = None,
    ) -> ReplayData:
        town = make_town(world_cfg, seed)
        try:
            policy = make_behaviour(behaviour, town.spec, seed=seed, epsilon=epsilon)
        except (KeyError, ValueError) as exc:
            raise RolloutError(f"unknown or invalid behaviour {behaviour!r}: {exc}") from None
        started = time.perf_counter()
        data = self.collect(town, policy, ticks, progress=progress)
        elapsed = time.perf_counter() - started
        data.meta.update(
            behaviour=behaviour,
            epsilon=float(epsilon),
            seed=int(seed),
            world=world_provenance(world_cfg),
            format_version=FORMAT_VERSION,
            capture_seconds=round(elapsed, 3),
        )
        log.debug("captured %d transitions in %.2fs", data.num_transitions, elapsed)
        if output_dir is not None:
            write_dataset(data, output_dir, shard_rows=shard_rows, compress=compress, overwrite=overwrite)
            data.meta["path"] = str(output_dir)
        return data
