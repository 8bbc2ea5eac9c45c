"""What a vectorised town is: its static rule tables and the state arrays the tick rules change.

Agent state is [E, A] (needs [E, A, 3]), object state [E, O], relationships [E, A, A] float64."""

from __future__ import annotations

import numpy as np

from townlet.world.config import WorldConfig
from townlet.world.features import build_spec
from townlet.world.layout import JOB_KIND, Layout, build_layout, initial_agents
from townlet.world.observe import ObservationBuilder
from townlet.world.spec import NUM_ACTIONS

BIG = 1 << 40
FOOD_NEED = 0  # hunger: objects restoring it are "meals"


class TownState:
    """``num_envs`` towns of ``num_agents`` agents; agent index = env * num_agents + agent."""

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
        self._stage = self.layout.stage  # index into STAGES; switchable with set_social_stage
        # per-layout constants of the rules; the observation tables live in ObservationBuilder
        lay = self.layout
        self._obs = ObservationBuilder(self.cfg, lay, self.num_envs, self.num_agents)
        self._obj_range = np.arange(self.num_objects)
        self._env_col = np.arange(self.num_envs)[:, None]
        self._mask_rows = np.arange(self.n_agents) * NUM_ACTIONS
        self._food = lay.obj_need == FOOD_NEED
        cheb_oo = np.maximum(
            np.abs(lay.obj_x[:, None] - lay.obj_x[None, :]), np.abs(lay.obj_y[:, None] - lay.obj_y[None, :])
        )
        self._meal_near = (
            (cheb_oo <= 1) & self._food[:, None] & self._food[None, :] & ~np.eye(lay.num_objects, dtype=bool)
        )
        self._obj_is_job = lay.obj_kind == JOB_KIND
        self._stocked = lay.obj_stock >= 0
        self._restocks = self._stocked & (lay.obj_restock > 0)
        self._any_restock = bool(self._restocks.any())
        self._decay = np.asarray(self.cfg.needs.decay, dtype=np.float64)
        self._init_episode()

    def _init_episode(self) -> None:
        e, a, o = self.num_envs, self.num_agents, self.num_objects
        starts = (initial_agents(self.cfg, self.seed, i, self.episode) for i in range(e))
        self.x, self.y, self.needs = map(np.stack, zip(*starts, strict=True))
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
        self._tf_rows: list[np.ndarray] | None = None  # trust/fam rows (env * A + agent) changed; None = all
        self._riv_active = False  # some rivalry is > 0 (else every rival feature has its default)
        self.tick = 0

    def _touch_tf(self, *rows: np.ndarray) -> None:
        """Remember which trust/familiarity rows changed: the observation refreshes only their aggregates."""
        if self._tf_rows is not None:
            self._tf_rows.extend(rows)
