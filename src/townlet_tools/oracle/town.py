"""The plain-Python town: the same rules as :class:`VecTown`, one agent and one object at a time.

It exists to be obviously correct, not fast: the property tests demand that it and the vectorised
town produce identical trajectories (actions, positions, queues, rewards, events, observations), and
the ``sim`` benchmark reports the vectorised speed as a ratio against it. Each rule is spelled out
in the order of docs/world.md, one method per step of the tick; only the static tables and each
episode's start state are shared. Observations are built by :mod:`townlet_tools.oracle.observe`.
"""

from __future__ import annotations

import numpy as np

from townlet.world.config import WorldConfig
from townlet.world.features import build_spec
from townlet.world.layout import JOB_KIND, build_layout
from townlet.world.rules import DX, DY
from townlet.world.spec import EVENT_COUNTERS, Action, Observation, StepResult
from townlet_tools.oracle.observe import observe
from townlet_tools.oracle.state import OracleEnv, OracleTick, intensity, quality


class OracleTown:
    """Same constructor, ``reset`` and ``step`` as VecTown; returns NumPy arrays of the same layout."""

    def __init__(self, cfg: WorldConfig, seed: int) -> None:
        self.cfg = cfg
        self.seed = int(seed)
        self.lay = build_layout(cfg)
        self.spec = build_spec(cfg)
        self.num_envs, self.num_agents = int(cfg.num_envs), int(cfg.num_agents)
        self.n_agents = self.num_envs * self.num_agents
        self.n_obj = self.lay.num_objects
        lay = self.lay
        self.kind = [int(k) for k in lay.obj_kind]
        self.ox = [int(v) for v in lay.obj_x]
        self.oy = [int(v) for v in lay.obj_y]
        self.need = [int(v) for v in lay.obj_need]
        self.restore = [float(v) for v in lay.obj_restore]
        self.duration = [int(v) for v in lay.obj_duration]
        self.cost = [float(v) for v in lay.obj_cost]
        self.cap = [int(v) for v in lay.obj_stock]
        self.restock = [int(v) for v in lay.obj_restock]
        self.has_job = [bool(v) for v in lay.has_job]
        self.job_obj = [int(v) for v in lay.job_obj]
        self.start = [int(v) for v in lay.shift_start]
        self.end = [int(v) for v in lay.shift_end]
        self.wopen = [int(v) for v in lay.window_open]
        self.tick = 0
        self.episode = 0
        self._new_episode()

    def _new_episode(self) -> None:
        self.envs = [
            OracleEnv(self.cfg, self.seed, e, self.episode, self.n_obj, self.cap)
            for e in range(self.num_envs)
        ]
        self.tick = 0

    def reset(self) -> Observation:
        self.episode = 0
        self._new_episode()
        self._obs = observe(self)
        return self._obs

    # ------------------------------------------------------------------ queries (also used to observe)
    def in_window(self, i: int, day: int) -> bool:
        """Agent i's job window (arrival buffer + shift) is open at tick-of-day ``day``."""
        return self.has_job[i] and self.wopen[i] <= day < self.end[i]

    def tile_obj(self, x: int, y: int) -> int:
        return int(self.lay.tile_obj[y, x])

    def usable(self, env: OracleEnv, i: int, o: int, day: int) -> bool:
        """Agent i could start using object o now: in stock, affordable, and its own job site in window."""
        if self.cap[o] >= 0 and env.stock[o] <= 0:
            return False
        if not env.agents[i].wallet >= self.cost[o]:
            return False
        if self.kind[o] == JOB_KIND:
            return self.job_obj[i] == o and self.in_window(i, day)
        return True

    # ------------------------------------------------------------------ state changes
    def _job_events(self, k: OracleTick, o: int, g: int, h: int, smooth: bool) -> None:
        if self.kind[o] != JOB_KIND or self.job_obj[h] != o or not self.in_window(h, k.day):
            return
        k.ev["shift_takeover_events"][k.e] += 1
        grace = self.cfg.employment.grace_ticks
        if smooth and self.has_job[g] and k.day >= self.end[g] and k.day > self.start[h] + grace:
            k.ev["late_help_events"][k.e] += 1

    def _handover(self, k: OracleTick, o: int, g: int) -> None:
        env, qc = k.env, self.cfg.queue
        q = env.queue(o)
        if not q:
            return
        h = q[0]
        env.trust[g][h] = min(env.trust[g][h] + qc.handover_trust, 1.0)
        env.trust[h][g] = min(env.trust[h][g] + qc.handover_trust, 1.0)
        env.fam[g][h] = min(env.fam[g][h] + qc.handover_familiarity, 1.0)
        env.fam[h][g] = min(env.fam[h][g] + qc.handover_familiarity, 1.0)
        env.riv[g][h] = max(env.riv[g][h] - qc.handover_rivalry_relief, 0.0)
        env.riv[h][g] = max(env.riv[h][g] - qc.handover_rivalry_relief, 0.0)
        self._job_events(k, o, g, h, smooth=True)

    # ------------------------------------------------------------------ step
    def step(self, actions: np.ndarray) -> StepResult:
        cfg = self.cfg
        acts = [int(v) for v in np.asarray(actions).reshape(-1)]
        mask = self._obs.action_mask
        ne, na = self.num_envs, self.num_agents
        ev = {name: [0.0] * ne for name in EVENT_COUNTERS}
        rewards = np.zeros(self.n_agents, dtype=np.float32)
        terminated = np.zeros(self.n_agents, dtype=bool)
        for e in range(ne):
            chosen = []
            for i in range(na):
                a = acts[e * na + i]
                chosen.append(a if mask[e * na + i, a] else 0)
            r, f = self._step_env(e, chosen, ev)
            rewards[e * na : (e + 1) * na] = r
            terminated[e * na : (e + 1) * na] = f
        self.tick += 1
        final_obs = None
        truncated = np.zeros(self.n_agents, dtype=bool)
        if self.tick >= cfg.episode_length:
            final_obs = observe(self)
            truncated[:] = True
            self.episode += 1
            self._new_episode()
        self._obs = observe(self)
        events = {k: np.array(v, dtype=np.float64) for k, v in ev.items()}
        return StepResult(self._obs, rewards, terminated, truncated, final_obs, events)

    def _step_env(
        self, e: int, acts: list[int], ev: dict[str, list[float]]
    ) -> tuple[list[float], list[bool]]:
        na, t = self.num_agents, self.tick
        k = OracleTick(e, self.envs[e], acts, t, t % self.cfg.day_length, ev, [0.0] * na, [0.0] * na)
        employment = self.cfg.employment.enabled
        if employment:
            self._open_job_windows(k)
        self._chat(k)
        self._release(k)
        self._move(k)
        self._ongoing_uses(k)
        self._use(k)
        self._decay_and_restock(k)
        pens, faints = self._faint_and_respawn(k)
        if employment:
            self._book_attendance(k)
        self._fade_rivalry(k)
        out = self._rewards(k, pens, faints)
        for i, ag in enumerate(k.env.agents):
            ag.last_action = acts[i]
        return out, faints

    def _open_job_windows(self, k: OracleTick) -> None:
        """0. A job window opens: forget yesterday's arrival."""
        for i, ag in enumerate(k.env.agents):
            if self.has_job[i] and self.wopen[i] == k.day:
                ag.arrived, ag.late = -1, False

    def _chat(self, k: OracleTick) -> None:
        """1. Chats; all chats of a tick read the relationships as they were before the tick."""
        env, ags = k.env, k.env.agents
        sc, qc = self.cfg.social, self.cfg.queue
        touched: list[tuple[int, int]] = []
        chats = []
        for s in range(self.num_agents):
            if k.acts[s] == Action.CHAT:
                tg = ags[s].nbr
                chats.append((s, tg, env.trust[s][tg], env.fam[s][tg], env.riv[s][tg]))
        for s, tg, tr, fa, rv in chats:
            q = quality(tr, fa, rv)
            ok = ags[tg].occ < 0 and rv < qc.avoid_threshold
            if self.lay.stage >= 1:
                self._chat_reward(k, s, tg, tr, fa, q, ok)
            if ok:
                for a_, b_ in ((s, tg), (tg, s)):
                    env.trust[a_][b_] += sc.chat_trust_gain * q
                    env.fam[a_][b_] += sc.chat_familiarity_gain
                    touched.append((a_, b_))
                k.ev["chat_success_events"][k.e] += 1
                k.ev["chat_quality_sum"][k.e] += q
            else:
                k.ev["chat_failure_events"][k.e] += 1
            ags[s].last_chat = k.t
        for a_, b_ in touched:
            env.trust[a_][b_] = min(env.trust[a_][b_], 1.0)
            env.fam[a_][b_] = min(env.fam[a_][b_], 1.0)

    def _chat_reward(self, k: OracleTick, s: int, tg: int, tr: float, fa: float, q: float, ok: bool) -> None:
        """Social reward of speaker s and listener tg (none for an agent in too great a need)."""
        sc, ags = self.cfg.social, k.env.agents
        gain = (sc.chat_base + sc.chat_trust_weight * tr + sc.chat_familiarity_weight * fa) * q
        if ok:
            k.social[s] += 0.0 if 1.0 - min(ags[s].needs) > sc.chat_max_deficit else gain
            k.social[tg] += 0.0 if 1.0 - min(ags[tg].needs) > sc.chat_max_deficit else gain
        else:
            k.social[s] += -0.5 * sc.chat_base
            k.social[tg] += -0.25 * sc.chat_base

    def _release(self, k: OracleTick) -> None:
        """2. RELEASE leaves a queue, or leaves the object (hand-over to the queue head)."""
        ags = k.env.agents
        for i, ag in enumerate(ags):
            if k.acts[i] == Action.RELEASE and ag.q_obj >= 0:
                ag.q_obj = -1
        for i, ag in enumerate(ags):
            if k.acts[i] == Action.RELEASE and ag.occ >= 0:
                o = ag.occ
                k.env.vacate(i)
                self._handover(k, o, i)

    def _move(self, k: OracleTick) -> None:
        """3. Moves; walking off a tile drops the queue entry there."""
        for i, ag in enumerate(k.env.agents):
            if 1 <= k.acts[i] <= 4:
                ag.x += int(DX[k.acts[i]])
                ag.y += int(DY[k.acts[i]])
                ag.q_obj = -1

    def _ongoing_uses(self, k: OracleTick) -> None:
        """4. Ongoing uses restore needs, pay wages and may finish (hand-over to the queue head)."""
        cfg, emp, ags = self.cfg, self.cfg.employment, k.env.agents
        finished = []
        for i, ag in enumerate(ags):
            if ag.occ < 0:
                continue
            o = ag.occ
            if self.need[o] >= 0:
                ag.needs[self.need[o]] = min(ag.needs[self.need[o]] + self.restore[o], 1.0)
            ag.use_left -= 1
            ag.elapsed += 1
            if emp.enabled and self.job_obj[i] == o and self.start[i] <= k.day < self.end[i]:
                k.extra[i] += emp.wage * cfg.rewards.wage_scale
                ag.wallet += emp.wage
            if ag.use_left == 0:
                finished.append(i)
        for i in finished:
            o = ags[i].occ
            k.env.vacate(i)
            self._handover(k, o, i)

    def _use(self, k: OracleTick) -> None:
        """5. USE joins the queue here; queue heads start on free objects; blocked requests stall them."""
        ags = k.env.agents
        requested = [k.acts[i] == Action.USE for i in range(self.num_agents)]
        for i, ag in enumerate(ags):
            if requested[i]:
                o = self.tile_obj(ag.x, ag.y)
                if ag.q_obj != o:
                    k.env.enqueue(i, o)
        if any(requested):
            starts = self._start_uses(k, requested)
            self._shared_meals(k, starts)
            self._ghost_steps(k, requested)

    def _start_uses(self, k: OracleTick, requested: list[bool]) -> list[tuple[int, int]]:
        """The head of each free object's queue starts using it if it asked to this tick."""
        env, emp = k.env, self.cfg.employment
        starts = []
        for o in range(self.n_obj):
            line = env.queue(o)
            if line and env.obj_occ[o] < 0 and requested[line[0]]:
                starts.append((o, line[0]))
        for o, g in starts:
            ag = env.agents[g]
            env.obj_occ[o] = g
            ag.occ, ag.q_obj, ag.use_left, ag.elapsed = o, -1, self.duration[o], 0
            if self.cap[o] >= 0:
                env.stock[o] -= 1
            ag.wallet -= self.cost[o]
            env.stall[o] = 0
            if emp.enabled and self.job_obj[g] == o and ag.arrived < 0 and self.in_window(g, k.day):
                self._arrive(k, g)
        return starts

    def _arrive(self, k: OracleTick, g: int) -> None:
        """First start at one's own job site in the window: on time earns the punctuality bonus."""
        ag = k.env.agents[g]
        ag.arrived = k.t
        ag.late = k.day > self.start[g] + self.cfg.employment.grace_ticks
        if ag.late:
            ag.lateness += 1
        else:
            k.extra[g] += self.cfg.rewards.punctuality_bonus

    def _shared_meals(self, k: OracleTick, starts: list[tuple[int, int]]) -> None:
        """A meal started next to (Chebyshev <= 1) another agent's meal in progress is a shared meal."""
        ags = k.env.agents
        for o, g in starts:
            if self.need[o] != 0:
                continue
            for j, other in enumerate(ags):
                eating = j != g and other.occ >= 0 and self.need[other.occ] == 0
                if (
                    eating
                    and abs(self.ox[other.occ] - self.ox[o]) <= 1
                    and abs(self.oy[other.occ] - self.oy[o]) <= 1
                ):
                    k.ev["shared_meal_events"][k.e] += 1
                    break

    def _ghost_steps(self, k: OracleTick, requested: list[bool]) -> None:
        """Requests blocked by an occupant stall its object; a long stall releases and re-queues it."""
        env, ags, qc = k.env, k.env.agents, self.cfg.queue
        blocked_objs = {ag.q_obj for i, ag in enumerate(ags) if requested[i] and ag.q_obj >= 0}
        ghosts = []
        for o in range(self.n_obj):
            if o in blocked_objs and env.obj_occ[o] >= 0:
                env.stall[o] += 1
            occ = env.obj_occ[o]
            stalled = env.stall[o] >= qc.ghost_step_after
            if occ >= 0 and o in blocked_objs and stalled and ags[occ].elapsed >= qc.cooldown_ticks:
                ghosts.append(o)
        for o in ghosts:
            victim = env.obj_occ[o]
            line = env.queue(o)
            inten = intensity(len(line))
            k.ev["queue_conflict_events"][k.e] += 1
            k.ev["queue_conflict_intensity_sum"][k.e] += inten
            h = line[0]
            env.riv[victim][h] = min(env.riv[victim][h] + qc.rivalry_gain * inten, 1.0)
            env.riv[h][victim] = min(env.riv[h][victim] + qc.rivalry_gain * inten, 1.0)
            self._job_events(k, o, victim, h, smooth=False)
            env.vacate(victim)
            env.enqueue(victim, o)

    def _decay_and_restock(self, k: OracleTick) -> None:
        """6. Needs decay; stocked objects restock on their period."""
        env, cfg = k.env, self.cfg
        for ag in env.agents:
            for n in range(3):
                ag.needs[n] = max(ag.needs[n] - cfg.needs.decay[n], 0.0)
        for o in range(self.n_obj):
            if self.cap[o] >= 0 and self.restock[o] > 0 and (k.t + 1) % self.restock[o] == 0:
                env.stock[o] = min(env.stock[o] + 1, self.cap[o])

    def _faint_and_respawn(self, k: OracleTick) -> tuple[list[float], list[bool]]:
        """7. Need penalties (before respawn), faints, and the fainted respawning at home."""
        cfg, rc, ags = self.cfg, self.cfg.rewards, k.env.agents
        w0, w1, w2 = rc.need_weights
        pens, faints = [], []
        for ag in ags:
            d0, d1, d2 = 1.0 - ag.needs[0], 1.0 - ag.needs[1], 1.0 - ag.needs[2]
            pens.append(rc.need_scale * (w0 * d0 * d0 + w1 * d1 * d1 + w2 * d2 * d2))
            faint = ag.needs[0] <= cfg.needs.faint or ag.needs[2] <= cfg.needs.faint
            faints.append(faint)
            ag.since_term += 1
        for i, ag in enumerate(ags):
            if faints[i]:
                if ag.occ >= 0:
                    k.env.vacate(i)
                ag.q_obj = -1
                ag.x, ag.y = ag.home
                ag.needs = [float(cfg.needs.respawn)] * 3
                ag.since_term = 0
        return pens, faints

    def _book_attendance(self, k: OracleTick) -> None:
        """8. Attendance is booked on the last tick of a shift."""
        for i, ag in enumerate(k.env.agents):
            if self.has_job[i] and k.day == self.end[i] - 1:
                ag.due += 1
                ag.attended += 1 if ag.arrived >= 0 else 0

    def _fade_rivalry(self, k: OracleTick) -> None:
        """9. Rivalry fades."""
        decay = self.cfg.queue.rivalry_decay
        for row in k.env.riv:
            for j in range(self.num_agents):
                row[j] = max(row[j] - decay, 0.0)

    def _rewards(self, k: OracleTick, pens: list[float], faints: list[bool]) -> list[float]:
        """10. Reward total; no positive reward during the guard after a faint; clipped."""
        rc = self.cfg.rewards
        out = []
        for i, ag in enumerate(k.env.agents):
            r = rc.survival - pens[i] + k.social[i] + k.extra[i] + (rc.faint_penalty if faints[i] else 0.0)
            if ag.since_term < rc.guard_ticks and r > 0.0:
                r = 0.0
            out.append(min(max(r, -rc.clip), rc.clip))
        return out
