"""Scenario-level behaviour of the town under the scripted teacher (bounds measured, see comments)."""

from __future__ import annotations

import numpy as np
import pytest

from townlet.behaviour.rules import make_behaviour
from townlet.world import (
    EVENT_COUNTERS,
    WorldConfig,
    WorldConfigError,
    available_worlds,
    load_world_config,
    make_town,
)


def _run(cfg: WorldConfig, seed: int, ticks: int) -> tuple[dict[str, float], int, np.ndarray]:
    town = make_town(cfg, seed)
    pol = make_behaviour("scripted", town.spec)
    obs = town.reset()
    events = dict.fromkeys(EVENT_COUNTERS, 0.0)
    faints = 0
    rewards = []
    for _ in range(ticks):
        res = town.step(pol.act(obs).actions)
        obs = res.obs
        faints += int(res.terminated.sum())
        rewards.append(res.rewards)
        for k, v in res.events.items():
            events[k] += float(v.sum())
    return events, faints, np.array(rewards)


def test_queue_conflict_produces_ghost_steps() -> None:
    # Measured with seeds 0-4 (16 envs, 200 ticks): 9.7-10.6 ghost steps per env, intensity 1.5-2.0 each.
    # Why: three agents start with hygiene 0.05-0.3 and one shower; ghost_step_after=1 and a 2-tick
    # protected use mean a waiting agent evicts the occupant every ~3 ticks until all are clean (~30 ticks);
    # afterwards hygiene decays slowly and contention is rare. The range below allows for seed spread.
    cfg = load_world_config("queue_conflict", {"num_envs": 8})
    events, faints, _ = _run(cfg, seed=11, ticks=200)
    per_env = events["queue_conflict_events"] / cfg.num_envs
    assert 6.0 <= per_env <= 16.0
    mean_intensity = events["queue_conflict_intensity_sum"] / events["queue_conflict_events"]
    assert 1.5 <= mean_intensity <= 2.0  # queue of 1-2 waiting agents: 1.5 + 0.25 * (len - 1)
    assert faints == 0


def test_scripted_teacher_keeps_agents_alive_and_rewards_vary() -> None:
    # Measured with seeds 0-4 (16 envs x 4 agents, a full 400-tick episode): 0 faints.
    # Bound: < 1 faint per 2,000 agent-ticks.
    cfg = load_world_config("default", {"num_envs": 8})
    events, faints, rewards = _run(cfg, seed=5, ticks=cfg.episode_length)
    assert faints / (cfg.num_envs * cfg.num_agents * cfg.episode_length) < 5e-4
    # a real learning signal: rewards spread, not pinned at the clip
    assert rewards.std() > 0.005
    assert np.mean(np.abs(rewards) >= cfg.rewards.clip) < 0.01
    assert events["chat_success_events"] > 0


def test_kitchen_breakfast_has_shared_meals() -> None:
    cfg = load_world_config("kitchen_breakfast", {"num_envs": 4})
    events, _, _ = _run(cfg, seed=2, ticks=120)
    assert events["shared_meal_events"] > 0
    assert events["queue_conflict_events"] > 0


def test_employment_produces_shift_events_and_lateness() -> None:
    cfg = load_world_config("employment_punctuality", {"num_envs": 8})
    town = make_town(cfg, 0)
    pol = make_behaviour("scripted", town.spec)
    obs = town.reset()
    takeovers = 0.0
    for _ in range(200):
        res = town.step(pol.act(obs).actions)
        obs = res.obs
        takeovers += float(res.events["shift_takeover_events"].sum())
    assert takeovers > 0
    assert town.shifts_due.sum() > 0 and town.shifts_attended.sum() > 0
    assert town.wallet.max() > cfg.initial_wallet - 1.0  # wages were paid


@pytest.mark.parametrize(
    "name", ["default", "queue_conflict", "kitchen_breakfast", "employment_punctuality", "large"]
)
def test_every_scenario_loads(name: str) -> None:
    assert name in available_worlds()
    cfg = load_world_config(name)
    town = make_town(cfg, 0)
    obs = town.reset()
    assert obs.maps.shape == (town.n_agents, *town.spec.map_shape)
    assert obs.features.shape == (town.n_agents, town.spec.feature_dim)
    assert np.isfinite(obs.features).all()


def test_large_scenario_is_benchmark_sized() -> None:
    cfg = load_world_config("large")
    assert cfg.width >= 64 and cfg.height >= 64 and cfg.num_envs * cfg.num_agents >= 256


def test_bad_configs_fail_with_the_field_named() -> None:
    with pytest.raises(WorldConfigError, match="not found"):
        load_world_config("no_such_world")
    with pytest.raises(WorldConfigError, match="window"):
        load_world_config("default", {"window": 10})
    with pytest.raises(WorldConfigError, match="num_agents"):
        load_world_config("default", {"num_agents": "abc"})
    with pytest.raises(WorldConfigError, match=r"objects\[0\]"):
        load_world_config("default", {"objects": [{"kind": "fridge", "x": 0, "y": 0}]})
