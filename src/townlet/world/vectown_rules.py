"""One tick of the vectorised town, a method per step of docs/world.md's tick order, with no per-agent
loop; same-cell updates follow the oracle's order, so the two towns agree bit for bit."""

from __future__ import annotations

import numpy as np

from townlet.world.rules import DX, DY, chat_quality, conflict_intensity
from townlet.world.spec import EVENT_COUNTERS, Action
from townlet.world.vectown_state import BIG, FOOD_NEED, TownState

Events = dict[str, np.ndarray]  # counter name -> [E] float64

_IS_MOVE = (DX != 0) | (DY != 0)  # by action id


def _interleave(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[a0, b0, a1, b1, ...]: the order in which paired updates are applied (the oracle's order)."""
    out = np.empty(2 * a.size, dtype=np.result_type(a, b))
    out[0::2] = a
    out[1::2] = b
    return out


class TownRules(TownState):
    """Applies one tick of masked actions to the state arrays (``_apply``)."""

    def _apply(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, Events]:
        """Rewards [E, A], faints [E, A] and event counters of one tick of actions ``a`` [E, A]."""
        ne, na = self.num_envs, self.num_agents
        t = self.tick
        day = t % self.cfg.day_length
        ev = dict(zip(EVENT_COUNTERS, np.zeros((len(EVENT_COUNTERS), ne)), strict=True))  # row views
        social = np.zeros((ne, na))
        extra = np.zeros((ne, na))
        employment = self.cfg.employment.enabled
        if employment:
            self._open_job_windows(day)
        self._chat(a, t, social, ev)
        self._release(a, day, ev)
        self._move(a)
        self._ongoing_uses(day, extra, ev)
        self._use(a, day, extra, ev)
        self._decay_and_restock(t)
        pen, faint = self._faint_and_respawn()
        if employment:
            self._book_attendance(day)
        self._fade_rivalry()
        return self._rewards(pen, social, extra, faint), faint, ev

    # ------------------------------------------------------------------ shared state changes
    def _in_window(self, day: int) -> np.ndarray:
        lay = self.layout
        return lay.has_job & (lay.window_open <= day) & (day < lay.shift_end)

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

    def _handover(self, e: np.ndarray, o: np.ndarray, giver: np.ndarray, day: int, ev: Events) -> None:
        """Relationship and shift effects of a smooth hand-over: the occupant leaves while others queue."""
        qc = self.cfg.queue
        inq = self.q_obj[e] == o[:, None]
        key = np.where(inq, self.q_seq[e], BIG)
        head = key.argmin(axis=1)
        has = inq.any(axis=1)
        if not has.any():
            return
        e, o, g, h = e[has], o[has], giver[has], head[has]
        for i, j in ((g, h), (h, g)):  # both directions; the three tables are independent
            self.trust[e, i, j] = np.minimum(self.trust[e, i, j] + qc.handover_trust, 1.0)
            self.fam[e, i, j] = np.minimum(self.fam[e, i, j] + qc.handover_familiarity, 1.0)
            self.riv[e, i, j] = np.maximum(self.riv[e, i, j] - qc.handover_rivalry_relief, 0.0)
        self._touch_tf(e * self.num_agents + g, e * self.num_agents + h)
        self._job_handover_events(e, o, g, h, day, ev, smooth=True)

    def _job_handover_events(
        self, e: np.ndarray, o: np.ndarray, g: np.ndarray, h: np.ndarray, day: int, ev: Events, smooth: bool
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

    # ------------------------------------------------------------------ the steps of a tick
    def _open_job_windows(self, day: int) -> None:
        """0. A job window opens: forget yesterday's arrival."""
        lay = self.layout
        opening = lay.has_job & (lay.window_open == day)
        self.arrived[:, opening] = -1
        self.late_flag[:, opening] = False

    def _chat(self, a: np.ndarray, t: int, social: np.ndarray, ev: Events) -> None:
        """1. Chats (positions and relationships before anything moves)."""
        e_s, s = np.nonzero(a == Action.CHAT)
        if not e_s.size:
            return
        tgt = self._obs.nbr[e_s, s]
        tr, fa, rv = self.trust[e_s, s, tgt], self.fam[e_s, s, tgt], self.riv[e_s, s, tgt]
        q = chat_quality(tr, fa, rv)
        ok = (self.occ[e_s, tgt] < 0) & (rv < self.cfg.queue.avoid_threshold)
        sc, na = self.cfg.social, self.num_agents
        if self._stage >= 1:  # social reward of speakers and listeners (none for one in too great a need)
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
        if eo.size:  # successful chats raise trust and familiarity both ways (capped at 1 after all of them)
            cells = _interleave((eo * na + so) * na + to, (eo * na + to) * na + so)
            np.add.at(self.trust.reshape(-1), cells, np.repeat(sc.chat_trust_gain * qo, 2))
            self._touch_tf(cells // na)
            np.add.at(self.fam.reshape(-1), cells, np.full(cells.size, sc.chat_familiarity_gain))
            self.trust.reshape(-1)[cells] = np.minimum(self.trust.reshape(-1)[cells], 1.0)
            self.fam.reshape(-1)[cells] = np.minimum(self.fam.reshape(-1)[cells], 1.0)
        self.last_chat[e_s, s] = t
        ne = self.num_envs
        ev["chat_success_events"] += np.bincount(e_s[ok], minlength=ne)
        ev["chat_failure_events"] += np.bincount(e_s[~ok], minlength=ne)
        ev["chat_quality_sum"] += np.bincount(eo, weights=qo, minlength=ne)

    def _release(self, a: np.ndarray, day: int, ev: Events) -> None:
        """2. RELEASE leaves a queue, or leaves the object (hand-over to the queue head)."""
        rel = a == Action.RELEASE
        self.q_obj[rel & (self.q_obj >= 0)] = -1
        e_r, g_r = np.nonzero(rel & (self.occ >= 0))
        if e_r.size:
            o_r = self.occ[e_r, g_r]
            self._vacate(e_r, g_r)
            self._handover(e_r, o_r, g_r, day, ev)

    def _move(self, a: np.ndarray) -> None:
        """3. Moves; walking off a tile drops the queue entry there."""
        self.x += DX[a]
        self.y += DY[a]
        self.q_obj[_IS_MOVE[a]] = -1

    def _ongoing_uses(self, day: int, extra: np.ndarray, ev: Events) -> None:
        """4. Ongoing uses restore needs, pay wages and may finish (hand-over to the queue head)."""
        cfg, lay, emp = self.cfg, self.layout, self.cfg.employment
        e_u, u = np.nonzero(self.occ >= 0)
        if not e_u.size:
            return
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

    def _use(self, a: np.ndarray, day: int, extra: np.ndarray, ev: Events) -> None:
        """5. USE joins the queue here; queue heads start on free objects; blocked requests stall them."""
        req = a == Action.USE
        e_q, r_q = np.nonzero(req)
        if not e_q.size:
            return
        o_here = self.layout.tile_obj[self.y[e_q, r_q], self.x[e_q, r_q]]
        join = self.q_obj[e_q, r_q] != o_here
        self._enqueue(e_q[join], r_q[join], o_here[join])
        inq = self.q_obj[:, :, None] == self._obj_range
        key = np.where(inq, self.q_seq[:, :, None], BIG)
        head = key.argmin(axis=1)  # [E, O]
        has = key[self._env_col, head, self._obj_range] < BIG
        start = has & (self.obj_occ < 0) & req[self._env_col, head]
        e_st, o_st = np.nonzero(start)
        if e_st.size:
            self._start_uses(e_st, o_st, head[e_st, o_st], day, extra, ev)
        # blocked requesters stall the occupied objects they queue for; long stalls ghost-step
        e_b, b = np.nonzero(req & (self.q_obj >= 0))
        if e_b.size:
            qc = self.cfg.queue
            bo = np.zeros((self.num_envs, self.num_objects), dtype=bool)
            bo[e_b, self.q_obj[e_b, b]] = True
            occupied = self.obj_occ >= 0
            self.stall += bo & occupied
            occ_el = np.where(occupied, self.elapsed[self._env_col, np.maximum(self.obj_occ, 0)], -1)
            ghost = bo & occupied & (self.stall >= qc.ghost_step_after) & (occ_el >= qc.cooldown_ticks)
            if ghost.any():
                self._ghost_steps(ghost, day, ev)

    def _start_uses(
        self, e: np.ndarray, o: np.ndarray, g: np.ndarray, day: int, extra: np.ndarray, ev: Events
    ) -> None:
        lay = self.layout
        self.obj_occ[e, o] = g
        self.occ[e, g] = o
        self.q_obj[e, g] = -1
        self.use_left[e, g] = lay.obj_duration[o]
        self.elapsed[e, g] = 0
        self.stock[e, o] -= self._stocked[o]
        self.wallet[e, g] -= lay.obj_cost[o]
        self.stall[e, o] = 0
        if self.cfg.employment.enabled:
            self._arrive(e, o, g, day, extra)
        self._shared_meals(e, o, g, ev)

    def _arrive(self, e: np.ndarray, o: np.ndarray, g: np.ndarray, day: int, extra: np.ndarray) -> None:
        """First start at one's own job site in the window: on time earns the punctuality bonus."""
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

    def _shared_meals(self, e: np.ndarray, o: np.ndarray, g: np.ndarray, ev: Events) -> None:
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

    def _ghost_steps(self, ghost: np.ndarray, day: int, ev: Events) -> None:
        """The occupant of each stalled object is released and re-queued at the tail."""
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

    def _decay_and_restock(self, t: int) -> None:
        """6. Needs decay; fridges restock."""
        lay = self.layout
        self.needs -= self._decay
        np.maximum(self.needs, 0.0, out=self.needs)
        if self._any_restock:
            due = self._restocks & ((t + 1) % np.maximum(lay.obj_restock, 1) == 0)
            if due.any():
                self.stock[:, due] = np.minimum(self.stock[:, due] + 1, lay.obj_stock[due])

    def _faint_and_respawn(self) -> tuple[np.ndarray, np.ndarray]:
        """7. Need penalties [E, A] (before respawn) and faints [E, A]; the fainted respawn at home."""
        cfg, rc = self.cfg, self.cfg.rewards
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
        return pen, faint

    def _book_attendance(self, day: int) -> None:
        """8. Attendance is booked on the last tick of a shift."""
        lay = self.layout
        ending = lay.has_job & (day == lay.shift_end - 1)
        if ending.any():
            self.shifts_due[:, ending] += 1
            self.shifts_attended[:, ending] += self.arrived[:, ending] >= 0

    def _fade_rivalry(self) -> None:
        """9. Rivalry fades (skipped while every rivalry is 0: the result would be the same)."""
        if self._riv_active:
            self.riv -= self.cfg.queue.rivalry_decay
            np.maximum(self.riv, 0.0, out=self.riv)
            self._riv_active = bool(self.riv.any())

    def _rewards(
        self, pen: np.ndarray, social: np.ndarray, extra: np.ndarray, faint: np.ndarray
    ) -> np.ndarray:
        """10. Reward total; no positive reward during the guard after a faint; clipped."""
        rc = self.cfg.rewards
        r = rc.survival - pen + social + extra + faint * rc.faint_penalty
        r = np.where((self.since_term < rc.guard_ticks) & (r > 0.0), 0.0, r)
        np.maximum(r, -rc.clip, out=r)  # = np.clip, without its Python-level overhead
        np.minimum(r, rc.clip, out=r)
        return r
