"""Maps, features and masks for all agents of a :class:`townlet.world.vectown.VecTown`, in few NumPy
calls per tick (per-call overhead dominates): static tables per tile, per tile and object and per offset
(built once per town shape), then one offset subtraction and one scatter."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from townlet.world.config import NEED_NAMES, OBJECT_KINDS, WorldConfig
from townlet.world.features import FEATURE_INDEX, FEATURE_NAMES, MAP_CHANNELS
from townlet.world.layout import JOB_KIND, UNLIMITED, Layout
from townlet.world.rules import DX, DY, MOVE_ACTIONS, greedy_dir
from townlet.world.spec import NUM_ACTIONS, Action, Observation

BIG32 = 1 << 30  # sentinel distance in the int32 agent-pair tables
_AGENTS_CH = MAP_CHANNELS.index("agents")  # the dynamic channels: agents, occupied, queue (in this order)
_NF = len(FEATURE_NAMES)
_F = FEATURE_INDEX


class ObservationBuilder:
    """Static tables and scratch buffers of one town shape; ``build`` turns a state into an Observation."""

    def __init__(self, cfg: WorldConfig, layout: Layout, num_envs: int, num_agents: int) -> None:
        self.cfg, self.lay = cfg, layout
        self.ne, self.na = num_envs, num_agents
        self.no = layout.num_objects
        self.n = num_envs * num_agents
        self.r = cfg.window // 2
        self.any_job = bool(layout.has_job.any())
        self._map_tables()
        self._feature_tables()
        self.nbr = np.full((num_envs, num_agents), -1, dtype=np.int64)  # chat target of each agent or -1
        self.mask = np.zeros((num_envs, num_agents, NUM_ACTIONS), dtype=bool)
        self._tf_cache = np.zeros((num_envs, num_agents, 3), dtype=np.float64)
        ne, na, no, n = self.ne, self.na, self.no, self.n
        # queue keys (object + 1) * seq_span + join sequence; join sequences restart every episode and
        # grow by at most A per tick, so int32 keys (half the pair-table traffic) usually suffice
        self.seq_span = (int(self.cfg.episode_length) + 1) * na + 1
        self.key_dtype = np.int32 if (no + 2) * self.seq_span < 2**31 else np.int64
        idx = np.arange(n, dtype=np.intp).reshape(ne, na)
        self.base_need = idx * len(NEED_NAMES)  # flat row offsets for picks in [E, A, K] tables
        self.base_agent = idx * na
        self.base_obj = idx * no
        self.base_obj1 = idx * (no + 1)
        self.env_tile = np.arange(ne, dtype=np.intp)[:, None] * (self.lay.width * self.lay.height)
        self.env_obj1 = np.arange(ne, dtype=np.intp)[:, None] * (no + 1)
        self.last_action_col = idx * _NF + _F["last_action_noop"]
        self.diag = np.arange(na)
        self.ones_u8 = np.ones(na, dtype=np.uint8)  # counts over <= 256 agents fit in uint8 (<= A - 1)
        self.d = np.empty((ne, na, na + 2 * no), dtype=np.intp)
        self.cells = np.empty_like(self.d)
        self.ent_val = np.zeros((ne, na + 2 * no), dtype=np.uint8)
        self.vals = np.empty(self.d.shape, dtype=np.uint8)
        self.usable_ext = np.zeros((ne, na, no + 1), dtype=bool)  # column 0: "no object here"
        self.occ_ext = np.zeros((ne, no + 1), dtype=np.uint8)
        # entity position codes: agents' columns are rewritten every tick, objects' never change
        span = 2 * self.pos_off + 1
        ent_pos = np.zeros((ne, na + 2 * no), dtype=np.intp)
        obj_code = self.lay.obj_y * self.pos_stride + self.lay.obj_x
        ent_pos[:, na : na + no] = obj_code + span
        ent_pos[:, na + no :] = obj_code + 2 * span
        self.ent_pos = ent_pos

    def _map_tables(self) -> None:
        lay, w, r = self.lay, 2 * self.r + 1, self.r
        height, width = lay.height, lay.width
        static = np.zeros((_AGENTS_CH, height + 2 * r, width + 2 * r), dtype=np.uint8)
        static[0] = 1  # padding reads as wall
        static[0, r : r + height, r : r + width] = lay.walls
        for o in range(self.no):
            static[1 + lay.obj_kind[o], lay.obj_y[o] + r, lay.obj_x[o] + r] = 1
        view = sliding_window_view(static, (w, w), axis=(1, 2))  # [Cs, H, W, w, w]
        # one contiguous row per tile (dynamic channels left zero): a tick's maps start as one take
        windows = np.zeros((height * width, len(MAP_CHANNELS), w, w), dtype=np.uint8)
        windows[:, :_AGENTS_CH] = view.transpose(1, 2, 0, 3, 4).reshape(-1, _AGENTS_CH, w, w)
        self.static_windows = windows
        # Linear position code pos = y * P + x with P > 2 (W - 1): an offset pos_b - pos_a + OFF in
        # [0, L) decodes to a unique (dx, dy). Object entities add L (occupied) or 2L (queue), so one
        # lookup table maps (kind of entity, offset) to the window cell it writes.
        p = 2 * width
        off = (height - 1) * p + (width - 1)
        span = 2 * off + 1
        v = np.arange(span) - off
        ddy = (v + width) // p
        ddx = v - ddy * p
        seen = (np.abs(ddx) <= r) & (np.abs(ddy) <= r)
        cell = (ddy + r) * w + (ddx + r)
        ww, centre = w * w, r * w + r
        # unseen entities write into the viewer's own centre wall cell (always 0; reset after the scatter)
        self.cell_lut = np.concatenate(
            [np.where(seen, (_AGENTS_CH + k) * ww + cell, centre) for k in range(3)]
        ).astype(np.intp)
        # Chebyshev distances in the narrowest dtype that holds them plus a "self" sentinel: the
        # [E, A, A] neighbour tables are then 4x smaller (cheaper) than int32 ones on usual grids
        cheb_dtype = np.uint8 if max(width, height) < 255 else np.int32
        self.cheb_lut = np.maximum(np.abs(ddx), np.abs(ddy)).astype(cheb_dtype)
        self.cheb_self = np.iinfo(cheb_dtype).max
        self.manh_lut = (np.abs(ddx) + np.abs(ddy)).astype(np.int32)
        self.dx_lut, self.dy_lut = ddx.astype(np.int32), ddy.astype(np.int32)
        self.pos_stride, self.pos_off = p, off
        stride = len(MAP_CHANNELS) * ww
        self.viewer_base = (np.arange(self.n, dtype=np.intp) * stride).reshape(self.ne, self.na, 1)
        tile_mask = np.zeros((height * width, NUM_ACTIONS), dtype=bool)
        tile_mask[:, Action.NOOP] = True
        walk = ~lay.walls
        ys, xs = np.divmod(np.arange(height * width), width)
        for act in MOVE_ACTIONS:
            ny, nx = ys + DY[act], xs + DX[act]
            ok = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
            tile_mask[:, act] = ok & walk[np.clip(ny, 0, height - 1), np.clip(nx, 0, width - 1)]
        self.tile_mask = tile_mask

    def _feature_tables(self) -> None:
        lay, no = self.lay, self.no
        width, height = lay.width, lay.height
        span = float(width + height)
        ty, tx = np.divmod(np.arange(height * width), width)
        tdx = lay.obj_x[None, :] - tx[:, None]  # [T, O]
        tdy = lay.obj_y[None, :] - ty[:, None]
        tman = np.abs(tdx) + np.abs(tdy)
        self.tile_manh = tman.astype(np.int32)
        # per-tile rows: here_<kind>, the nearest object of each kind, defaults of the rival/shift blocks
        rows = np.zeros((height * width, _NF), dtype=np.float32)
        tile_obj = lay.tile_obj.reshape(-1)
        on = tile_obj >= 0
        rows[np.flatnonzero(on), _F["here_fridge"] + lay.obj_kind[tile_obj[on]]] = 1.0
        for k, kind in enumerate(OBJECT_KINDS):
            ids = np.flatnonzero(lay.obj_kind == k)
            c = _F[f"{kind}_dx"]
            if ids.size == 0:
                rows[:, c + 2] = 1.0
                continue
            best = ids[np.argmin(tman[:, ids], axis=1)]  # ties -> lowest object id
            bdx, bdy = lay.obj_x[best] - tx, lay.obj_y[best] - ty
            rows[:, c] = bdx / width
            rows[:, c + 1] = bdy / height
            rows[:, c + 2] = (np.abs(bdx) + np.abs(bdy)) / span
        rows[:, _F["attendance_ratio"]] = 1.0  # no shifts due yet
        rows[:, _F["rival_dist"]] = 1.0  # no rival
        self.tile_rows = rows
        self.tile_obj1 = (tile_obj + 1).astype(np.intp)  # object id + 1 on each tile, 0 = none
        # goal block (goal_active … goal_dir_west) per (tile, goal object); object O = no goal.
        # goal_is_job and goal_need_* follow from the object: job goals are job sites, need goals never are.
        is_job = lay.obj_kind == JOB_KIND
        goal = np.zeros((height * width, no + 1, 13), dtype=np.float32)
        goal[:, :no, 0] = 1.0
        goal[:, :no, 1] = is_job
        for k in range(len(NEED_NAMES)):
            goal[:, :no, 2 + k] = (lay.obj_need == k) & ~is_job
        goal[:, :no, 5] = tman == 0
        goal[:, :no, 6] = tdx / width
        goal[:, :no, 7] = tdy / height
        goal[:, :no, 8] = tman / span
        goal[:, no, 8] = 1.0
        gdir = greedy_dir(tdx, tdy)
        for d in range(4):
            goal[:, :no, 9 + d] = gdir == d
        self.goal_table = goal.reshape(-1, 13)  # row = tile * (O + 1) + goal object
        # occupancy block (occupying … occupying_job_site) per occupied object + 1; row 0 = none.
        # use_remaining and use_satisfied are filled in per tick.
        occ = np.zeros((no + 1, 8), dtype=np.float32)
        occ[1:, 0] = 1.0
        occ[1 + np.arange(no), 3 + lay.obj_kind] = 1.0
        self.occ_table = occ
        finite = lay.obj_duration < UNLIMITED
        self.dur_ext = np.concatenate([[np.inf], np.where(finite, lay.obj_duration, np.inf)])
        restores = lay.obj_need >= 0
        self.release_ext = np.concatenate([[np.inf], np.where(restores, self.cfg.needs.release, np.inf)])
        self.need0_ext = np.concatenate([[0], np.maximum(lay.obj_need, 0)]).astype(np.intp)
        self.need_of_obj = np.maximum(lay.obj_need, 0)
        self.all_restore = bool(restores.all())
        self.restores = restores
        self.obj_is_job = is_job
        self.own_station = (lay.job_obj[:, None] == np.arange(no)[None, :]) & lay.has_job[:, None]  # [A, O]

    def _count_last(self, m: np.ndarray) -> np.ndarray:
        """Number of True along the last (agent) axis; a uint8 matmul beats sum/count_nonzero here."""
        if self.na <= 256:
            return np.matmul(m.view(np.uint8), self.ones_u8)
        return np.count_nonzero(m, axis=-1)

    def build(self, town: Any, riv_active: bool, tf_rows: np.ndarray | None) -> Observation:
        """Observation of ``town``'s state (refreshes ``nbr``/``mask``); ``tf_rows``: rows whose
        trust/familiarity changed (None = all)."""
        cfg, lay = self.cfg, self.lay
        ne, na, no, n = self.ne, self.na, self.no, self.n
        t = int(town.tick)
        day = t % cfg.day_length
        x, y = town.x, town.y
        tile = y * lay.width + x  # [E, A]
        tile_flat = tile.reshape(-1)

        # ---- map: static channels by tile, then one scatter of every (viewer, entity) pair
        maps = np.take(self.static_windows, tile_flat, axis=0)  # fresh [N, C, w, w]
        flat = maps.reshape(-1)
        key = tile + self.env_tile
        count = np.bincount(key.reshape(-1), minlength=ne * lay.width * lay.height)
        ev = self.ent_val
        np.minimum(count.take(key), 255, out=ev[:, :na], casting="unsafe")
        occ_ext = self.occ_ext
        np.greater_equal(town.obj_occ, 0, out=occ_ext[:, 1:])
        ev[:, na : na + no] = occ_ext[:, 1:]
        q1 = town.q_obj + 1
        in_queue = q1 > 0
        qidx = self.env_obj1 + q1
        qext = np.bincount(qidx.reshape(-1), minlength=ne * (no + 1)).reshape(ne, no + 1)
        qext[:, 0] = 0  # agents in no queue
        np.minimum(qext[:, 1:], 255, out=ev[:, na + no :], casting="unsafe")
        ep = self.ent_pos
        me = ep[:, :na]
        np.multiply(y, self.pos_stride, out=me)
        me += x
        d = np.subtract(ep[:, None, :], (me - self.pos_off)[:, :, None], out=self.d)
        cells = np.take(self.cell_lut, d, out=self.cells)
        cells += self.viewer_base
        vals = self.vals
        vals[...] = ev[:, None, :]
        flat[cells] = vals
        maps[:, 0, self.r, self.r] = 0  # the dump cell of unseen entities

        # ---- features: tile rows first, then blocks
        f = np.take(self.tile_rows, tile_flat, axis=0)  # fresh [N, F]
        f3 = f.reshape(ne, na, _NF)
        needs = town.needs
        thr = cfg.needs.threshold
        c = _F["need_hunger"]
        f3[..., c : c + 3] = needs
        min_need = np.minimum(np.minimum(needs[..., 0], needs[..., 1]), needs[..., 2])
        f3[..., _F["needs_ok"]] = min_need >= thr
        f3[..., _F["urgent_need"]] = min_need
        np.divide(town.wallet, cfg.wallet_scale, out=f3[..., _F["wallet"]])
        c = _F["time_sin"]
        f3[..., c : c + 3] = (lay.time_sin[day], lay.time_cos[day], t / cfg.episode_length)
        occupying = town.occ >= 0
        in_window = lay.has_job & (lay.window_open <= day) & (day < lay.shift_end)  # [A]
        working = occupying & (town.occ == lay.job_obj) & lay.has_job
        if self.any_job:
            self._shift_features(f3, town, day, working, in_window)
        # occupancy block
        occ1 = town.occ + 1
        c = _F["occupying"]
        f3[..., c : c + 8] = np.take(self.occ_table, occ1, axis=0)
        np.divide(town.use_left, self.dur_ext.take(occ1), out=f3[..., c + 1])
        level = needs.reshape(-1).take(self.base_need + self.need0_ext.take(occ1))
        np.greater_equal(level, self.release_ext.take(occ1), out=f3[..., c + 2])
        # who may use what: [E, A, O] (column 0 of usable_ext stays False: "no object")
        usable_ext = self.usable_ext
        usable = usable_ext[..., 1:]
        np.greater_equal(town.wallet[:, :, None], lay.obj_cost, out=usable)
        usable &= (town.stock != 0)[:, None, :]  # unlimited stock is -1; stocked objects never go below 0
        if self.any_job:
            usable &= ~self.obj_is_job | (self.own_station & in_window[:, None])
        # the rival matrix [E, A, A] and "a rival is at object o" [E, A, O]; None while nobody is a rival
        rival: np.ndarray | None = None
        rival_at: np.ndarray | None = None
        if riv_active:
            rival = town.riv >= cfg.queue.avoid_threshold
            rival[:, self.diag, self.diag] = False
            if rival.any():
                obj = np.arange(no)
                member = (town.q_obj[:, :, None] == obj) | (town.occ[:, :, None] == obj)
                rival_at = np.matmul(rival.astype(np.float32), member.astype(np.float32)) > 0
            else:
                rival = None
        # queue block
        lo_wide = q1 * self.seq_span
        # rank = number of earlier joiners of the same queue
        qkey: np.ndarray = np.where(in_queue, lo_wide + town.q_seq, -1).astype(self.key_dtype)
        lo: np.ndarray = lo_wide.astype(self.key_dtype)
        rank = self._count_last((qkey[:, None, :] < qkey[:, :, None]) & (qkey[:, None, :] >= lo[:, :, None]))
        c = _F["in_queue"]
        f3[..., c] = in_queue
        np.divide(rank, na, out=f3[..., c + 1])
        np.divide(qext.reshape(-1).take(qidx), na, out=f3[..., c + 2])
        f3[..., c + 3] = in_queue & (rank == 0)
        if rival_at is not None:
            f3[..., c + 4] = in_queue & rival_at.reshape(-1).take(self.base_obj + np.maximum(town.q_obj, 0))
        # the tile the agent stands on
        h1 = self.tile_obj1.take(tile)
        hidx = self.env_obj1 + h1
        f3[..., _F["here_occupied"]] = occ_ext.reshape(-1).take(hidx)
        np.divide(qext.reshape(-1).take(hidx), na, out=f3[..., _F["here_queue_len"]])
        here_usable = usable_ext.reshape(-1).take(self.base_obj1 + h1)
        f3[..., _F["here_usable"]] = here_usable
        # goal: job window first, else the nearest usable, rival-free object of the most urgent need
        # (lowest need value; ties -> nearest object -> lowest object id)
        nv = np.take(needs, self.need_of_obj, axis=2)  # [E, A, O] value of the need each object restores
        cand = usable & (nv < thr)
        if not self.all_restore:
            cand &= self.restores
        if rival_at is not None:
            cand &= ~rival_at
        masked = np.where(cand, nv, np.inf)
        lowest = masked.reshape(-1).take(self.base_obj + masked.argmin(axis=2))  # beats min() on a short axis
        manh = np.take(self.tile_manh, tile, axis=0)  # [E, A, O]
        need_obj = np.where(masked == lowest[:, :, None], manh, BIG32).argmin(axis=2)
        slot = np.where(lowest < np.inf, need_obj, no)
        if self.any_job:
            slot = np.where(in_window & ~working, lay.job_obj, slot)
        c = _F["goal_active"]
        f3[..., c : c + 13] = np.take(self.goal_table, tile * (no + 1) + slot, axis=0)
        # neighbours (agent-pair offsets are the first A entities of d)
        da = d[:, :, :na]
        cheb = self.cheb_lut.take(da)
        cheb[:, self.diag, self.diag] = self.cheb_self
        nbr = cheb.argmin(axis=2)  # nearest other agent, ties -> lowest index
        ncheb = cheb.reshape(-1).take(self.base_agent + nbr)
        has_nbr = ncheb <= 1
        np.copyto(self.nbr, np.where(has_nbr, nbr, -1))
        if riv_active:
            f3[..., _F["rivalry_max"]] = town.riv.max(axis=2)
        if rival is not None:  # the rival block and neighbour_is_rival
            span = float(lay.width + lay.height)
            c = _F["rivalry_max"]
            f3[..., c + 1] = self._count_last(rival) / na
            amanh = self.manh_lut.take(da)
            rv = np.where(rival, amanh, BIG32).argmin(axis=2)
            has_rival = rival.any(axis=2)
            pick = self.base_agent + rv
            rdist = amanh.reshape(-1).take(pick)
            f3[..., c + 2] = has_rival & (rdist <= self.cfg.social.rival_avoid_radius)
            f3[..., c + 3] = np.where(has_rival, rdist / span, 1.0)
            code = np.take_along_axis(da, rv[:, :, None], axis=2)[:, :, 0]  # pair offset of the nearest rival
            rdir = greedy_dir(self.dx_lut.take(code), self.dy_lut.take(code))
            e, a = np.nonzero(has_rival & (rdir >= 0))
            f3[e, a, c + 4 + rdir[e, a]] = 1.0
            f3[..., _F["neighbour_is_rival"]] = has_nbr & rival.reshape(-1).take(self.base_agent + nbr)
        np.divide(self._count_last(cheb <= 1), na, out=f3[..., _F["neighbour_count"]])
        f3[..., _F["nearest_agent_distance"]] = np.minimum(ncheb / max(self.r, 1), 1.0) if na > 1 else 1.0
        chat_ready = (t - town.last_chat) >= cfg.social.chat_cooldown
        f3[..., _F["chat_ready"]] = chat_ready
        # trust mean/max and familiarity mean change only on chats and hand-overs: refresh those rows
        tf = self._tf_cache.reshape(-1, 3)
        rows = np.arange(tf.shape[0]) if tf_rows is None else tf_rows
        if rows.size:
            trust, fam = town.trust.reshape(-1, na)[rows], town.fam.reshape(-1, na)[rows]
            tf[rows, 0] = trust.sum(axis=1) / max(na - 1, 1)
            tf[rows, 1] = trust.max(axis=1)
            tf[rows, 2] = fam.sum(axis=1) / max(na - 1, 1)
        c = _F["social_trust_mean"]
        f3[..., c : c + 3] = self._tf_cache
        if riv_active:
            f3[..., c + 3] = town.riv.sum(axis=2) / max(na - 1, 1)
        f.reshape(-1)[self.last_action_col + town.last_action] = 1.0

        # ---- action mask
        mask = np.take(self.tile_mask, tile, axis=0)  # NOOP and the wall-free moves, [E, A, 8]
        free = ~occupying
        mask[..., Action.MOVE_NORTH : Action.MOVE_WEST + 1] &= free[:, :, None]
        np.logical_and(free, here_usable, out=mask[..., Action.USE])
        np.logical_or(occupying, in_queue, out=mask[..., Action.RELEASE])
        np.logical_and(free & chat_ready, has_nbr, out=mask[..., Action.CHAT])
        self.mask = mask
        return Observation(maps=maps, features=f, action_mask=mask.reshape(n, NUM_ACTIONS))

    def _shift_features(
        self, f3: np.ndarray, town: Any, day: int, working: np.ndarray, in_window: np.ndarray
    ) -> None:
        """The 11 shift-block features (constant when nobody has a job, then left to the tile rows)."""
        lay = self.lay
        in_shift = lay.has_job & (lay.shift_start <= day) & (day < lay.shift_end)
        arrived = town.arrived >= 0
        late = town.late_flag
        c = _F["has_job"]
        f3[..., c] = lay.has_job
        f3[..., c + 1] = working
        f3[..., c + 2] = lay.has_job & (day < lay.shift_start)
        f3[..., c + 3] = in_shift & arrived & ~late
        f3[..., c + 4] = in_shift & arrived & late
        f3[..., c + 5] = in_shift & ~arrived
        f3[..., c + 6] = lay.has_job & (day >= lay.shift_end)
        f3[..., c + 7] = in_window
        cover = max(int(self.cfg.employment.cover_ticks), 1)
        f3[..., c + 8] = np.where(
            working & (day >= lay.shift_end), np.minimum((day - lay.shift_end + 1) / cover, 1.0), 0.0
        )
        f3[..., c + 9] = np.minimum(town.lateness, 10) / 10.0
        due = town.shifts_due
        f3[..., c + 10] = np.where(due > 0, town.shifts_attended / np.maximum(due, 1), 1.0)
