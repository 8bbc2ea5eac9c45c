"""The plain-Python town: the same rules as :class:`VecTown`, one agent and one object at a time.

It exists to be obviously correct, not fast: the property tests demand that it and the vectorised
town produce identical trajectories (actions, positions, queues, rewards, events, observations), and
the ``sim`` benchmark reports the vectorised speed as a ratio against it. Each rule is spelled out
in the order of docs/world.md; only the static tables and each episode's start state are shared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from townlet.world.config import NEED_NAMES, OBJECT_KINDS, WorldConfig
from townlet.world.features import DIRECTIONS, FEATURE_NAMES, MAP_CHANNELS, build_spec
from townlet.world.layout import JOB_KIND, UNLIMITED, build_layout, initial_agents
from townlet.world.rules import DX, DY, MOVE_ACTIONS
from townlet.world.spec import EVENT_COUNTERS, NUM_ACTIONS, Action, Observation, StepResult


def _greedy(dx: int, dy: int) -> int:
    if dx != 0 and abs(dx) >= abs(dy):
        return 2 if dx > 0 else 3
    if dy != 0:
        return 1 if dy > 0 else 0
    return -1


def _intensity(qlen: int) -> float:
    return min(max(1.5 + 0.25 * max(qlen - 1.0, 0.0), 0.1), 5.0)


def _quality(tr: float, fa: float, rv: float) -> float:
    return min(max(0.5 + 0.2 * tr + 0.1 * fa - 0.2 * rv, 0.1), 1.0)


@dataclass(slots=True)
class _Agent:
    x: int
    y: int
    home: tuple[int, int]
    needs: list[float]
    wallet: float
    occ: int = -1
    use_left: int = 0
    elapsed: int = 0
    q_obj: int = -1
    q_seq: int = 0
    last_action: int = 0
    last_chat: int = 0
    since_term: int = 1 << 40
    arrived: int = -1
    late: bool = False
    lateness: int = 0
    due: int = 0
    attended: int = 0
    nbr: int = -1


class _Env:
    def __init__(
        self, cfg: WorldConfig, seed: int, env: int, episode: int, n_obj: int, stock: list[int]
    ) -> None:
        xs, ys, ns = initial_agents(cfg, seed, env, episode)
        self.agents: list[_Agent] = []
        for i in range(cfg.num_agents):
            x, y = int(xs[i]), int(ys[i])
            self.agents.append(
                _Agent(
                    x=x,
                    y=y,
                    home=(x, y),
                    needs=[float(v) for v in ns[i]],
                    wallet=float(cfg.initial_wallet),
                    last_chat=-int(cfg.social.chat_cooldown),
                )
            )
        self.counter = 0
        self.obj_occ = [-1] * n_obj
        self.stall = [0] * n_obj
        self.stock = list(stock)
        a = cfg.num_agents
        self.trust = [[0.0] * a for _ in range(a)]
        self.fam = [[0.0] * a for _ in range(a)]
        self.riv = [[0.0] * a for _ in range(a)]


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
            _Env(self.cfg, self.seed, e, self.episode, self.n_obj, self.cap) for e in range(self.num_envs)
        ]
        self.tick = 0

    def reset(self) -> Observation:
        self.episode = 0
        self._new_episode()
        self._obs = self._observe()
        return self._obs

    # ------------------------------------------------------------------ helpers
    def _in_window(self, i: int, day: int) -> bool:
        return self.has_job[i] and self.wopen[i] <= day < self.end[i]

    def _tile_obj(self, x: int, y: int) -> int:
        return int(self.lay.tile_obj[y, x])

    def _queue(self, env: _Env, o: int) -> list[int]:
        """Agents queued at o, head first (FIFO by join sequence)."""
        members = [i for i, ag in enumerate(env.agents) if ag.q_obj == o]
        return sorted(members, key=lambda i: env.agents[i].q_seq)

    def _vacate(self, env: _Env, g: int) -> None:
        ag = env.agents[g]
        env.obj_occ[ag.occ] = -1
        env.stall[ag.occ] = 0
        ag.occ, ag.use_left, ag.elapsed = -1, 0, 0

    def _job_events(
        self, e: int, o: int, g: int, h: int, day: int, ev: dict[str, list[float]], smooth: bool
    ) -> None:
        if self.kind[o] != JOB_KIND or self.job_obj[h] != o or not self._in_window(h, day):
            return
        ev["shift_takeover_events"][e] += 1
        grace = self.cfg.employment.grace_ticks
        if smooth and self.has_job[g] and day >= self.end[g] and day > self.start[h] + grace:
            ev["late_help_events"][e] += 1

    def _handover(self, e: int, o: int, g: int, day: int, ev: dict[str, list[float]]) -> None:
        env, qc = self.envs[e], self.cfg.queue
        q = self._queue(env, o)
        if not q:
            return
        h = q[0]
        env.trust[g][h] = min(env.trust[g][h] + qc.handover_trust, 1.0)
        env.trust[h][g] = min(env.trust[h][g] + qc.handover_trust, 1.0)
        env.fam[g][h] = min(env.fam[g][h] + qc.handover_familiarity, 1.0)
        env.fam[h][g] = min(env.fam[h][g] + qc.handover_familiarity, 1.0)
        env.riv[g][h] = max(env.riv[g][h] - qc.handover_rivalry_relief, 0.0)
        env.riv[h][g] = max(env.riv[h][g] - qc.handover_rivalry_relief, 0.0)
        self._job_events(e, o, g, h, day, ev, smooth=True)

    def _enqueue(self, env: _Env, g: int, o: int) -> None:
        env.agents[g].q_obj = o
        env.agents[g].q_seq = env.counter
        env.counter += 1

    def _usable(self, env: _Env, i: int, o: int, day: int) -> bool:
        if self.cap[o] >= 0 and env.stock[o] <= 0:
            return False
        if not env.agents[i].wallet >= self.cost[o]:
            return False
        if self.kind[o] == JOB_KIND:
            return self.job_obj[i] == o and self._in_window(i, day)
        return True

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
            final_obs = self._observe()
            truncated[:] = True
            self.episode += 1
            self._new_episode()
        self._obs = self._observe()
        events = {k: np.array(v, dtype=np.float64) for k, v in ev.items()}
        return StepResult(self._obs, rewards, terminated, truncated, final_obs, events)

    def _step_env(
        self, e: int, acts: list[int], ev: dict[str, list[float]]
    ) -> tuple[list[float], list[bool]]:
        cfg, env = self.cfg, self.envs[e]
        ags, na, t = env.agents, self.num_agents, self.tick
        day = t % cfg.day_length
        social = [0.0] * na
        extra = [0.0] * na
        emp, sc, qc = cfg.employment, cfg.social, cfg.queue
        # 0. job windows open
        if emp.enabled:
            for i, ag in enumerate(ags):
                if self.has_job[i] and self.wopen[i] == day:
                    ag.arrived, ag.late = -1, False
        # 1. chat
        touched: list[tuple[int, int]] = []
        chats = []  # all chats of a tick read the relationships as they were before the tick
        for s in range(na):
            if acts[s] == Action.CHAT:
                tg = ags[s].nbr
                chats.append((s, tg, env.trust[s][tg], env.fam[s][tg], env.riv[s][tg]))
        for s, tg, tr, fa, rv in chats:
            q = _quality(tr, fa, rv)
            ok = ags[tg].occ < 0 and rv < qc.avoid_threshold
            if self.lay.stage >= 1:
                gain = (sc.chat_base + sc.chat_trust_weight * tr + sc.chat_familiarity_weight * fa) * q
                if ok:
                    social[s] += 0.0 if 1.0 - min(ags[s].needs) > sc.chat_max_deficit else gain
                    social[tg] += 0.0 if 1.0 - min(ags[tg].needs) > sc.chat_max_deficit else gain
                else:
                    social[s] += -0.5 * sc.chat_base
                    social[tg] += -0.25 * sc.chat_base
            if ok:
                for a_, b_ in ((s, tg), (tg, s)):
                    env.trust[a_][b_] += sc.chat_trust_gain * q
                    env.fam[a_][b_] += sc.chat_familiarity_gain
                    touched.append((a_, b_))
                ev["chat_success_events"][e] += 1
                ev["chat_quality_sum"][e] += q
            else:
                ev["chat_failure_events"][e] += 1
            ags[s].last_chat = t
        for a_, b_ in touched:
            env.trust[a_][b_] = min(env.trust[a_][b_], 1.0)
            env.fam[a_][b_] = min(env.fam[a_][b_], 1.0)
        # 2. release
        for i, ag in enumerate(ags):
            if acts[i] == Action.RELEASE and ag.q_obj >= 0:
                ag.q_obj = -1
        for i, ag in enumerate(ags):
            if acts[i] == Action.RELEASE and ag.occ >= 0:
                o = ag.occ
                self._vacate(env, i)
                self._handover(e, o, i, day, ev)
        # 3. moves
        for i, ag in enumerate(ags):
            if 1 <= acts[i] <= 4:
                ag.x += int(DX[acts[i]])
                ag.y += int(DY[acts[i]])
                ag.q_obj = -1
        # 4. ongoing uses
        finished = []
        for i, ag in enumerate(ags):
            if ag.occ < 0:
                continue
            o = ag.occ
            if self.need[o] >= 0:
                ag.needs[self.need[o]] = min(ag.needs[self.need[o]] + self.restore[o], 1.0)
            ag.use_left -= 1
            ag.elapsed += 1
            if emp.enabled and self.job_obj[i] == o and self.start[i] <= day < self.end[i]:
                extra[i] += emp.wage * cfg.rewards.wage_scale
                ag.wallet += emp.wage
            if ag.use_left == 0:
                finished.append(i)
        for i in finished:
            o = ags[i].occ
            self._vacate(env, i)
            self._handover(e, o, i, day, ev)
        # 5. USE
        requested = [acts[i] == Action.USE for i in range(na)]
        for i, ag in enumerate(ags):
            if requested[i]:
                o = self._tile_obj(ag.x, ag.y)
                if ag.q_obj != o:
                    self._enqueue(env, i, o)
        if any(requested):
            starts = []
            for o in range(self.n_obj):
                line = self._queue(env, o)
                if line and env.obj_occ[o] < 0 and requested[line[0]]:
                    starts.append((o, line[0]))
            for o, g in starts:
                ag = ags[g]
                env.obj_occ[o] = g
                ag.occ, ag.q_obj, ag.use_left, ag.elapsed = o, -1, self.duration[o], 0
                if self.cap[o] >= 0:
                    env.stock[o] -= 1
                ag.wallet -= self.cost[o]
                env.stall[o] = 0
                if emp.enabled and self.job_obj[g] == o and ag.arrived < 0 and self._in_window(g, day):
                    ag.arrived = t
                    ag.late = day > self.start[g] + emp.grace_ticks
                    if ag.late:
                        ag.lateness += 1
                    else:
                        extra[g] += cfg.rewards.punctuality_bonus
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
                        ev["shared_meal_events"][e] += 1
                        break
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
                line = self._queue(env, o)
                inten = _intensity(len(line))
                ev["queue_conflict_events"][e] += 1
                ev["queue_conflict_intensity_sum"][e] += inten
                h = line[0]
                env.riv[victim][h] = min(env.riv[victim][h] + qc.rivalry_gain * inten, 1.0)
                env.riv[h][victim] = min(env.riv[h][victim] + qc.rivalry_gain * inten, 1.0)
                self._job_events(e, o, victim, h, day, ev, smooth=False)
                self._vacate(env, victim)
                self._enqueue(env, victim, o)
        # 6. decay, restock
        for ag in ags:
            for k in range(3):
                ag.needs[k] = max(ag.needs[k] - cfg.needs.decay[k], 0.0)
        for o in range(self.n_obj):
            if self.cap[o] >= 0 and self.restock[o] > 0 and (t + 1) % self.restock[o] == 0:
                env.stock[o] = min(env.stock[o] + 1, self.cap[o])
        # 7. penalty, faint, respawn
        rc = cfg.rewards
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
                    self._vacate(env, i)
                ag.q_obj = -1
                ag.x, ag.y = ag.home
                ag.needs = [float(cfg.needs.respawn)] * 3
                ag.since_term = 0
        # 8. attendance
        if emp.enabled:
            for i, ag in enumerate(ags):
                if self.has_job[i] and day == self.end[i] - 1:
                    ag.due += 1
                    ag.attended += 1 if ag.arrived >= 0 else 0
        # 9. rivalry fades
        for row in env.riv:
            for j in range(na):
                row[j] = max(row[j] - qc.rivalry_decay, 0.0)
        # 10. rewards
        out = []
        for i, ag in enumerate(ags):
            r = rc.survival - pens[i] + social[i] + extra[i] + (rc.faint_penalty if faints[i] else 0.0)
            if ag.since_term < rc.guard_ticks and r > 0.0:
                r = 0.0
            out.append(min(max(r, -rc.clip), rc.clip))
        for i, ag in enumerate(ags):
            ag.last_action = acts[i]
        return out, faints

    # ------------------------------------------------------------------ observation
    def _observe(self) -> Observation:
        cfg = self.cfg
        w = cfg.window
        r = w // 2
        n = self.n_agents
        maps = np.zeros((n, len(MAP_CHANNELS), w, w), dtype=np.uint8)
        feats = np.zeros((n, len(FEATURE_NAMES)), dtype=np.float32)
        masks = np.zeros((n, NUM_ACTIONS), dtype=bool)
        for e in range(self.num_envs):
            for i in range(self.num_agents):
                k = e * self.num_agents + i
                self._agent_obs(e, i, maps[k], feats[k], masks[k], r)
        return Observation(maps, feats, masks)

    def _agent_obs(self, e: int, i: int, m: np.ndarray, fv: np.ndarray, mk: np.ndarray, r: int) -> None:
        cfg, lay = self.cfg, self.lay
        env = self.envs[e]
        ags, na = env.agents, self.num_agents
        ag = ags[i]
        t = self.tick
        day = t % cfg.day_length
        width, height = lay.width, lay.height
        span = float(width + height)
        thr = cfg.needs.threshold
        # map
        counts: dict[tuple[int, int], int] = {}
        for other in ags:
            counts[(other.x, other.y)] = counts.get((other.x, other.y), 0) + 1
        qlen = [len(self._queue(env, o)) for o in range(self.n_obj)]
        for wy in range(2 * r + 1):
            for wx in range(2 * r + 1):
                gx, gy = ag.x + wx - r, ag.y + wy - r
                if not (0 <= gx < width and 0 <= gy < height) or lay.walls[gy, gx]:
                    m[0, wy, wx] = 1
                    if not (0 <= gx < width and 0 <= gy < height):
                        continue
                o = self._tile_obj(gx, gy)
                if o >= 0:
                    m[1 + self.kind[o], wy, wx] = 1
                    m[7, wy, wx] = 1 if env.obj_occ[o] >= 0 else 0
                    m[8, wy, wx] = min(qlen[o], 255)
                m[6, wy, wx] = min(counts.get((gx, gy), 0), 255)
        # features
        vals: dict[str, float] = {}
        for k, name in enumerate(NEED_NAMES):
            vals[f"need_{name}"] = ag.needs[k]
        vals["needs_ok"] = float(min(ag.needs) >= thr)
        vals["urgent_need"] = min(ag.needs)
        vals["wallet"] = ag.wallet / cfg.wallet_scale
        vals["time_sin"] = float(lay.time_sin[day])
        vals["time_cos"] = float(lay.time_cos[day])
        vals["episode_progress"] = t / cfg.episode_length
        hj = self.has_job[i]
        working = ag.occ >= 0 and hj and ag.occ == self.job_obj[i]
        in_shift = hj and self.start[i] <= day < self.end[i]
        in_window = self._in_window(i, day)
        vals["has_job"] = float(hj)
        vals["working"] = float(working)
        vals["shift_pre"] = float(hj and day < self.start[i])
        vals["shift_on_time"] = float(in_shift and ag.arrived >= 0 and not ag.late)
        vals["shift_late"] = float(in_shift and ag.arrived >= 0 and ag.late)
        vals["shift_absent"] = float(in_shift and ag.arrived < 0)
        vals["shift_post"] = float(hj and day >= self.end[i])
        vals["job_window"] = float(in_window)
        cover = max(int(cfg.employment.cover_ticks), 1)
        vals["shift_overtime"] = (
            min((day - self.end[i] + 1) / cover, 1.0) if working and day >= self.end[i] else 0.0
        )
        vals["lateness_counter"] = min(ag.lateness, 10) / 10.0
        vals["attendance_ratio"] = ag.attended / max(ag.due, 1) if ag.due > 0 else 1.0
        occ = ag.occ
        vals["occupying"] = float(occ >= 0)
        vals["use_remaining"] = (
            ag.use_left / self.duration[occ] if occ >= 0 and self.duration[occ] < UNLIMITED else 0.0
        )
        vals["use_satisfied"] = float(
            occ >= 0 and self.need[occ] >= 0 and ag.needs[self.need[occ]] >= cfg.needs.release
        )
        for k, name in enumerate(OBJECT_KINDS):
            vals[f"occupying_{name}"] = float(occ >= 0 and self.kind[occ] == k)
        # rivals and who is at which object
        rival = [j != i and env.riv[i][j] >= cfg.queue.avoid_threshold for j in range(na)]

        def rival_at(o: int) -> bool:
            return any(rival[j] and (ags[j].q_obj == o or ags[j].occ == o) for j in range(na))

        inq = ag.q_obj >= 0
        if inq:
            q = self._queue(env, ag.q_obj)
            rank = q.index(i)
        vals["in_queue"] = float(inq)
        vals["queue_position"] = rank / na if inq else 0.0
        vals["queue_length"] = qlen[ag.q_obj] / na if inq else 0.0
        vals["queue_is_head"] = float(inq and rank == 0)
        vals["queue_has_rival"] = float(inq and rival_at(ag.q_obj))
        here = self._tile_obj(ag.x, ag.y)
        for k, name in enumerate(OBJECT_KINDS):
            vals[f"here_{name}"] = float(here >= 0 and self.kind[here] == k)
        vals["here_occupied"] = float(here >= 0 and env.obj_occ[here] >= 0)
        vals["here_queue_len"] = qlen[here] / na if here >= 0 else 0.0
        here_usable = here >= 0 and self._usable(env, i, here, day)
        vals["here_usable"] = float(here_usable)
        dist = [abs(self.ox[o] - ag.x) + abs(self.oy[o] - ag.y) for o in range(self.n_obj)]
        for k, name in enumerate(OBJECT_KINDS):
            ids = [o for o in range(self.n_obj) if self.kind[o] == k]
            if not ids:
                vals[f"{name}_dx"], vals[f"{name}_dy"], vals[f"{name}_dist"] = 0.0, 0.0, 1.0
                continue
            b = min(ids, key=lambda o: (dist[o], o))
            vals[f"{name}_dx"] = (self.ox[b] - ag.x) / width
            vals[f"{name}_dy"] = (self.oy[b] - ag.y) / height
            vals[f"{name}_dist"] = dist[b] / span
        # goal
        cands = [
            o
            for o in range(self.n_obj)
            if self.need[o] >= 0
            and ag.needs[self.need[o]] < thr
            and self._usable(env, i, o, day)
            and not rival_at(o)
        ]
        job_goal = in_window and not working
        if job_goal:
            goal = self.job_obj[i]
        elif cands:
            goal = min(cands, key=lambda o: (ag.needs[self.need[o]], dist[o], o))
        else:
            goal = -1
        gdx = self.ox[goal] - ag.x if goal >= 0 else 0
        gdy = self.oy[goal] - ag.y if goal >= 0 else 0
        vals["goal_active"] = float(goal >= 0)
        vals["goal_is_job"] = float(job_goal)
        for k, name in enumerate(NEED_NAMES):
            vals[f"goal_need_{name}"] = float(goal >= 0 and not job_goal and self.need[goal] == k)
        vals["goal_here"] = float(goal >= 0 and abs(gdx) + abs(gdy) == 0)
        vals["goal_dx"] = gdx / width
        vals["goal_dy"] = gdy / height
        vals["goal_dist"] = (abs(gdx) + abs(gdy)) / span if goal >= 0 else 1.0
        gdir = _greedy(gdx, gdy)
        for k, d in enumerate(DIRECTIONS):
            vals[f"goal_dir_{d}"] = float(gdir == k)
        # rivals
        vals["rivalry_max"] = max(env.riv[i])
        vals["rivalry_avoid_count"] = sum(rival) / na
        rivals = [j for j in range(na) if rival[j]]
        amanh = [abs(ags[j].x - ag.x) + abs(ags[j].y - ag.y) for j in range(na)]
        if rivals:
            rv = min(rivals, key=lambda j: (amanh[j], j))
            vals["rival_near"] = float(amanh[rv] <= cfg.social.rival_avoid_radius)
            vals["rival_dist"] = amanh[rv] / span
            rdir = _greedy(ags[rv].x - ag.x, ags[rv].y - ag.y)
        else:
            vals["rival_near"], vals["rival_dist"], rdir = 0.0, 1.0, -1
        for k, d in enumerate(DIRECTIONS):
            vals[f"rival_dir_{d}"] = float(rdir == k)
        cheb = [max(abs(ags[j].x - ag.x), abs(ags[j].y - ag.y)) if j != i else 1 << 40 for j in range(na)]
        near = [j for j in range(na) if cheb[j] <= 1]
        ag.nbr = min(near, key=lambda j: (cheb[j], j)) if near else -1
        vals["neighbour_count"] = len(near) / na
        vals["nearest_agent_distance"] = min(min(cheb) / max(r, 1), 1.0) if na > 1 else 1.0
        vals["neighbour_is_rival"] = float(bool(near) and rival[ag.nbr])
        chat_ready = t - ag.last_chat >= cfg.social.chat_cooldown
        vals["chat_ready"] = float(chat_ready)
        others = max(na - 1, 1)
        vals["social_trust_mean"] = math.fsum(env.trust[i]) / others
        vals["social_trust_max"] = max(env.trust[i])
        vals["social_familiarity_mean"] = math.fsum(env.fam[i]) / others
        vals["social_rivalry_mean"] = math.fsum(env.riv[i]) / others
        for k, name in enumerate(self.spec.action_names):
            vals[f"last_action_{name}"] = float(ag.last_action == k)
        fv[:] = [vals[name] for name in FEATURE_NAMES]
        # mask
        occupying = occ >= 0
        mk[Action.NOOP] = True
        for act in MOVE_ACTIONS:
            nx, ny = ag.x + int(DX[act]), ag.y + int(DY[act])
            mk[act] = not occupying and 0 <= nx < width and 0 <= ny < height and not lay.walls[ny, nx]
        mk[Action.USE] = not occupying and here_usable
        mk[Action.RELEASE] = occupying or inq
        mk[Action.CHAT] = not occupying and chat_ready and bool(near)
