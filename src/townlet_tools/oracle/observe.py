"""Observations of the plain-Python town, one agent at a time: window map, named features, action mask.

Each agent's observation is computed from the town state on its own (queue lengths and tile counts
included), the slow and obvious way, so it can check :class:`townlet.world.observe.ObservationBuilder`.
Features are filled into a dict by name and ordered by ``FEATURE_NAMES`` at the end, so a block never
depends on the column layout. Observing also records each agent's chat target (``nbr``), which the
next tick's chats read.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from townlet.world.config import NEED_NAMES, OBJECT_KINDS
from townlet.world.features import DIRECTIONS, FEATURE_NAMES, MAP_CHANNELS
from townlet.world.layout import UNLIMITED
from townlet.world.rules import DX, DY, MOVE_ACTIONS
from townlet.world.spec import NUM_ACTIONS, Action, Observation
from townlet_tools.oracle.state import OracleAgent, OracleEnv, greedy

if TYPE_CHECKING:
    from collections.abc import Callable

Vals = dict[str, float]
# ``town`` below is the OracleTown; it is typed loosely because town.py imports this module.


def observe(town: Any) -> Observation:
    """The observation of every agent of every env (agent index = env * num_agents + agent)."""
    w = town.cfg.window
    r = w // 2
    n = town.n_agents
    maps = np.zeros((n, len(MAP_CHANNELS), w, w), dtype=np.uint8)
    feats = np.zeros((n, len(FEATURE_NAMES)), dtype=np.float32)
    masks = np.zeros((n, NUM_ACTIONS), dtype=bool)
    for e in range(town.num_envs):
        for i in range(town.num_agents):
            k = e * town.num_agents + i
            _agent_obs(town, e, i, maps[k], feats[k], masks[k], r)
    return Observation(maps, feats, masks)


def _agent_obs(town: Any, e: int, i: int, m: np.ndarray, fv: np.ndarray, mk: np.ndarray, r: int) -> None:
    """Agent i of env e: its map ``m``, feature row ``fv`` and mask row ``mk``, written in place."""
    cfg = town.cfg
    env = town.envs[e]
    ag = env.agents[i]
    t = town.tick
    day = t % cfg.day_length
    qlen = [len(env.queue(o)) for o in range(town.n_obj)]
    _window_map(town, env, ag, m, r, qlen)
    vals: Vals = {}
    _need_and_time_features(town, ag, vals, t, day)
    working, in_window = _shift_features(town, i, ag, vals, day)
    _occupancy_features(town, ag, vals)
    na = town.num_agents
    rival = [j != i and env.riv[i][j] >= cfg.queue.avoid_threshold for j in range(na)]

    def rival_at(o: int) -> bool:
        return any(rival[j] and (env.agents[j].q_obj == o or env.agents[j].occ == o) for j in range(na))

    inq = _queue_features(town, env, i, vals, qlen, rival_at)
    here_usable = _here_features(town, env, i, vals, qlen, day)
    dist = _nearest_object_features(town, ag, vals)
    _goal_features(town, env, i, vals, day, dist, rival_at, job_goal=in_window and not working)
    _rival_features(town, env, i, vals, rival)
    near = _neighbour_features(town, env, i, vals, rival, r)
    chat_ready = t - ag.last_chat >= cfg.social.chat_cooldown
    vals["chat_ready"] = float(chat_ready)
    _social_features(env, i, vals)
    for k, name in enumerate(town.spec.action_names):
        vals[f"last_action_{name}"] = float(ag.last_action == k)
    fv[:] = [vals[name] for name in FEATURE_NAMES]
    _action_mask(town, ag, mk, here_usable, inq, chat_ready and bool(near))


def _window_map(town: Any, env: OracleEnv, ag: OracleAgent, m: np.ndarray, r: int, qlen: list[int]) -> None:
    """Walls (and everything off the grid), object kinds, agent counts, occupancy and queue lengths."""
    lay = town.lay
    width, height = lay.width, lay.height
    counts: dict[tuple[int, int], int] = {}
    for other in env.agents:
        counts[(other.x, other.y)] = counts.get((other.x, other.y), 0) + 1
    for wy in range(2 * r + 1):
        for wx in range(2 * r + 1):
            gx, gy = ag.x + wx - r, ag.y + wy - r
            if not (0 <= gx < width and 0 <= gy < height) or lay.walls[gy, gx]:
                m[0, wy, wx] = 1
                if not (0 <= gx < width and 0 <= gy < height):
                    continue
            o = town.tile_obj(gx, gy)
            if o >= 0:
                m[1 + town.kind[o], wy, wx] = 1
                m[7, wy, wx] = 1 if env.obj_occ[o] >= 0 else 0
                m[8, wy, wx] = min(qlen[o], 255)
            m[6, wy, wx] = min(counts.get((gx, gy), 0), 255)


def _need_and_time_features(town: Any, ag: OracleAgent, vals: Vals, t: int, day: int) -> None:
    cfg, lay = town.cfg, town.lay
    for k, name in enumerate(NEED_NAMES):
        vals[f"need_{name}"] = ag.needs[k]
    vals["needs_ok"] = float(min(ag.needs) >= cfg.needs.threshold)
    vals["urgent_need"] = min(ag.needs)
    vals["wallet"] = ag.wallet / cfg.wallet_scale
    vals["time_sin"] = float(lay.time_sin[day])
    vals["time_cos"] = float(lay.time_cos[day])
    vals["episode_progress"] = t / cfg.episode_length


def _shift_features(town: Any, i: int, ag: OracleAgent, vals: Vals, day: int) -> tuple[bool, bool]:
    """The shift block; returns (working at one's own job site, job window open)."""
    hj = town.has_job[i]
    end = town.end[i]
    working = ag.occ >= 0 and hj and ag.occ == town.job_obj[i]
    in_shift = hj and town.start[i] <= day < end
    in_window = town.in_window(i, day)
    vals["has_job"] = float(hj)
    vals["working"] = float(working)
    vals["shift_pre"] = float(hj and day < town.start[i])
    vals["shift_on_time"] = float(in_shift and ag.arrived >= 0 and not ag.late)
    vals["shift_late"] = float(in_shift and ag.arrived >= 0 and ag.late)
    vals["shift_absent"] = float(in_shift and ag.arrived < 0)
    vals["shift_post"] = float(hj and day >= end)
    vals["job_window"] = float(in_window)
    cover = max(int(town.cfg.employment.cover_ticks), 1)
    vals["shift_overtime"] = min((day - end + 1) / cover, 1.0) if working and day >= end else 0.0
    vals["lateness_counter"] = min(ag.lateness, 10) / 10.0
    vals["attendance_ratio"] = ag.attended / max(ag.due, 1) if ag.due > 0 else 1.0
    return working, in_window


def _occupancy_features(town: Any, ag: OracleAgent, vals: Vals) -> None:
    occ = ag.occ
    vals["occupying"] = float(occ >= 0)
    vals["use_remaining"] = (
        ag.use_left / town.duration[occ] if occ >= 0 and town.duration[occ] < UNLIMITED else 0.0
    )
    vals["use_satisfied"] = float(
        occ >= 0 and town.need[occ] >= 0 and ag.needs[town.need[occ]] >= town.cfg.needs.release
    )
    for k, name in enumerate(OBJECT_KINDS):
        vals[f"occupying_{name}"] = float(occ >= 0 and town.kind[occ] == k)


def _queue_features(
    town: Any, env: OracleEnv, i: int, vals: Vals, qlen: list[int], rival_at: Callable[[int], bool]
) -> bool:
    """The queue block of the queue agent i stands in; returns whether it stands in one."""
    na, ag = town.num_agents, env.agents[i]
    inq = ag.q_obj >= 0
    rank = env.queue(ag.q_obj).index(i) if inq else 0
    vals["in_queue"] = float(inq)
    vals["queue_position"] = rank / na if inq else 0.0
    vals["queue_length"] = qlen[ag.q_obj] / na if inq else 0.0
    vals["queue_is_head"] = float(inq and rank == 0)
    vals["queue_has_rival"] = float(inq and rival_at(ag.q_obj))
    return inq


def _here_features(town: Any, env: OracleEnv, i: int, vals: Vals, qlen: list[int], day: int) -> bool:
    """The object on agent i's tile; returns whether agent i could use it now."""
    ag = env.agents[i]
    here = town.tile_obj(ag.x, ag.y)
    for k, name in enumerate(OBJECT_KINDS):
        vals[f"here_{name}"] = float(here >= 0 and town.kind[here] == k)
    vals["here_occupied"] = float(here >= 0 and env.obj_occ[here] >= 0)
    vals["here_queue_len"] = qlen[here] / town.num_agents if here >= 0 else 0.0
    here_usable = here >= 0 and town.usable(env, i, here, day)
    vals["here_usable"] = float(here_usable)
    return here_usable


def _nearest_object_features(town: Any, ag: OracleAgent, vals: Vals) -> list[int]:
    """Offset to the nearest object of each kind (ties: lowest id); returns every object's distance."""
    width, height = town.lay.width, town.lay.height
    span = float(width + height)
    dist = [abs(town.ox[o] - ag.x) + abs(town.oy[o] - ag.y) for o in range(town.n_obj)]
    for k, name in enumerate(OBJECT_KINDS):
        ids = [o for o in range(town.n_obj) if town.kind[o] == k]
        if not ids:
            vals[f"{name}_dx"], vals[f"{name}_dy"], vals[f"{name}_dist"] = 0.0, 0.0, 1.0
            continue
        b = min(ids, key=lambda o: (dist[o], o))
        vals[f"{name}_dx"] = (town.ox[b] - ag.x) / width
        vals[f"{name}_dy"] = (town.oy[b] - ag.y) / height
        vals[f"{name}_dist"] = dist[b] / span
    return dist


def _goal_features(
    town: Any,
    env: OracleEnv,
    i: int,
    vals: Vals,
    day: int,
    dist: list[int],
    rival_at: Callable[[int], bool],
    job_goal: bool,
) -> None:
    """The goal: one's job site while its window is open and one is not working, else the nearest
    usable, rival-free object restoring the most urgent need below threshold (ties: nearest, lowest id)."""
    ag = env.agents[i]
    thr = town.cfg.needs.threshold
    width, height = town.lay.width, town.lay.height
    span = float(width + height)
    cands = [
        o
        for o in range(town.n_obj)
        if town.need[o] >= 0
        and ag.needs[town.need[o]] < thr
        and town.usable(env, i, o, day)
        and not rival_at(o)
    ]
    if job_goal:
        goal = town.job_obj[i]
    elif cands:
        goal = min(cands, key=lambda o: (ag.needs[town.need[o]], dist[o], o))
    else:
        goal = -1
    gdx = town.ox[goal] - ag.x if goal >= 0 else 0
    gdy = town.oy[goal] - ag.y if goal >= 0 else 0
    vals["goal_active"] = float(goal >= 0)
    vals["goal_is_job"] = float(job_goal)
    for k, name in enumerate(NEED_NAMES):
        vals[f"goal_need_{name}"] = float(goal >= 0 and not job_goal and town.need[goal] == k)
    vals["goal_here"] = float(goal >= 0 and abs(gdx) + abs(gdy) == 0)
    vals["goal_dx"] = gdx / width
    vals["goal_dy"] = gdy / height
    vals["goal_dist"] = (abs(gdx) + abs(gdy)) / span if goal >= 0 else 1.0
    gdir = greedy(gdx, gdy)
    for k, d in enumerate(DIRECTIONS):
        vals[f"goal_dir_{d}"] = float(gdir == k)


def _rival_features(town: Any, env: OracleEnv, i: int, vals: Vals, rival: list[bool]) -> None:
    """Rivalry level and count, and where the nearest rival is (Manhattan; ties: lowest index)."""
    ags, na, ag = env.agents, town.num_agents, env.agents[i]
    span = float(town.lay.width + town.lay.height)
    vals["rivalry_max"] = max(env.riv[i])
    vals["rivalry_avoid_count"] = sum(rival) / na
    rivals = [j for j in range(na) if rival[j]]
    amanh = [abs(ags[j].x - ag.x) + abs(ags[j].y - ag.y) for j in range(na)]
    if rivals:
        rv = min(rivals, key=lambda j: (amanh[j], j))
        vals["rival_near"] = float(amanh[rv] <= town.cfg.social.rival_avoid_radius)
        vals["rival_dist"] = amanh[rv] / span
        rdir = greedy(ags[rv].x - ag.x, ags[rv].y - ag.y)
    else:
        vals["rival_near"], vals["rival_dist"], rdir = 0.0, 1.0, -1
    for k, d in enumerate(DIRECTIONS):
        vals[f"rival_dir_{d}"] = float(rdir == k)


def _neighbour_features(
    town: Any, env: OracleEnv, i: int, vals: Vals, rival: list[bool], r: int
) -> list[int]:
    """Agents within Chebyshev 1; records the nearest as agent i's chat target. Returns the neighbours."""
    ags, na, ag = env.agents, town.num_agents, env.agents[i]
    cheb = [max(abs(ags[j].x - ag.x), abs(ags[j].y - ag.y)) if j != i else 1 << 40 for j in range(na)]
    near = [j for j in range(na) if cheb[j] <= 1]
    ag.nbr = min(near, key=lambda j: (cheb[j], j)) if near else -1
    vals["neighbour_count"] = len(near) / na
    vals["nearest_agent_distance"] = min(min(cheb) / max(r, 1), 1.0) if na > 1 else 1.0
    vals["neighbour_is_rival"] = float(bool(near) and rival[ag.nbr])
    return near


def _social_features(env: OracleEnv, i: int, vals: Vals) -> None:
    others = max(len(env.agents) - 1, 1)
    vals["social_trust_mean"] = math.fsum(env.trust[i]) / others
    vals["social_trust_max"] = max(env.trust[i])
    vals["social_familiarity_mean"] = math.fsum(env.fam[i]) / others
    vals["social_rivalry_mean"] = math.fsum(env.riv[i]) / others


def _action_mask(
    town: Any, ag: OracleAgent, mk: np.ndarray, here_usable: bool, inq: bool, can_chat: bool
) -> None:
    """NOOP always; moves onto free tiles and USE only when not occupying; RELEASE when holding or queued."""
    lay = town.lay
    occupying = ag.occ >= 0
    mk[Action.NOOP] = True
    for act in MOVE_ACTIONS:
        nx, ny = ag.x + int(DX[act]), ag.y + int(DY[act])
        mk[act] = not occupying and 0 <= nx < lay.width and 0 <= ny < lay.height and not lay.walls[ny, nx]
    mk[Action.USE] = not occupying and here_usable
    mk[Action.RELEASE] = occupying or inq
    mk[Action.CHAT] = not occupying and can_chat
