"""Typed world configuration (a Hydra structured-config schema; `conf/world/*.yaml` fill it in).

Every field is a primitive, list or nested dataclass so OmegaConf validates overrides such as
``world.num_agents=abc``. The defaults describe the ``default`` scenario; docs/world.md explains the rules."""

from __future__ import annotations

from dataclasses import dataclass, field

OBJECT_KINDS: tuple[str, ...] = ("fridge", "stove", "shower", "bed", "job_site")
NEED_NAMES: tuple[str, ...] = ("hunger", "hygiene", "energy")


class WorldConfigError(ValueError):
    """A world configuration that cannot describe a town; the message names the field and the fix."""


@dataclass
class ObjectConfig:
    kind: str = "fridge"  # fridge | stove | shower | bed | job_site
    x: int = 0
    y: int = 0


@dataclass
class AffordanceConfig:
    """What using one kind of object does. ``need`` is one of NEED_NAMES or "" (job site)."""

    need: str = ""
    restore: float = 0.0  # need gained per tick of use
    duration: int = 0  # ticks of one use; 0 = until released (job site)
    cost: float = 0.0  # wallet units paid at the start of a use
    stock: int = -1  # uses in stock at episode start; -1 = unlimited
    restock_every: int = 0  # +1 stock every N ticks up to `stock`; 0 = never


def _default_affordances() -> dict[str, AffordanceConfig]:
    return {
        "fridge": AffordanceConfig(
            need="hunger", restore=0.12, duration=4, cost=0.5, stock=6, restock_every=25
        ),
        "stove": AffordanceConfig(need="hunger", restore=0.08, duration=6, cost=0.25),
        "shower": AffordanceConfig(need="hygiene", restore=0.12, duration=5),
        "bed": AffordanceConfig(need="energy", restore=0.06, duration=10),
        "job_site": AffordanceConfig(need="", duration=0),
    }


@dataclass
class NeedsConfig:
    decay: list[float] = field(default_factory=lambda: [0.004, 0.003, 0.002])  # per tick, in NEED_NAMES order
    threshold: float = 0.4  # below it a need is urgent (the scripted teacher goes to fix it)
    release: float = 0.95  # a use is "satisfied" at this level (the teacher releases)
    faint: float = 0.02  # hunger or energy at/below it -> faint (terminated, respawn)
    init_low: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    init_high: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    respawn: float = 0.7  # every need after a faint


@dataclass
class QueueConfig:
    ghost_step_after: int = 3  # consecutive blocked ticks before the occupant is ghost-stepped
    cooldown_ticks: int = 4  # a fresh occupant is protected from ghost steps for this many ticks
    rivalry_gain: float = 0.05  # rivalry += gain * intensity on a ghost step
    rivalry_decay: float = 0.001  # rivalry -= decay every tick (floored at 0)
    avoid_threshold: float = 0.3  # rivalry at/above it makes the other agent a "rival"
    handover_trust: float = 0.05  # smooth hand-over: trust and familiarity +, rivalry -
    handover_familiarity: float = 0.05
    handover_rivalry_relief: float = 0.05


@dataclass
class SocialConfig:
    stage: str = "C1"  # OFF | C1 | C2 | C3 (chat rewards from C1)
    chat_cooldown: int = 30
    chat_trust_gain: float = 0.02  # * quality, both directions
    chat_familiarity_gain: float = 0.05
    chat_base: float = 0.01
    chat_trust_weight: float = 0.3
    chat_familiarity_weight: float = 0.2
    chat_max_deficit: float = 0.85  # an agent with a need deficit above it gets no chat reward
    rival_avoid_radius: int = 2  # the teacher steps away from a rival this close (Manhattan)


@dataclass
class EmploymentConfig:
    enabled: bool = False
    shift_start: int = 30  # tick of the day the first shift starts
    shift_length: int = 60
    shift_stagger: int = 60  # workers sharing a station work consecutive shifts
    arrival_buffer: int = 20  # the job window opens this many ticks before the shift
    grace_ticks: int = 3  # arriving later than start + grace is late
    cover_ticks: int = 15  # a worker covers this long after its shift unless relieved earlier
    wage: float = 0.02  # wallet units (and reward) per tick worked inside the shift


@dataclass
class RewardConfig:
    survival: float = 0.01
    need_scale: float = 0.1  # penalty = need_scale * sum w * (1 - need)^2
    need_weights: list[float] = field(default_factory=lambda: [1.0, 0.6, 0.8])
    wage_scale: float = 1.0
    punctuality_bonus: float = 0.05
    faint_penalty: float = -1.0
    clip: float = 1.0  # per-tick clip
    guard_ticks: int = 10  # positive totals are zeroed this many ticks after a faint


@dataclass
class WorldConfig:
    name: str = "default"
    num_envs: int = 16
    num_agents: int = 4
    width: int = 16  # the outer ring of tiles is wall
    height: int = 16
    episode_length: int = 400
    day_length: int = 200
    window: int = 11
    initial_wallet: float = 10.0
    wallet_scale: float = 50.0
    objects: list[ObjectConfig] = field(default_factory=list)
    object_counts: dict[str, int] = field(default_factory=dict)  # extra objects placed by layout_seed
    layout_seed: int = 0
    affordances: dict[str, AffordanceConfig] = field(default_factory=_default_affordances)
    needs: NeedsConfig = field(default_factory=NeedsConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    social: SocialConfig = field(default_factory=SocialConfig)
    employment: EmploymentConfig = field(default_factory=EmploymentConfig)
    rewards: RewardConfig = field(default_factory=RewardConfig)
