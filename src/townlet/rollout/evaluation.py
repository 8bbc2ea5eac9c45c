"""How well a policy lives in the town, next to the scripted and random baselines: the same rollout loop
and world seed for each (torch-free)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from townlet.behaviour.rules import BehaviourPolicy, ScriptedPolicy, make_behaviour
from townlet.dto import EvaluationBlock, PolicyEvaluationDTO
from townlet.replay.data import ReplayData
from townlet.rollout.collect import RolloutCaptureService
from townlet.world import build_spec, make_town, to_world_config
from townlet.world.spec import Observation


class EvaluationError(ValueError):
    """Bad evaluation request (no episodes, or a policy built for another observation layout)."""


def episode_plan(num_envs: int, episodes: int) -> tuple[int, int]:
    """(towns, rounds), towns * rounds >= episodes with least waste (towns run in lock-step)."""
    if episodes <= 0:
        raise EvaluationError(f"evaluation needs at least one episode, got episodes={episodes}")
    rounds = math.ceil(episodes / max(num_envs, 1))
    return math.ceil(episodes / rounds), rounds


class EvaluationService:
    """Runs policies for whole episodes and summarises them as ``PolicyEvaluationDTO``."""

    def evaluate(
        self,
        policy: BehaviourPolicy,
        world_cfg: Any,
        episodes: int = 2,
        seed: int = 0,
        *,
        label: str | None = None,
        agreement: bool = True,
    ) -> PolicyEvaluationDTO:
        """Run ``policy`` for at least ``episodes`` whole episodes of ``world_cfg`` (town seed ``seed``)."""
        base = to_world_config(world_cfg)
        towns, rounds = episode_plan(int(base.num_envs), episodes)
        cfg = dataclasses.replace(base, num_envs=towns)  # fewer towns when fewer episodes are asked for
        town = make_town(cfg, seed)
        policy_spec = getattr(policy, "spec", None)
        if policy_spec is not None and (diff := town.spec.describe_mismatch(policy_spec)):
            raise EvaluationError(
                f"policy {label or policy.name!r} was built for another observation spec than world "
                f"{cfg.name!r}: {diff}; evaluate it in the world it was trained for"
            )
        data = RolloutCaptureService().collect(town, policy, rounds * int(cfg.episode_length))
        name = label or str(getattr(policy, "name", "policy"))
        return self.summarise(data, name, seed, policy, agreement)

    def compare(
        self,
        trained_policy: BehaviourPolicy,
        world_cfg: Any,
        episodes: int = 2,
        seed: int = 0,
        *,
        baselines: bool = True,
    ) -> EvaluationBlock:
        """The trained policy, the scripted teacher and a random policy on the same seed, side by side."""
        trained = self.evaluate(trained_policy, world_cfg, episodes, seed, label="trained")
        scripted = random_ = None
        cfg = to_world_config(world_cfg)
        if baselines:
            spec = build_spec(cfg)
            teacher = make_behaviour("scripted", spec, seed=seed)
            scripted = self.evaluate(teacher, cfg, episodes, seed, label="scripted")
            noise = make_behaviour("random", spec, seed=seed)
            random_ = self.evaluate(noise, cfg, episodes, seed, label="random")
        return EvaluationBlock(policy=trained, scripted=scripted, random=random_, world=cfg.name, seed=seed)

    def summarise(
        self, data: ReplayData, label: str, seed: int, policy: Any = None, agreement: bool = True
    ) -> PolicyEvaluationDTO:
        """Episode statistics of one collected rollout (whole episodes of every agent)."""
        spec = data.spec
        agent_ticks = data.num_transitions
        num_agents = int(data.meta.get("num_agents", 1)) or 1
        stats = data.episode_stats
        agent_episodes = int(stats.get("agent_episodes", 0))
        episodes = agent_episodes // num_agents
        need_idx = [i for i, n in enumerate(spec.feature_names) if n.startswith("need_")]
        needs = {spec.feature_names[i][len("need_") :]: float(data.features[..., i].mean()) for i in need_idx}
        mean_needs = float(np.clip(np.mean(list(needs.values())), 0.0, 1.0)) if needs else 0.0
        conflicts = float(data.events.get("queue_conflict_events", 0.0))
        agree = None
        if agreement and agent_ticks:  # the teacher is a pure function of the observation: one call
            flat = Observation(data.flat("maps"), data.flat("features"), data.flat("action_mask"))
            teacher = ScriptedPolicy(spec).teacher(flat).reshape(data.actions.shape)
            agree = float(np.mean(teacher == data.actions))
        greedy = getattr(policy, "greedy", None)
        return PolicyEvaluationDTO(
            policy=label,
            episodes=episodes,
            agent_ticks=agent_ticks,
            mean_return=float(stats.get("return_mean", 0.0)),
            return_std=float(stats.get("return_std", 0.0)),
            faint_rate=float(stats.get("faints", 0.0)) / agent_episodes if agent_episodes else 0.0,
            mean_needs=mean_needs,
            needs={k: float(np.clip(v, 0.0, 1.0)) for k, v in needs.items()},
            conflicts_per_100_agent_ticks=100.0 * conflicts / agent_ticks if agent_ticks else 0.0,
            scripted_agreement=agree,
            events={k: float(v) for k, v in data.events.items()},
            seed=seed,
            stochastic=bool(greedy is False or getattr(policy, "name", "") == "random"),
        )
