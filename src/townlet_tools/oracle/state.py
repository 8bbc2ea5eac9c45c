"""State and scalar formulas of the plain-Python town (:mod:`townlet_tools.oracle`).

One :class:`OracleAgent` per agent and one :class:`OracleEnv` per town, as plain Python values, so the
rules read like the prose of docs/world.md. The formulas repeat the NumPy ones of
:mod:`townlet.world.rules` as scalar code on purpose: the oracle must not share rule code with the
vectorised town it checks.
"""

from __future__ import annotations

from dataclasses import dataclass

from townlet.world.config import WorldConfig
from townlet.world.layout import initial_agents


def greedy(dx: int, dy: int) -> int:
    """First step towards (dx, dy): 0 N, 1 S, 2 E, 3 W (larger axis first, ties to x), -1 when there."""
    if dx != 0 and abs(dx) >= abs(dy):
        return 2 if dx > 0 else 3
    if dy != 0:
        return 1 if dy > 0 else 0
    return -1


def intensity(qlen: int) -> float:
    """Ghost-step conflict intensity for a queue of ``qlen`` agents."""
    return min(max(1.5 + 0.25 * max(qlen - 1.0, 0.0), 0.1), 5.0)


def quality(tr: float, fa: float, rv: float) -> float:
    """Quality of a chat between agents with this trust, familiarity and rivalry."""
    return min(max(0.5 + 0.2 * tr + 0.1 * fa - 0.2 * rv, 0.1), 1.0)


@dataclass(slots=True)
class OracleAgent:
    """One agent's state (``occ``/``q_obj``: object id or -1; ``nbr``: chat target or -1)."""

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


class OracleEnv:
    """One town: its agents, object occupancy/stall/stock and the [agent][agent] relationships."""

    def __init__(
        self, cfg: WorldConfig, seed: int, env: int, episode: int, n_obj: int, stock: list[int]
    ) -> None:
        xs, ys, ns = initial_agents(cfg, seed, env, episode)
        self.agents: list[OracleAgent] = []
        for i in range(cfg.num_agents):
            x, y = int(xs[i]), int(ys[i])
            self.agents.append(
                OracleAgent(
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

    def vacate(self, g: int) -> None:
        """Agent g leaves the object it occupies."""
        ag = self.agents[g]
        self.obj_occ[ag.occ] = -1
        self.stall[ag.occ] = 0
        ag.occ, ag.use_left, ag.elapsed = -1, 0, 0

    def enqueue(self, g: int, o: int) -> None:
        """Agent g joins the tail of object o's queue."""
        self.agents[g].q_obj = o
        self.agents[g].q_seq = self.counter
        self.counter += 1

    def queue(self, o: int) -> list[int]:
        """Agents queued at o, head first (FIFO by join sequence)."""
        members = [i for i, ag in enumerate(self.agents) if ag.q_obj == o]
        return sorted(members, key=lambda i: self.agents[i].q_seq)


@dataclass(slots=True)
class OracleTick:
    """One env's tick in progress: what every rule step of it reads and adds to."""

    e: int
    env: OracleEnv
    acts: list[int]
    t: int
    day: int
    ev: dict[str, list[float]]
    social: list[float]
    extra: list[float]
