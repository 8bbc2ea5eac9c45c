"""Property tests of the town's invariants under arbitrary (random, masked and unmasked) actions."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from townlet.world import Action, VecTown, make_town
from townlet.world.rules import DX, DY

from .conftest import small

SCENARIOS = ["default", "queue_conflict", "kitchen_breakfast", "employment_punctuality"]


def _queues(town: VecTown, e: int) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for a in np.argsort(town.q_seq[e], kind="stable"):
        if town.q_obj[e, a] >= 0:
            out.setdefault(int(town.q_obj[e, a]), []).append(int(a))
    return out


def _check_state(town: VecTown) -> None:
    assert np.all((town.needs >= 0.0) & (town.needs <= 1.0)), "needs left [0, 1]"
    for e in range(town.num_envs):
        occ = town.occ[e]
        for o in range(town.num_objects):
            holders = np.flatnonzero(occ == o)
            assert holders.size <= 1, "two occupants on one object"
            assert town.obj_occ[e, o] == (holders[0] if holders.size else -1)
        queued = town.q_obj[e] >= 0
        assert not np.any(queued & (occ >= 0)), "an occupant is also queued"
        seqs = town.q_seq[e][queued]
        assert np.unique(seqs).size == seqs.size, "duplicate queue positions"


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), name=st.sampled_from(SCENARIOS), masked_only=st.booleans())
def test_invariants_hold_under_random_actions(seed: int, name: str, masked_only: bool) -> None:
    town = make_town(small(name, episode_length=60), seed)
    obs = town.reset()
    rng = np.random.default_rng(seed)
    for _ in range(40):
        _check_state(town)
        before = {e: _queues(town, e) for e in range(town.num_envs)}
        mask = obs.action_mask
        if masked_only:
            acts = np.array([rng.choice(np.flatnonzero(m)) for m in mask])
        else:
            acts = rng.integers(0, len(Action), size=town.n_agents)
        occ_before = town.occ.copy()
        res = town.step(acts)
        obs = res.obs
        if res.truncated.any():
            continue
        for e in range(town.num_envs):
            after = _queues(town, e)
            for o, q_old in before[e].items():
                q_new = after.get(o, [])
                kept = [a for a in q_new if a in q_old]
                assert kept == [a for a in q_old if a in kept], "queue order changed (not FIFO)"
                assert q_new[: len(kept)] == kept, "a newcomer overtook a waiting agent"
                starters = np.flatnonzero((town.occ[e] == o) & (occ_before[e] != o))
                for g in starters.tolist():  # nobody who was ahead of the new occupant is still waiting
                    ahead = q_old[: q_old.index(g)] if g in q_old else q_old
                    assert not set(ahead) & set(q_new), "a later agent started before an earlier one"


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), name=st.sampled_from(SCENARIOS))
def test_masks_describe_what_is_possible(seed: int, name: str) -> None:
    town = make_town(small(name), seed)
    obs = town.reset()
    rng = np.random.default_rng(seed)
    lay = town.layout
    for _ in range(30):
        m = obs.action_mask.reshape(town.num_envs, town.num_agents, -1)
        assert m[..., Action.NOOP].all()
        occupying = town.occ >= 0
        for act in (Action.MOVE_NORTH, Action.MOVE_SOUTH, Action.MOVE_EAST, Action.MOVE_WEST):
            ny, nx = town.y + DY[act], town.x + DX[act]
            assert not np.any(m[..., act] & lay.walls[ny, nx]), "a move into a wall is allowed"
            assert not np.any(m[..., act] & occupying), "a busy agent may walk away"
        here = lay.tile_obj[town.y, town.x]
        assert not np.any(m[..., Action.USE] & ((here < 0) | occupying)), "USE allowed off an object"
        assert not np.any(m[..., Action.RELEASE] & ~occupying & (town.q_obj < 0)), "RELEASE with nothing held"
        acts = rng.integers(0, len(Action), size=town.n_agents)
        allowed = obs.action_mask[np.arange(town.n_agents), acts]
        x0, y0 = town.x.reshape(-1).copy(), town.y.reshape(-1).copy()
        res = town.step(acts)
        if res.truncated.any():
            break
        moved = (town.x.reshape(-1) != x0) | (town.y.reshape(-1) != y0)
        respawned = res.terminated
        assert not np.any(moved & ~allowed & ~respawned), "a masked action had an effect"
        obs = res.obs


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), name=st.sampled_from(SCENARIOS))
def test_same_seed_same_trajectory(seed: int, name: str) -> None:
    cfg = small(name, episode_length=25)
    a, b = make_town(cfg, seed), make_town(cfg, seed)
    oa, _ = a.reset(), b.reset()
    rng = np.random.default_rng(seed)
    for _ in range(30):  # crosses an episode boundary
        acts = rng.integers(0, len(Action), size=a.n_agents)
        ra, rb = a.step(acts), b.step(acts)
        for x, y in zip(ra.obs, rb.obs, strict=True):
            assert np.array_equal(x, y)
        assert np.array_equal(ra.rewards, rb.rewards)
        for k in ra.events:
            assert np.array_equal(ra.events[k], rb.events[k])
    other = make_town(cfg, seed + 1).reset()
    assert not np.array_equal(other.features, oa.features) or not np.array_equal(other.maps, oa.maps)


def test_invalid_action_ids_raise_a_clear_error() -> None:
    import pytest

    from townlet.world import ActionError

    town = make_town(small("default"), 0)
    town.reset()
    with pytest.raises(ActionError, match="action ids"):
        town.step(np.full(town.n_agents, 99))
    with pytest.raises(ActionError, match="one action per agent"):
        town.step(np.zeros(3, dtype=np.int64))
