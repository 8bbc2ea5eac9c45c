"""The static part of a town, derived once from a WorldConfig (a bad config fails here, naming the field);
episode starts come from a per-(seed, env, episode) generator, so the oracle can replay them."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from townlet.world.config import NEED_NAMES, OBJECT_KINDS, WorldConfig, WorldConfigError

JOB_KIND = OBJECT_KINDS.index("job_site")
STAGES = ("OFF", "C1", "C2", "C3")
UNLIMITED = 1 << 30  # duration of a use that lasts until released


@dataclass(frozen=True)
class Layout:
    """Static tables; arrays indexed by object id ``o`` or agent slot ``a`` (identical in every env)."""

    width: int
    height: int
    walls: np.ndarray  # bool [H, W]
    tile_obj: np.ndarray  # int64 [H, W], object id on the tile or -1
    obj_kind: np.ndarray  # int64 [O]
    obj_x: np.ndarray  # int64 [O]
    obj_y: np.ndarray  # int64 [O]
    obj_need: np.ndarray  # int64 [O], need index restored or -1
    obj_restore: np.ndarray  # float64 [O]
    obj_duration: np.ndarray  # int64 [O] (UNLIMITED for job sites)
    obj_cost: np.ndarray  # float64 [O]
    obj_stock: np.ndarray  # int64 [O], -1 = unlimited
    obj_restock: np.ndarray  # int64 [O], 0 = never
    has_job: np.ndarray  # bool [A]
    job_obj: np.ndarray  # int64 [A] or -1
    shift_start: np.ndarray  # int64 [A], tick of day
    shift_end: np.ndarray  # int64 [A]
    window_open: np.ndarray  # int64 [A], shift_start - arrival_buffer
    time_sin: np.ndarray  # float64 [day_length]
    time_cos: np.ndarray  # float64 [day_length]
    stage: int  # index into STAGES

    @property
    def num_objects(self) -> int:
        return int(self.obj_kind.shape[0])


def _fail(msg: str) -> None:
    raise WorldConfigError(msg)


def memory_budget() -> int | None:
    """Half this machine's RAM in bytes (None where the OS does not tell): a size past it is refused up
    front, in one line, instead of swapping the machine to a halt."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, ValueError, OSError):
        return None


def _validate(cfg: WorldConfig) -> None:
    """Counts and sizes, one value per need, the social stage and queue settings, the affordances."""
    if cfg.num_envs < 1 or cfg.num_agents < 1:
        _fail(f"world.num_envs={cfg.num_envs} and world.num_agents={cfg.num_agents} must both be >= 1")
    if cfg.width < 3 or cfg.height < 3:
        _fail(f"world.width/height must be >= 3 (the outer ring is wall), got {cfg.width}x{cfg.height}")
    if cfg.window < 1 or cfg.window % 2 == 0:
        _fail(f"world.window={cfg.window} must be a positive odd number (the agent sits in the centre)")
    if cfg.episode_length < 1 or cfg.day_length < 1:
        _fail("world.episode_length and world.day_length must be >= 1")
    _check_size(cfg)
    for name in ("needs.decay", "needs.init_low", "needs.init_high", "rewards.need_weights"):
        group, key = name.split(".")
        if len(getattr(getattr(cfg, group), key)) != len(NEED_NAMES):
            _fail(f"world.{name} needs {len(NEED_NAMES)} values ({', '.join(NEED_NAMES)})")
    if cfg.social.stage not in STAGES:
        _fail(f"world.social.stage={cfg.social.stage!r}; choose one of {', '.join(STAGES)}")
    if cfg.queue.avoid_threshold <= 0:
        _fail("world.queue.avoid_threshold must be > 0 (at 0 every agent would be everyone's rival)")
    if cfg.queue.ghost_step_after < 1:
        _fail("world.queue.ghost_step_after must be >= 1")
    for kind in OBJECT_KINDS:
        if kind not in cfg.affordances:
            _fail(f"world.affordances lacks {kind!r}; every kind in {OBJECT_KINDS} needs an entry")
        aff = cfg.affordances[kind]
        if aff.need not in ("", *NEED_NAMES):
            _fail(f"world.affordances.{kind}.need={aff.need!r}; use one of {NEED_NAMES} or ''")
        if aff.duration < 0:
            _fail(f"world.affordances.{kind}.duration must be >= 0 (0 = until released)")
    emp = cfg.employment
    if emp.enabled and emp.shift_start - emp.arrival_buffer < 0:
        _fail(
            "world.employment: shift_start - arrival_buffer must be >= 0 (shift windows may not wrap the day)"
        )


def _check_size(cfg: WorldConfig) -> None:
    """A rough upper estimate of the towns' state: tiles, agent-to-agent and -object distances, views."""
    objects = len(cfg.objects) + sum(int(n) for n in cfg.object_counts.values())
    agent = (cfg.num_agents + 2 * objects) * 8 + cfg.window**2 * 16
    need = cfg.num_envs * (cfg.width * cfg.height * 8 + cfg.num_agents * agent)
    if (budget := memory_budget()) is not None and need > budget:
        _fail(
            f"a world of {cfg.num_envs} towns of {cfg.width}x{cfg.height} tiles and {cfg.num_agents} agents "
            f"needs about {need / 2**30:.0f} GiB, more than half this machine's memory "
            f"({2 * budget / 2**30:.0f} GiB); choose a smaller world.num_envs, width, height or num_agents"
        )


def _place_extra(cfg: WorldConfig, taken: set[tuple[int, int]]) -> list[tuple[str, int, int]]:
    """Objects from ``object_counts``, put on free interior tiles by a generator seeded with layout_seed."""
    rng = np.random.default_rng(cfg.layout_seed)
    free = [(x, y) for y in range(1, cfg.height - 1) for x in range(1, cfg.width - 1) if (x, y) not in taken]
    total = sum(int(n) for n in cfg.object_counts.values())
    if total > len(free):
        _fail(f"world.object_counts asks for {total} objects but only {len(free)} free tiles exist")
    picks = rng.permutation(len(free))[:total]
    # fixed kind order, independent of dict order
    kinds = [kind for kind in OBJECT_KINDS for _ in range(int(cfg.object_counts.get(kind, 0)))]
    return [(kind, *free[int(p)]) for kind, p in zip(kinds, picks, strict=True)]


def build_layout(cfg: WorldConfig) -> Layout:
    _validate(cfg)
    unknown = sorted(set(cfg.object_counts) - set(OBJECT_KINDS))
    if unknown:
        _fail(f"world.object_counts has unknown kinds {unknown}; use {OBJECT_KINDS}")
    h, w = cfg.height, cfg.width
    walls = np.zeros((h, w), dtype=bool)
    walls[0, :] = walls[-1, :] = walls[:, 0] = walls[:, -1] = True
    objs: list[tuple[str, int, int]] = []
    taken: set[tuple[int, int]] = set()
    for i, oc in enumerate(cfg.objects):
        if oc.kind not in OBJECT_KINDS:
            _fail(f"world.objects[{i}].kind={oc.kind!r}; use one of {OBJECT_KINDS}")
        if not (1 <= oc.x < w - 1 and 1 <= oc.y < h - 1):
            _fail(f"world.objects[{i}] at ({oc.x},{oc.y}) is outside the interior 1..{w - 2} x 1..{h - 2}")
        if (oc.x, oc.y) in taken:
            _fail(f"world.objects[{i}] at ({oc.x},{oc.y}) shares a tile with another object")
        taken.add((oc.x, oc.y))
        objs.append((oc.kind, oc.x, oc.y))
    objs += _place_extra(cfg, taken)
    if not objs:
        _fail("world has no objects; list some under world.objects or world.object_counts")
    tile_obj = np.full((h, w), -1, dtype=np.int64)
    for o, (_, x, y) in enumerate(objs):
        tile_obj[y, x] = o
    kinds = np.array([OBJECT_KINDS.index(k) for k, _, _ in objs], dtype=np.int64)
    affs = [cfg.affordances[k] for k, _, _ in objs]
    need_idx = np.array([NEED_NAMES.index(a.need) if a.need else -1 for a in affs], dtype=np.int64)
    duration = np.array([a.duration if a.duration > 0 else UNLIMITED for a in affs], dtype=np.int64)

    n_agents = cfg.num_agents
    emp = cfg.employment
    stations = np.flatnonzero(kinds == JOB_KIND)
    has_job = np.zeros(n_agents, dtype=bool)
    job_obj = np.full(n_agents, -1, dtype=np.int64)
    start = np.zeros(n_agents, dtype=np.int64)
    end = np.zeros(n_agents, dtype=np.int64)
    if emp.enabled:
        if stations.size == 0:
            _fail("world.employment.enabled needs at least one job_site object")
        slot = np.arange(n_agents)
        job_obj = stations[slot % stations.size].astype(np.int64)
        start = emp.shift_start + (slot // stations.size) * emp.shift_stagger
        end = start + emp.shift_length
        has_job = end <= cfg.day_length  # shifts that do not fit into the day are left unassigned
        job_obj = np.where(has_job, job_obj, -1)
    phase = 2.0 * np.pi * np.arange(cfg.day_length, dtype=np.float64) / cfg.day_length
    return Layout(
        width=w,
        height=h,
        walls=walls,
        tile_obj=tile_obj,
        obj_kind=kinds,
        obj_x=np.array([x for _, x, _ in objs], dtype=np.int64),
        obj_y=np.array([y for _, _, y in objs], dtype=np.int64),
        obj_need=need_idx,
        obj_restore=np.array([a.restore for a in affs], dtype=np.float64),
        obj_duration=duration,
        obj_cost=np.array([a.cost for a in affs], dtype=np.float64),
        obj_stock=np.array([a.stock for a in affs], dtype=np.int64),
        obj_restock=np.array([a.restock_every for a in affs], dtype=np.int64),
        has_job=has_job,
        job_obj=job_obj,
        shift_start=np.asarray(start, dtype=np.int64),
        shift_end=np.asarray(end, dtype=np.int64),
        window_open=np.asarray(start - emp.arrival_buffer, dtype=np.int64),
        time_sin=np.sin(phase),
        time_cos=np.cos(phase),
        stage=STAGES.index(cfg.social.stage),
    )


def initial_agents(
    cfg: WorldConfig, seed: int, env: int, episode: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start positions x, y (int64 [A]) and needs (float64 [A, 3]) of one env's episode."""
    rng = np.random.default_rng([int(seed) & 0x7FFFFFFF, env, episode])
    n = cfg.num_agents
    x = rng.integers(1, cfg.width - 1, size=n).astype(np.int64)
    y = rng.integers(1, cfg.height - 1, size=n).astype(np.int64)
    lo = np.asarray(cfg.needs.init_low, dtype=np.float64)
    hi = np.asarray(cfg.needs.init_high, dtype=np.float64)
    needs = lo + (hi - lo) * rng.random((n, len(NEED_NAMES)))
    return x, y, needs
