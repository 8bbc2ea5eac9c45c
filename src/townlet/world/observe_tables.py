"""Static observation tables of one town shape (per tile, per tile and object, per offset), so a
tick starts its maps and features with one ``take``."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from townlet.world.config import NEED_NAMES, OBJECT_KINDS, WorldConfig
from townlet.world.features import FEATURE_INDEX, FEATURE_NAMES, MAP_CHANNELS
from townlet.world.layout import JOB_KIND, UNLIMITED, Layout
from townlet.world.rules import DX, DY, MOVE_ACTIONS, greedy_dir
from townlet.world.spec import NUM_ACTIONS, Action

_AGENTS_CH = MAP_CHANNELS.index("agents")  # the dynamic channels: agents, occupied, queue (in this order)
_NF = len(FEATURE_NAMES)
_F = FEATURE_INDEX


class ObservationTables:
    def __init__(self, cfg: WorldConfig, layout: Layout, num_envs: int, num_agents: int) -> None:
        self.cfg, self.lay = cfg, layout
        self.ne, self.na = num_envs, num_agents
        self.no = layout.num_objects
        self.n = num_envs * num_agents
        self.r = cfg.window // 2
        self.any_job = bool(layout.has_job.any())
        self._map_tables()
        self._feature_tables()

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
