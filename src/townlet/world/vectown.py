"""The vectorised town: ``num_envs`` independent towns x ``num_agents`` agents stepped at once with NumPy.

No per-agent Python loop runs on the hot path: contention for one object is resolved with one-hot
[env, agent, object] tables (the queue head is the arg-min of the join sequence), relationships are
[env, agent, agent] matrices, and observation windows are gathered from a precomputed table of
static windows plus a sliding-window view of a persistent padded map. The plain-Python
:class:`townlet.world.oracle.OracleTown` implements the same rules and is the correctness reference.
The tick order is documented in docs/world.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from townlet.world.config import OBJECT_KINDS, WorldConfig
from townlet.world.features import FEATURE_NAMES, MAP_CHANNELS, build_spec
from townlet.world.layout import JOB_KIND, Layout, build_layout, initial_agents
from townlet.world.rules import DX, DY, chat_quality, conflict_intensity, greedy_dir
from townlet.world.spec import EVENT_COUNTERS, NUM_ACTIONS, Action, Observation, StepResult

BIG = 1 << 40
BIG32 = 1 << 30  # sentinel in the int32 [env, agent, agent] tables
FOOD_NEED = 0  # hunger: objects restoring it are "meals"


class ActionError(ValueError):
    """Actions of the wrong shape or outside the vocabulary."""


class VecTown:
    """Many towns stepped in lock-step; agent index = env * num_agents + agent."""

    def __init__(self, cfg: WorldConfig, seed: int) -> None:
        self.cfg = cfg
        self.seed = int(seed)
        self.layout: Layout = build_layout(cfg)
        self.spec = build_spec(cfg)
        self.num_envs = int(cfg.num_envs)
        self.num_agents = int(cfg.num_agents)
        self.n_agents = self.num_envs * self.num_agents
        self.num_objects = self.layout.num_objects
        self.tick = 0
        self.episode = 0
        self._build_static_tables()
        self._init_episode()
        self._obs_cache: Observation | None = None

    # ------------------------------------------------------------------ setup
    def _build_static_tables(self) -> None:
        lay, w = self.layout, self.cfg.window
        r = w // 2
        self._r = r
        hp, wp = lay.height + 2 * r, lay.width + 2 * r
        static = np.zeros((1 + len(OBJECT_KINDS), hp, wp), dtype=np.uint8)
        static[0] = 1  # padding reads as wall
        static[0, r : r + lay.height, r : r + lay.width] = lay.walls
        for o in range(self.num_objects):
            static[1 + lay.obj_kind[o], lay.obj_y[o] + r, lay.obj_x[o] + r] = 1
        view = sliding_window_view(static, (w, w), axis=(1, 2))  # [Cs, H, W, w, w]
        # one contiguous row per tile (dynamic channels left zero): a window is then a single take
        windows = np.zeros((lay.height * lay.width, len(MAP_CHANNELS), w, w), dtype=np.uint8)
        windows[:, : static.shape[0]] = view.transpose(1, 2, 0, 3, 4).reshape(-1, static.shape[0], w, w)
        self._static_windows = windows
        self._hp, self._wp = hp, wp
        # per-tile static features: offset to the nearest object of each kind (ties -> lowest object id)
        ty, tx = np.divmod(np.arange(lay.height * lay.width), lay.width)
        tdx = lay.obj_x[None, :] - tx[:, None]
        tdy = lay.obj_y[None, :] - ty[:, None]
        tman = np.abs(tdx) + np.abs(tdy)
        kinds = np.arange(len(OBJECT_KINDS))
        penalty = np.where(lay.obj_kind[None, :] == kinds[:, None], 0, BIG)  # [K, O]
        best = (tman[:, None, :] + penalty).argmin(axis=2)  # [T, K]
        exists = (lay.obj_kind[None, :] == kinds[:, None]).any(axis=1)
        bdx = lay.obj_x[best] - tx[:, None]
        bdy = lay.obj_y[best] - ty[:, None]
        span = float(lay.width + lay.height)
        table = np.stack(
            [
                np.where(exists, bdx / lay.width, 0.0),
                np.where(exists, bdy / lay.height, 0.0),
                np.where(exists, (np.abs(bdx) + np.abs(bdy)) / span, 1.0),
            ],
            axis=2,
        )  # [T, K, 3]
        self._tile_kind_features = table.reshape(table.shape[0], -1).astype(np.float32)  # [T, 3K]
        self._tile_manh = tman.astype(np.int32)  # [T, O]
        # goal columns per (tile, goal object); object index O stands for "no goal"
        no = lay.num_objects
        goal = np.zeros((tman.shape[0], no + 1, 8), dtype=np.float32)
        goal[:, :no, 0] = tman == 0
        goal[:, :no, 1] = tdx / lay.width
        goal[:, :no, 2] = tdy / lay.height
        goal[:, :no, 3] = tman / span
        goal[:, no, 3] = 1.0
        gdir = greedy_dir(tdx, tdy)  # [T, O]
        for d in range(4):
            goal[:, :no, 4 + d] = gdir == d
        self._goal_table = goal.reshape(-1, 8)  # row = tile * (O + 1) + goal object
        self._restores = lay.obj_need >= 0
        walk = ~lay.walls
        self._walkable_dir = np.zeros((lay.height, lay.width, 4), dtype=bool)
        for d, act in enumerate((Action.MOVE_NORTH, Action.MOVE_SOUTH, Action.MOVE_EAST, Action.MOVE_WEST)):
            ys, xs = np.mgrid[0 : lay.height, 0 : lay.width]
            ny, nx = ys + DY[act], xs + DX[act]
            ok = (ny >= 0) & (ny < lay.height) & (nx >= 0) & (nx < lay.width)
            self._walkable_dir[..., d] = (
                ok & walk[np.clip(ny, 0, lay.height - 1), np.clip(nx, 0, lay.width - 1)]
            )
        self._obj_range = np.arange(self.num_objects)
        self._env_col = np.arange(self.num_envs)[:, None]
        self._env_flat = np.repeat(np.arange(self.num_envs), self.num_agents)
        self._eye = np.eye(self.num_agents, dtype=bool)[None]
        self._ones = np.ones(self.num_agents)
        self._any_job = bool(lay.has_job.any())
        self._mask_rows = np.arange(self.n_agents) * NUM_ACTIONS
        self._food = lay.obj_need == FOOD_NEED
        cheb_oo = np.maximum(
            np.abs(lay.obj_x[:, None] - lay.obj_x[None, :]), np.abs(lay.obj_y[:, None] - lay.obj_y[None, :])
        )
        self._meal_near = (
            (cheb_oo <= 1) & self._food[:, None] & self._food[None, :] & ~np.eye(lay.num_objects, dtype=bool)
        )
        tile_mask = np.zeros((lay.height * lay.width, NUM_ACTIONS), dtype=bool)
        tile_mask[:, Action.NOOP] = True
        tile_mask[:, Action.MOVE_NORTH : Action.MOVE_WEST + 1] = self._walkable_dir.reshape(-1, 4)
        self._tile_mask = tile_mask
        self._feature_rows = (np.arange(self.n_agents) * len(FEATURE_NAMES)).reshape(
            self.num_envs, self.num_agents
        )
        self._obj_x32 = lay.obj_x.astype(np.int32)
        self._obj_y32 = lay.obj_y.astype(np.int32)
        self._obj_pos = lay.obj_y * w + lay.obj_x  # window-linear positions (see _observe)
        self._diag = np.arange(self.num_agents)
        self._kind_ids = [np.flatnonzero(lay.obj_kind == k) for k in range(len(OBJECT_KINDS))]
        self._obj_is_job = lay.obj_kind == JOB_KIND
        self._stocked = lay.obj_stock >= 0
        self._restocks = self._stocked & (lay.obj_restock > 0)
        self._finite = lay.obj_duration < (1 << 29)
        self._own_station = (lay.job_obj[:, None] == self._obj_range[None, :]) & lay.has_job[
            :, None
        ]  # [A, O]
        self._need_of_obj = np.where(lay.obj_need >= 0, lay.obj_need, 0)
        kinds = np.arange(len(OBJECT_KINDS))

    def _init_episode(self) -> None:
        e, a, o = self.num_envs, self.num_agents, self.num_objects
        xs, ys, ns = zip(
            *(initial_agents(self.cfg, self.seed, i, self.episode) for i in range(e)), strict=True
        )
        self.x = np.stack(xs)
        self.y = np.stack(ys)
        self.needs = np.stack(ns)
        self.home_x = self.x.copy()
        self.home_y = self.y.copy()
        self.wallet = np.full((e, a), float(self.cfg.initial_wallet))
        self.occ = np.full((e, a), -1, dtype=np.int64)
        self.use_left = np.zeros((e, a), dtype=np.int64)
        self.elapsed = np.zeros((e, a), dtype=np.int64)
        self.q_obj = np.full((e, a), -1, dtype=np.int64)
        self.q_seq = np.zeros((e, a), dtype=np.int64)
        self.counter = np.zeros(e, dtype=np.int64)
        self.last_action = np.zeros((e, a), dtype=np.int64)
        self.last_chat = np.full((e, a), -int(self.cfg.social.chat_cooldown), dtype=np.int64)
        self.since_term = np.full((e, a), BIG, dtype=np.int64)
        self.arrived = np.full((e, a), -1, dtype=np.int64)
        self.late_flag = np.zeros((e, a), dtype=bool)
        self.lateness = np.zeros((e, a), dtype=np.int64)
        self.shifts_due = np.zeros((e, a), dtype=np.int64)
        self.shifts_attended = np.zeros((e, a), dtype=np.int64)
        self.obj_occ = np.full((e, o), -1, dtype=np.int64)
        self.stall = np.zeros((e, o), dtype=np.int64)
        self.stock = np.tile(self.layout.obj_stock, (e, 1))
        self.trust = np.zeros((e, a, a))
        self.fam = np.zeros((e, a, a))
        self.riv = np.zeros((e, a, a))
        self._tf_dirty = True  # trust/familiarity aggregates must be recomputed
        self._riv_active = False  # some rivalry is > 0 (else every rival feature has its default)
        self.tick = 0

    # ------------------------------------------------------------------ public API
    def reset(self) -> Observation:
        """Start episode 0 again (same seed -> same town) and return the first observation."""
        self.episode = 0
        self._init_episode()
        self._obs_cache = self._observe()
        return self._obs_cache

    def observe(self) -> Observation:
        """The current observation (built by the last reset/step)."""
        if self._obs_cache is None:
            self._obs_cache = self._observe()
        return self._obs_cache

    def step(self, actions: np.ndarray) -> StepResult:
        """Apply one action per agent (masked ones become NOOP), advance one tick, observe."""
        if self._obs_cache is None:
            self._obs_cache = self._observe()
        act = np.asarray(actions)
        if act.shape != (self.n_agents,):
            raise ActionError(f"step() needs one action per agent: shape ({self.n_agents},), got {act.shape}")
        act = act.astype(np.int64).reshape(self.num_envs, self.num_agents)
        if ((act < 0) | (act >= NUM_ACTIONS)).any():
            raise ActionError(f"action ids must lie in [0, {NUM_ACTIONS}); see townlet.world.spec.Action")
        allowed = self._mask.reshape(-1)[self._mask_rows + act.reshape(-1)].reshape(act.shape)
        a = np.where(allowed, act, 0)
        rewards, terminated, events = self._apply(a)
        self.tick += 1
        self.last_action = a
        final_obs = None
        truncated = np.zeros(self.n_agents, dtype=bool)
        if self.tick >= self.cfg.episode_length:
            final_obs = self._observe()
            truncated[:] = True
            self.episode += 1
            self._init_episode()
        self._obs_cache = self._observe()
        return StepResult(
            obs=self._obs_cache,
            rewards=rewards.reshape(-1).astype(np.float32),
            terminated=terminated.reshape(-1),
            truncated=truncated,
            final_obs=final_obs,
            events=events,
        )

    # ------------------------------------------------------------------ rules
    def _in_window(self, day: int) -> np.ndarray:
        lay = self.layout
        return lay.has_job & (lay.window_open <= day) & (day < lay.shift_end)

    def _handover(
        self, e: np.ndarray, o: np.ndarray, giver: np.ndarray, day: int, ev: dict[str, np.ndarray]
    ) -> None:
        """Relationship and shift effects of a smooth hand-over: the occupant leaves while others queue."""
        if e.size == 0:
            return
        qc = self.cfg.queue
        inq = self.q_obj[e] == o[:, None]
        key = np.where(inq, self.q_seq[e], BIG)
        head = key.argmin(axis=1)
        has = inq.any(axis=1)
        if not has.any():
            return
        e, o, g, h = e[has], o[has], giver[has], head[has]
        self.trust[e, g, h] = np.minimum(self.trust[e, g, h] + qc.handover_trust, 1.0)
        self.trust[e, h, g] = np.minimum(self.trust[e, h, g] + qc.handover_trust, 1.0)
        self.fam[e, g, h] = np.minimum(self.fam[e, g, h] + qc.handover_familiarity, 1.0)
        self.fam[e, h, g] = np.minimum(self.fam[e, h, g] + qc.handover_familiarity, 1.0)
        self.riv[e, g, h] = np.maximum(self.riv[e, g, h] - qc.handover_rivalry_relief, 0.0)
        self.riv[e, h, g] = np.maximum(self.riv[e, h, g] - qc.handover_rivalry_relief, 0.0)
        self._tf_dirty = True
        self._job_handover_events(e, o, g, h, day, ev, smooth=True)

    def _job_handover_events(
        self,
        e: np.ndarray,
        o: np.ndarray,
        g: np.ndarray,
        h: np.ndarray,
        day: int,
        ev: dict[str, np.ndarray],
        smooth: bool,
    ) -> None:
        lay = self.layout
        at_job = self._obj_is_job[o] & (lay.job_obj[h] == o) & self._in_window(day)[h]
        if not at_job.any():
            return
        ev["shift_takeover_events"] += np.bincount(e[at_job], minlength=self.num_envs)
        if smooth:
            grace = self.cfg.employment.grace_ticks
            help_ = at_job & lay.has_job[g] & (day >= lay.shift_end[g]) & (day > lay.shift_start[h] + grace)
            ev["late_help_events"] += np.bincount(e[help_], minlength=self.num_envs)

    def _vacate(self, e: np.ndarray, g: np.ndarray) -> None:
        o = self.occ[e, g]
        self.obj_occ[e, o] = -1
        self.stall[e, o] = 0
        self.occ[e, g] = -1
        self.use_left[e, g] = 0
        self.elapsed[e, g] = 0

    def _enqueue(self, e: np.ndarray, g: np.ndarray, o: np.ndarray) -> None:
        """Append agents to the tail of queues; ``e`` is sorted, order within an env is the given order."""
        if e.size == 0:
            return
        rank = np.arange(e.size) - np.searchsorted(e, e)
        self.q_seq[e, g] = self.counter[e] + rank
        self.q_obj[e, g] = o
        self.counter += np.bincount(e, minlength=self.num_envs)

    def _apply(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        cfg, lay = self.cfg, self.layout
        ne, na = self.num_envs, self.num_agents
        t = self.tick
        day = t % cfg.day_length
        ev = dict(zip(EVENT_COUNTERS, np.zeros((len(EVENT_COUNTERS), ne)), strict=True))  # row views
        social = np.zeros((ne, na))
        extra = np.zeros((ne, na))
        emp = cfg.employment

        # 0. a job window opens: forget yesterday's arrival
        if emp.enabled:
            opening = lay.has_job & (lay.window_open == day)
            self.arrived[:, opening] = -1
            self.late_flag[:, opening] = False

        # 1. chat (positions and relationships before anything moves)
        sc = cfg.social
        e_s, s = np.nonzero(a == Action.CHAT)
        if e_s.size:
            tgt = self._nbr[e_s, s]
            tr, fa, rv = self.trust[e_s, s, tgt], self.fam[e_s, s, tgt], self.riv[e_s, s, tgt]
            q = chat_quality(tr, fa, rv)
            ok = (self.occ[e_s, tgt] < 0) & (rv < cfg.queue.avoid_threshold)
            if lay.stage >= 1:
                base = sc.chat_base + sc.chat_trust_weight * tr + sc.chat_familiarity_weight * fa
                gain = base * q
                ns_, nt_ = self.needs[e_s, s], self.needs[e_s, tgt]
                sp_def = 1.0 - np.minimum(np.minimum(ns_[:, 0], ns_[:, 1]), ns_[:, 2])
                li_def = 1.0 - np.minimum(np.minimum(nt_[:, 0], nt_[:, 1]), nt_[:, 2])
                sp = np.where(ok, np.where(sp_def > sc.chat_max_deficit, 0.0, gain), -0.5 * sc.chat_base)
                li = np.where(ok, np.where(li_def > sc.chat_max_deficit, 0.0, gain), -0.25 * sc.chat_base)
                idx = _interleave(e_s * na + s, e_s * na + tgt)
                np.add.at(social.reshape(-1), idx, _interleave(sp, li))
            eo, so, to, qo = e_s[ok], s[ok], tgt[ok], q[ok]
            if eo.size:
                cells = _interleave((eo * na + so) * na + to, (eo * na + to) * na + so)
                np.add.at(self.trust.reshape(-1), cells, np.repeat(sc.chat_trust_gain * qo, 2))
                self._tf_dirty = True
                np.add.at(self.fam.reshape(-1), cells, np.full(cells.size, sc.chat_familiarity_gain))
                self.trust.reshape(-1)[cells] = np.minimum(self.trust.reshape(-1)[cells], 1.0)
                self.fam.reshape(-1)[cells] = np.minimum(self.fam.reshape(-1)[cells], 1.0)
            self.last_chat[e_s, s] = t
            ev["chat_success_events"] += np.bincount(e_s[ok], minlength=ne)
            ev["chat_failure_events"] += np.bincount(e_s[~ok], minlength=ne)
            ev["chat_quality_sum"] += np.bincount(eo, weights=qo, minlength=ne)

        # 2. release: leave a queue, or leave the object (hand-over to the queue head)
        rel = a == Action.RELEASE
        self.q_obj[rel & (self.q_obj >= 0)] = -1
        e_r, g_r = np.nonzero(rel & (self.occ >= 0))
        if e_r.size:
            o_r = self.occ[e_r, g_r]
            self._vacate(e_r, g_r)
            self._handover(e_r, o_r, g_r, day, ev)

        # 3. moves (walking off a tile drops the queue entry there)
        mv = _IS_MOVE[a]
        self.x += DX[a]
        self.y += DY[a]
        self.q_obj[mv] = -1

        # 4. ongoing uses restore needs, pay wages and may finish
        e_u, u = np.nonzero(self.occ >= 0)
        if e_u.size:
            o_u = self.occ[e_u, u]
            n_u = lay.obj_need[o_u]
            hn = n_u >= 0
            eh, uh, nh = e_u[hn], u[hn], n_u[hn]
            self.needs[eh, uh, nh] = np.minimum(self.needs[eh, uh, nh] + lay.obj_restore[o_u[hn]], 1.0)
            self.use_left[e_u, u] -= 1
            self.elapsed[e_u, u] += 1
            if emp.enabled:
                paid = (lay.job_obj[u] == o_u) & (lay.shift_start[u] <= day) & (day < lay.shift_end[u])
                extra[e_u[paid], u[paid]] += emp.wage * cfg.rewards.wage_scale
                self.wallet[e_u[paid], u[paid]] += emp.wage
            done = self.use_left[e_u, u] == 0
            if done.any():
                ed, gd = e_u[done], u[done]
                od = self.occ[ed, gd]
                self._vacate(ed, gd)
                self._handover(ed, od, gd, day, ev)

        # 5. USE: join the queue, the head starts on a free object, blocked requests stall it
        req = a == Action.USE
        e_q, r_q = np.nonzero(req)
        if e_q.size:
            o_here = lay.tile_obj[self.y[e_q, r_q], self.x[e_q, r_q]]
            join = self.q_obj[e_q, r_q] != o_here
            self._enqueue(e_q[join], r_q[join], o_here[join])
            inq = self.q_obj[:, :, None] == self._obj_range
            key = np.where(inq, self.q_seq[:, :, None], BIG)
            head = key.argmin(axis=1)  # [E, O]
            has = key[self._env_col, head, self._obj_range] < BIG
            start = has & (self.obj_occ < 0) & req[self._env_col, head]
            e_st, o_st = np.nonzero(start)
            if e_st.size:
                g = head[e_st, o_st]
                self.obj_occ[e_st, o_st] = g
                self.occ[e_st, g] = o_st
                self.q_obj[e_st, g] = -1
                self.use_left[e_st, g] = lay.obj_duration[o_st]
                self.elapsed[e_st, g] = 0
                self.stock[e_st, o_st] -= self._stocked[o_st]
                self.wallet[e_st, g] -= lay.obj_cost[o_st]
                self.stall[e_st, o_st] = 0
                if emp.enabled:
                    self._arrive(e_st, o_st, g, day, extra)
                self._shared_meals(e_st, o_st, g, ev)
            blocked = req & (self.q_obj >= 0)
            e_b, b = np.nonzero(blocked)
            if e_b.size:
                bo = np.zeros((ne, self.num_objects), dtype=bool)
                bo[e_b, self.q_obj[e_b, b]] = True
                occupied = self.obj_occ >= 0
                self.stall += bo & occupied
                occ_el = np.where(occupied, self.elapsed[self._env_col, np.maximum(self.obj_occ, 0)], -1)
                ghost = (
                    bo
                    & occupied
                    & (self.stall >= cfg.queue.ghost_step_after)
                    & (occ_el >= cfg.queue.cooldown_ticks)
                )
                if ghost.any():
                    self._ghost_steps(ghost, day, ev)

        # 6. needs decay; fridges restock
        decay = np.asarray(cfg.needs.decay, dtype=np.float64)
        self.needs -= decay
        np.maximum(self.needs, 0.0, out=self.needs)
        if self._restocks.any():
            due = self._restocks & ((t + 1) % np.maximum(lay.obj_restock, 1) == 0)
            if due.any():
                self.stock[:, due] = np.minimum(self.stock[:, due] + 1, lay.obj_stock[due])

        # 7. rewards from needs (before respawn), faint, respawn
        rc = cfg.rewards
        w0, w1, w2 = rc.need_weights
        d = 1.0 - self.needs
        pen = rc.need_scale * (
            w0 * d[..., 0] * d[..., 0] + w1 * d[..., 1] * d[..., 1] + w2 * d[..., 2] * d[..., 2]
        )
        ft = cfg.needs.faint
        faint = (self.needs[..., 0] <= ft) | (self.needs[..., 2] <= ft)
        self.since_term += 1
        if faint.any():
            e_f, f = np.nonzero(faint & (self.occ >= 0))
            if e_f.size:
                self._vacate(e_f, f)
            self.q_obj[faint] = -1
            self.x[faint] = self.home_x[faint]
            self.y[faint] = self.home_y[faint]
            self.needs[faint] = cfg.needs.respawn
            self.since_term[faint] = 0

        # 8. attendance is booked on the last tick of a shift
        if emp.enabled:
            ending = lay.has_job & (day == lay.shift_end - 1)
            if ending.any():
                self.shifts_due[:, ending] += 1
                self.shifts_attended[:, ending] += self.arrived[:, ending] >= 0

        # 9. rivalry fades (skipped while every rivalry is 0: the result would be the same)
        if self._riv_active:
            self.riv = np.maximum(self.riv - cfg.queue.rivalry_decay, 0.0)
            self._riv_active = bool(self.riv.any())

        # 10. reward total, guard after a faint, clip
        r = rc.survival - pen + social + extra + faint * rc.faint_penalty
        r = np.where((self.since_term < rc.guard_ticks) & (r > 0.0), 0.0, r)
        r = np.clip(r, -rc.clip, rc.clip)
        return r, faint, ev

    def _arrive(self, e: np.ndarray, o: np.ndarray, g: np.ndarray, day: int, extra: np.ndarray) -> None:
        lay, emp = self.layout, self.cfg.employment
        first = (lay.job_obj[g] == o) & (self.arrived[e, g] < 0) & self._in_window(day)[g]
        if not first.any():
            return
        e, g = e[first], g[first]
        self.arrived[e, g] = self.tick
        late = day > lay.shift_start[g] + emp.grace_ticks
        self.late_flag[e, g] = late
        self.lateness[e[late], g[late]] += 1
        extra[e[~late], g[~late]] += self.cfg.rewards.punctuality_bonus

    def _shared_meals(self, e: np.ndarray, o: np.ndarray, g: np.ndarray, ev: dict[str, np.ndarray]) -> None:
        """A meal started next to (Chebyshev <= 1) another agent's meal in progress is a shared meal."""
        lay = self.layout
        meal = lay.obj_need[o] == FOOD_NEED
        if not meal.any():
            return
        e, o = e[meal], o[meal]
        # the starter holds o itself, so any other food object next to o that is occupied is another's meal
        eating = (self.obj_occ[e] >= 0) & self._food  # [k, O]
        shared = (eating & self._meal_near[o]).any(axis=1)
        ev["shared_meal_events"] += np.bincount(e[shared], minlength=self.num_envs)

    def _ghost_steps(self, ghost: np.ndarray, day: int, ev: dict[str, np.ndarray]) -> None:
        """The occupant of each stalled object is released and re-queued at the tail (reference §4.5)."""
        qc = self.cfg.queue
        e_g, o_g = np.nonzero(ghost)
        victim = self.obj_occ[e_g, o_g]
        inq = self.q_obj[e_g] == o_g[:, None]
        qlen = inq.sum(axis=1)
        head = np.where(inq, self.q_seq[e_g], BIG).argmin(axis=1)
        inten = conflict_intensity(qlen)
        ev["queue_conflict_events"] += np.bincount(e_g, minlength=self.num_envs)
        ev["queue_conflict_intensity_sum"] += np.bincount(e_g, weights=inten, minlength=self.num_envs)
        self.riv[e_g, victim, head] = np.minimum(self.riv[e_g, victim, head] + qc.rivalry_gain * inten, 1.0)
        self.riv[e_g, head, victim] = np.minimum(self.riv[e_g, head, victim] + qc.rivalry_gain * inten, 1.0)
        self._riv_active = True
        self._job_handover_events(e_g, o_g, victim, head, day, ev, smooth=False)
        self._vacate(e_g, victim)
        self._enqueue(e_g, victim, o_g)

    def _queue_rank(self) -> np.ndarray:
        """Place of every agent in its queue (0 = head): sort by (env, object, join seq), count in groups."""
        n = self.n_agents
        # one int64 key: (env, object) group in the high bits, join sequence (< 2**32) in the low bits
        group = self._env_flat * (self.num_objects + 1) + (self.q_obj.reshape(-1) + 1)
        order = np.argsort((group << 32) + self.q_seq.reshape(-1), kind="stable")
        s_group = group[order]
        new_group = np.ones(n, dtype=bool)
        new_group[1:] = s_group[1:] != s_group[:-1]
        idx = np.arange(n)
        rank = np.empty(n, dtype=np.int64)
        rank[order] = idx - np.maximum.accumulate(idx * new_group)
        return rank.reshape(self.num_envs, self.num_agents)

    def _shift_features(self, put: Any, day: int, working: np.ndarray, in_window: np.ndarray) -> None:
        """The 11 shift-block features, in FEATURE_NAMES order."""
        cfg, lay = self.cfg, self.layout
        ne, na = self.num_envs, self.num_agents
        in_shift = lay.has_job & (lay.shift_start <= day) & (day < lay.shift_end)
        arrived = self.arrived >= 0
        put(np.broadcast_to(lay.has_job, (ne, na)))
        put(working)
        put(lay.has_job & (day < lay.shift_start))
        put(in_shift & arrived & ~self.late_flag)
        put(in_shift & arrived & self.late_flag)
        put(in_shift & ~arrived)
        put(lay.has_job & (day >= lay.shift_end))
        put(np.broadcast_to(in_window, (ne, na)))
        cover = max(int(cfg.employment.cover_ticks), 1)
        put(
            np.where(
                working & (day >= lay.shift_end), np.minimum((day - lay.shift_end + 1) / cover, 1.0), 0.0
            )
        )
        put(np.minimum(self.lateness, 10) / 10.0)
        put(np.where(self.shifts_due > 0, self.shifts_attended / np.maximum(self.shifts_due, 1), 1.0))

    # ------------------------------------------------------------------ observation
    def _observe(self) -> Observation:
        cfg, lay = self.cfg, self.layout
        ne, na = self.num_envs, self.num_agents
        n = self.n_agents
        t = self.tick
        day = t % cfg.day_length
        x, y = self.x, self.y
        ec = self._env_col
        width, height = lay.width, lay.height
        span = float(width + height)

        # ---- map: static windows looked up by tile; agents/occupied/queue scattered by relative offset
        r = self._r
        w = 2 * r + 1
        ww = w * w
        tile = (y * width + x).reshape(-1)
        maps = self._static_windows[tile]  # fresh [N, C, w, w]; dynamic channels are zero here
        flat = maps.reshape(-1)
        stride = len(MAP_CHANNELS) * ww
        # agents: each visible agent's cell gets the head-count of its tile (duplicates write equal values)
        tile_count = np.bincount(
            (self._env_col * (width * height) + y * width + x).reshape(-1), minlength=ne * width * height
        )
        count_of = np.minimum(tile_count[self._env_col * (width * height) + y * width + x], 255).astype(
            np.uint8
        )
        x32, y32 = x.astype(np.int32), y.astype(np.int32)
        adx = x32[:, None, :] - x32[:, :, None]  # [E, A(me), B(other)], int32 keeps these tables small
        ady = y32[:, None, :] - y32[:, :, None]
        abx, aby = np.abs(adx), np.abs(ady)
        seen = (abx <= r) & (aby <= r)
        # Every pair writes, so no boolean compaction is needed: a pair outside the window rewrites the
        # viewer's own centre cell with the value that cell gets anyway (same trick for objects below).
        # Offsets use the window-linear position p = y * w + x (in place, no np.where: both are cheaper).
        pos = y * w + x  # [E, A] int64
        centre = (np.arange(n, dtype=np.intp) * stride + (r * w + r)).reshape(ne, na, 1)
        cells = pos[:, None, :] - pos[:, :, None]
        cells *= seen
        cells += centre + 6 * ww
        vals = count_of[:, None, :] - count_of[:, :, None]  # uint8 arithmetic wraps back exactly
        vals *= seen
        vals += count_of[:, :, None]
        flat[cells] = vals
        queued = self.q_obj >= 0
        qcount = np.bincount(
            (self._env_col * self.num_objects + self.q_obj)[queued], minlength=ne * self.num_objects
        ).reshape(ne, self.num_objects)  # [E, O]
        here = lay.tile_obj[y, x]
        h0 = np.maximum(here, 0)
        on_obj = here >= 0
        occupied_u8 = (self.obj_occ >= 0).astype(np.uint8)  # [E, O]
        queue_u8 = np.minimum(qcount, 255).astype(np.uint8)
        dxo = self._obj_x32 - x32[:, :, None]  # [E, A, O]
        dyo = self._obj_y32 - y32[:, :, None]
        oseen = (np.abs(dxo) <= r) & (np.abs(dyo) <= r)
        ocells = self._obj_pos - pos[:, :, None]
        ocells *= oseen
        ocells += centre + 7 * ww
        here_occ = (occupied_u8[ec, h0] * on_obj).astype(np.uint8)[:, :, None]
        here_q = (queue_u8[ec, h0] * on_obj).astype(np.uint8)[:, :, None]
        ovals = occupied_u8[:, None, :] - here_occ
        ovals *= oseen
        ovals += here_occ
        flat[ocells] = ovals
        ovals = queue_u8[:, None, :] - here_q
        ovals *= oseen
        ovals += here_q
        ocells += ww
        flat[ocells] = ovals

        # ---- shared tables
        occupying = self.occ >= 0
        in_queue = self.q_obj >= 0
        if self._riv_active:
            rival = (self.riv >= cfg.queue.avoid_threshold) & ~self._eye
            any_rival = bool(rival.any())
        else:
            any_rival = False
        if any_rival:
            member = (self.q_obj[:, :, None] == self._obj_range) | (self.occ[:, :, None] == self._obj_range)
            rival_at = np.matmul(rival.astype(np.float32), member.astype(np.float32)) > 0  # [E, A, O]
        else:
            rival_at = np.zeros((ne, na, self.num_objects), dtype=bool)
        in_window = self._in_window(day)
        stock_ok = ~self._stocked | (self.stock > 0)  # [E, O]
        kind_ok = ~self._obj_is_job | (self._own_station & in_window[:, None])  # [A, O]
        usable = stock_ok[:, None, :] & (self.wallet[:, :, None] >= lay.obj_cost)
        if self._any_job:
            usable &= kind_ok[None]
        manh = self._tile_manh[tile].reshape(ne, na, -1)  # [E, A, O] Manhattan distance to each object

        f = np.zeros((ne, na, len(FEATURE_NAMES)), dtype=np.float32)
        f_flat = f.reshape(-1)
        f_rows = self._feature_rows
        col = iter(range(len(FEATURE_NAMES)))

        def put(v: np.ndarray | float) -> None:
            f[..., next(col)] = v

        def put_onehot(v: np.ndarray, k: int) -> None:
            """k columns at once: column j is (v == j); v = -1 gives all zeros (table lookup)."""
            c0 = next(col)
            for _ in range(k - 1):
                next(col)
            hit = v >= 0  # f starts at zero: only the ones are scattered
            f_flat[(f_rows + c0 + v)[hit]] = 1.0

        needs = self.needs
        thr = cfg.needs.threshold
        c0 = next(col)
        next(col), next(col)
        f[..., c0 : c0 + 3] = needs
        min_need = np.minimum(
            np.minimum(needs[..., 0], needs[..., 1]), needs[..., 2]
        )  # faster than min(axis)
        put(min_need >= thr)
        put(min_need)
        put(self.wallet / cfg.wallet_scale)
        put(lay.time_sin[day])
        put(lay.time_cos[day])
        put(t / cfg.episode_length)
        # shift block (constant when nobody has a job)
        working = occupying & (self.occ == lay.job_obj) & lay.has_job
        if not self._any_job:
            for value in (0.0,) * 10 + (1.0,):  # attendance_ratio is 1 with no shifts due
                put(value)
        else:
            self._shift_features(put, day, working, in_window)
        # occupancy block
        occ0 = np.maximum(self.occ, 0)
        put(occupying)
        put(np.where(occupying & self._finite[occ0], self.use_left / lay.obj_duration[occ0], 0.0))
        occ_need = lay.obj_need[occ0]
        level = _pick(needs, np.maximum(occ_need, 0))
        put(occupying & (occ_need >= 0) & (level >= cfg.needs.release))
        occ_kind = np.where(occupying, lay.obj_kind[occ0], -1)
        put_onehot(occ_kind, len(OBJECT_KINDS))
        # queue block
        rank = self._queue_rank()
        q0 = np.maximum(self.q_obj, 0)
        put(in_queue)
        put(np.where(in_queue, rank / na, 0.0))
        put(np.where(in_queue, qcount[ec, q0] / na, 0.0))
        put(in_queue & (rank == 0))
        put(in_queue & _pick(rival_at, q0))
        # the tile the agent stands on
        here_kind = np.where(on_obj, lay.obj_kind[h0], -1)
        put_onehot(here_kind, len(OBJECT_KINDS))
        put(on_obj & (self.obj_occ[ec, h0] >= 0))
        put(np.where(on_obj, qcount[ec, h0] / na, 0.0))
        here_usable = on_obj & _pick(usable, h0)
        put(here_usable)
        # nearest object of each kind
        k0 = next(col)
        nk = self._tile_kind_features.shape[1]
        f[..., k0 : k0 + nk] = self._tile_kind_features[tile].reshape(ne, na, nk)
        for _ in range(nk - 1):
            next(col)
        # goal: job window first, else the nearest usable, rival-free object of the most urgent need
        # (lowest need value; ties -> nearest object -> lowest object id)
        nv = needs[:, :, self._need_of_obj]  # [E, A, O] value of the need each object restores
        cand = usable & (nv < thr) & self._restores
        if any_rival:
            cand &= ~rival_at
        masked = np.where(cand, nv, np.inf)
        lowest = _pick(masked, masked.argmin(axis=2))  # argmin + pick beats min() over a short last axis
        cand &= nv == lowest[:, :, None]
        need_obj = np.where(cand, manh, BIG32).argmin(axis=2)
        job_goal = in_window & ~working
        goal = np.where(job_goal, lay.job_obj, np.where(lowest < np.inf, need_obj, -1))
        active = goal >= 0
        goal_need = np.where(active & ~job_goal, lay.obj_need[np.maximum(goal, 0)], -1)
        put(active)
        put(job_goal)
        put_onehot(goal_need, 3)
        c0 = next(col)
        for _ in range(7):
            next(col)
        # goal_here, goal_dx, goal_dy, goal_dist, goal_dir_{n,s,e,w} from the (tile, object) table
        goal_row = tile.reshape(ne, na) * (self.num_objects + 1) + np.where(active, goal, self.num_objects)
        f[..., c0 : c0 + 8] = self._goal_table[goal_row]
        # rivals
        ones = self._ones
        if self._riv_active:
            put(self.riv.max(axis=2))
        else:
            put(0.0)
        if any_rival:
            put(np.matmul(rival.astype(np.float64), ones) / na)
            amanh = abx + aby
            rv = np.where(rival, amanh, BIG32).argmin(axis=2)
            has_rival = rival.any(axis=2)
            rdist = _pick(amanh, rv)
            put(has_rival & (rdist <= cfg.social.rival_avoid_radius))
            put(np.where(has_rival, rdist / span, 1.0))
            rdir = np.where(has_rival, greedy_dir(_pick(adx, rv), _pick(ady, rv)), -1)
        else:
            put(0.0)
            put(0.0)
            put(1.0)
            rdir = np.full((ne, na), -1)
        put_onehot(rdir, 4)
        # neighbours and chat
        cheb = np.maximum(abx, aby)
        cheb[:, self._diag, self._diag] = BIG32
        near = cheb <= 1
        nbr = cheb.argmin(axis=2)  # nearest other agent, ties -> lowest index
        ncheb = _pick(cheb, nbr)
        has_nbr = ncheb <= 1
        self._nbr = np.where(has_nbr, nbr, -1)
        put(np.matmul(near.astype(np.float64), ones) / na)
        put(np.minimum(ncheb / max(r, 1), 1.0) if na > 1 else 1.0)
        put(has_nbr & _pick(rival, nbr) if any_rival else 0.0)
        chat_ready = (t - self.last_chat) >= cfg.social.chat_cooldown
        put(chat_ready)
        others = max(na - 1, 1)
        if self._tf_dirty:  # trust/familiarity change only on chats and hand-overs
            self._tf_cache = (
                np.matmul(self.trust, ones) / others,
                self.trust.max(axis=2),
                np.matmul(self.fam, ones) / others,
            )
            self._tf_dirty = False
        put(self._tf_cache[0])
        put(self._tf_cache[1])
        put(self._tf_cache[2])
        put(np.matmul(self.riv, ones) / others if self._riv_active else 0.0)
        put_onehot(self.last_action, NUM_ACTIONS)
        features = f.reshape(n, len(FEATURE_NAMES))

        # ---- action mask
        mask = self._tile_mask[tile].reshape(ne, na, NUM_ACTIONS)  # NOOP and the wall-free moves
        mask[occupying, Action.MOVE_NORTH : Action.MOVE_WEST + 1] = False
        mask[..., Action.USE] = ~occupying & here_usable
        mask[..., Action.RELEASE] = occupying | in_queue
        mask[..., Action.CHAT] = ~occupying & chat_ready & has_nbr
        self._mask = mask
        assert maps.shape[1] == len(MAP_CHANNELS)
        return Observation(maps=maps, features=features, action_mask=mask.reshape(n, NUM_ACTIONS))


_IS_MOVE = (DX != 0) | (DY != 0)  # by action id


def _interleave(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[a0, b0, a1, b1, ...]: the order in which paired updates are applied (the oracle's order)."""
    out = np.empty(2 * a.size, dtype=np.result_type(a, b))
    out[0::2] = a
    out[1::2] = b
    return out


def _pick(arr: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """arr[e, a, idx[e, a]] for [E, A, K] tables (cheaper than take_along_axis on small arrays)."""
    k = arr.shape[-1]
    flat = np.arange(idx.size).reshape(idx.shape) * k + idx
    return arr.reshape(-1)[flat]


def make_town(cfg: WorldConfig | Any, seed: int) -> VecTown:
    """Build the vectorised town for ``cfg`` (a WorldConfig, or Hydra's ``world`` node / a dict).

    The same (cfg, seed) always gives the same trajectories.
    """
    from townlet.world.loader import to_world_config

    return VecTown(to_world_config(cfg), seed)
