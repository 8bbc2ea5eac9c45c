"""Behaviour policies: the scripted teacher is a deterministic function of the observation."""

from __future__ import annotations

import numpy as np
import pytest

from townlet.behaviour.rules import (
    BehaviourPolicy,
    RandomPolicy,
    ScriptedPolicy,
    UnknownBehaviourError,
    make_behaviour,
)
from townlet.world import Action, Observation, make_town

from .conftest import small


def _observations(name: str, ticks: int = 60) -> list[Observation]:
    town = make_town(small(name, num_envs=4), 1)
    pol = ScriptedPolicy(town.spec, epsilon=0.2, seed=0)
    obs = town.reset()
    out = [obs]
    for _ in range(ticks):
        obs = town.step(pol.act(obs).actions).obs
        out.append(obs)
    return out


def test_teacher_is_a_function_of_the_observation_only() -> None:
    observations = _observations("employment_punctuality")
    spec = make_town(small("default"), 0).spec
    a, b = ScriptedPolicy(spec, seed=1), ScriptedPolicy(spec, seed=2)
    for obs in observations:
        ta = a.act(obs).actions
        assert np.array_equal(ta, b.act(obs).actions)
        # row order does not matter: each agent's action depends on its own row only
        perm = np.random.default_rng(0).permutation(ta.size)
        shuffled = Observation(obs.maps[perm], obs.features[perm], obs.action_mask[perm])
        assert np.array_equal(a.act(shuffled).actions, ta[perm])
        assert obs.action_mask[np.arange(ta.size), ta].all(), "teacher chose a masked action"


def test_teacher_uses_most_of_the_vocabulary() -> None:
    seen = set()
    for name in ("default", "queue_conflict", "employment_punctuality"):
        spec = make_town(small(name), 0).spec
        pol = ScriptedPolicy(spec)
        for obs in _observations(name, ticks=120):
            seen |= set(pol.act(obs).actions.tolist())
    assert {Action.NOOP, Action.USE, Action.CHAT, Action.RELEASE} <= seen
    assert len(seen & {1, 2, 3, 4}) == 4


def test_epsilon_log_probs_are_exact_mixture_probabilities() -> None:
    obs = _observations("default", ticks=5)[-1]
    spec = make_town(small("default"), 0).spec
    eps = 0.25
    out = ScriptedPolicy(spec, epsilon=eps, seed=3).act(obs)
    n_ok = obs.action_mask.sum(axis=1)
    expected = np.where(out.actions == out.teacher_actions, 1 - eps, 0.0) + eps / n_ok
    np.testing.assert_allclose(np.exp(out.log_probs), expected, rtol=1e-6)
    assert obs.action_mask[np.arange(n_ok.size), out.actions].all()
    greedy = ScriptedPolicy(spec).act(obs)
    assert greedy.teacher_actions is not None and out.teacher_actions is not None
    assert np.array_equal(greedy.teacher_actions, out.teacher_actions)
    assert np.all(greedy.log_probs == 0.0)


def test_random_policy_is_uniform_over_the_mask() -> None:
    obs = _observations("default", ticks=3)[-1]
    spec = make_town(small("default"), 0).spec
    pol = RandomPolicy(spec, seed=0)
    counts = np.zeros(obs.action_mask.shape)
    for _ in range(400):
        out = pol.act(obs)
        counts[np.arange(out.actions.size), out.actions] += 1
        np.testing.assert_allclose(out.log_probs, -np.log(obs.action_mask.sum(axis=1)), rtol=1e-6)
    assert not (counts[~obs.action_mask]).any()
    freq = counts / 400
    expected = obs.action_mask / obs.action_mask.sum(axis=1, keepdims=True)
    assert np.abs(freq - expected).max() < 0.12


def test_make_behaviour() -> None:
    spec = make_town(small("default"), 0).spec
    assert isinstance(make_behaviour("scripted", spec), BehaviourPolicy)
    assert isinstance(make_behaviour("random", spec, seed=1), RandomPolicy)
    with pytest.raises(UnknownBehaviourError, match="scripted"):
        make_behaviour("greedy", spec)
