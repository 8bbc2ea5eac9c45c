"""``VecTown.set_social_stage`` switches the chat rewards between ticks without rebuilding the town."""

from __future__ import annotations

import numpy as np
import pytest

from townlet.behaviour.rules import ScriptedPolicy
from townlet.world import make_town
from townlet.world.config import WorldConfigError
from townlet_tools.oracle import OracleTown

from .conftest import small


def test_switched_stage_matches_a_town_built_with_it() -> None:
    # a C1 town switched to OFF must reward exactly like a town configured OFF (chats happen: asserted)
    base = small("default", episode_length=80)
    off = small("default", episode_length=80, social={"stage": "OFF"})
    vec, ora = make_town(base, 4), OracleTown(off, 4)
    vec.set_social_stage("OFF")
    assert vec.social_stage == "OFF"
    pol = ScriptedPolicy(vec.spec, epsilon=0.3, seed=4)
    obs, chats = vec.reset(), 0.0
    ora.reset()
    for _ in range(60):
        acts = pol.act(obs).actions
        rv, ro = vec.step(acts), ora.step(acts)
        assert np.array_equal(rv.rewards, ro.rewards)
        chats += float(rv.events["chat_success_events"].sum() + rv.events["chat_failure_events"].sum())
        obs = rv.obs
    assert chats > 0


def test_stage_changes_rewards_not_state() -> None:
    cfg = small("default", episode_length=80)
    towns = {stage: make_town(cfg, 1) for stage in ("OFF", "C1")}
    for stage, town in towns.items():
        town.set_social_stage(stage)
    pol = ScriptedPolicy(towns["OFF"].spec, epsilon=0.3, seed=1)
    obs = {k: t.reset() for k, t in towns.items()}
    differed = False
    for _ in range(60):
        acts = pol.act(obs["OFF"]).actions
        res = {k: t.step(acts) for k, t in towns.items()}
        assert np.array_equal(res["OFF"].obs.features, res["C1"].obs.features)  # same state either way
        differed |= not np.array_equal(res["OFF"].rewards, res["C1"].rewards)
        obs = {k: r.obs for k, r in res.items()}
    assert differed


def test_unknown_stage_is_refused_with_the_choices() -> None:
    town = make_town(small("default"), 0)
    with pytest.raises(WorldConfigError, match="OFF, C1, C2, C3"):
        town.set_social_stage("C4")
    assert town.social_stage == "C1"
