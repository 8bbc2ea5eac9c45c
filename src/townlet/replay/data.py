"""`ReplayData`: the in-memory, time-major [T, N] dataset every strategy trains from. Row (t, i) holds what
agent i saw at tick t and the action chosen from it; shuffles are drawn from (seed, epoch), so runs resume."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from townlet.replay.columns import COLUMN_NAMES, check_columns, check_finite_array
from townlet.replay.errors import DatasetError
from townlet.world.spec import Observation, ObservationSpec

Batch = dict[str, np.ndarray]


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """Independent stream per (seed, epoch): epoch k's order does not depend on having run epoch k-1."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch) & 0xFFFFFFFF, 0x7E91A])


@dataclass
class ReplayData:
    """Time-major transitions of N agents over T ticks plus what describes them."""

    spec: ObservationSpec
    maps: np.ndarray
    features: np.ndarray
    action_mask: np.ndarray
    actions: np.ndarray
    teacher_actions: np.ndarray
    log_probs: np.ndarray
    values: np.ndarray
    final_values: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    env_id: np.ndarray
    agent_id: np.ndarray
    episode_id: np.ndarray
    tick: np.ndarray
    bootstrap_values: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    events: dict[str, float] = field(default_factory=dict)
    episode_stats: dict[str, float] = field(default_factory=dict)
    next_obs: Observation | None = None  # observation after the last step (continue a rollout); not saved

    @classmethod
    def from_columns(
        cls,
        spec: ObservationSpec,
        columns: Mapping[str, np.ndarray],
        *,
        bootstrap_values: np.ndarray | None = None,
        meta: dict[str, Any] | None = None,
        events: dict[str, float] | None = None,
        episode_stats: dict[str, float] | None = None,
        next_obs: Observation | None = None,
        check_finite: bool = True,
    ) -> ReplayData:
        """Build and validate; ``check_finite=False`` only where the caller already checked the values."""
        _, n_agents = check_columns(columns, spec, values=False)
        boot = np.zeros(n_agents, np.float32) if bootstrap_values is None else bootstrap_values
        data = cls(
            spec=spec,
            **{n: columns[n] for n in COLUMN_NAMES},
            bootstrap_values=np.asarray(boot, dtype=np.float32),
            meta=dict(meta or {}),
            events=dict(events or {}),
            episode_stats=dict(episode_stats or {}),
            next_obs=next_obs,
        )
        data.validate(check_finite=check_finite)
        return data

    def columns(self) -> dict[str, np.ndarray]:
        return {n: getattr(self, n) for n in COLUMN_NAMES}

    @property
    def num_ticks(self) -> int:
        return int(self.actions.shape[0])

    @property
    def num_agents(self) -> int:
        return int(self.actions.shape[1])

    @property
    def num_transitions(self) -> int:
        return self.num_ticks * self.num_agents

    def __len__(self) -> int:
        return self.num_transitions

    def validate(self, *, check_finite: bool = True) -> None:
        """Shapes, dtypes, id ranges and finiteness; raises one DatasetError naming the problem."""
        _, n = check_columns(self.columns(), self.spec, values=check_finite)
        if self.bootstrap_values.shape != (n,):
            shape = list(self.bootstrap_values.shape)
            raise DatasetError(f"bootstrap_values has shape {shape}, expected [{n}]")
        if check_finite:
            check_finite_array(self.bootstrap_values, "bootstrap_values", None)

    def flat(self, name: str) -> np.ndarray:
        """[T*N, ...] view of a column (no copy; columns are contiguous)."""
        arr = getattr(self, name)
        return arr.reshape(self.num_transitions, *arr.shape[2:])

    def iter_minibatches(
        self,
        batch_size: int,
        seed: int,
        epoch: int,
        *,
        drop_last: bool = False,
        columns: tuple[str, ...] | None = None,
        extra: Mapping[str, np.ndarray] | None = None,
    ) -> Iterator[Batch]:
        """Shuffled minibatches, a fresh permutation per (seed, epoch); ``extra`` [T, N] arrays are gathered
        alike. Indices are sorted within a batch: a forward walk through memory is faster for wide rows."""
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        rows = self.num_transitions
        sources = self._sources(columns, extra)
        flat = {n: a.reshape(rows, -1) for n, a in sources.items()}
        perm = epoch_rng(seed, epoch).permutation(rows)
        stop = rows - rows % batch_size if drop_last else rows
        for start in range(0, stop, batch_size):
            idx = np.sort(perm[start : start + batch_size])
            yield {n: np.take(flat[n], idx, axis=0).reshape(len(idx), *sources[n].shape[2:]) for n in flat}

    def _sources(
        self, columns: tuple[str, ...] | None, extra: Mapping[str, np.ndarray] | None
    ) -> dict[str, np.ndarray]:
        return {**{n: getattr(self, n) for n in columns or COLUMN_NAMES}, **(extra or {})}

    def iter_segments(
        self,
        segment_length: int,
        agents_per_segment: int,
        seed: int,
        epoch: int,
        *,
        columns: tuple[str, ...] | None = None,
        extra: Mapping[str, np.ndarray] | None = None,
    ) -> Iterator[Batch]:
        """Contiguous [L, n] trajectory blocks (for GAE) in a per-epoch random order, each with
        ``next_values`` [n] (the next row's ``values`` or ``bootstrap_values``), ``t0``, ``agent_index``."""
        if segment_length <= 0 or agents_per_segment <= 0:
            raise ValueError("segment_length and agents_per_segment must be positive")
        sources = self._sources(columns, extra)
        rng = epoch_rng(seed, epoch)
        agent_perm = rng.permutation(self.num_agents)
        groups = [
            np.sort(agent_perm[i : i + agents_per_segment])
            for i in range(0, self.num_agents, agents_per_segment)
        ]
        blocks = [(t0, g) for t0 in range(0, self.num_ticks, segment_length) for g in range(len(groups))]
        for b in rng.permutation(len(blocks)):
            t0, g = blocks[int(b)]
            t1 = min(t0 + segment_length, self.num_ticks)
            idx = groups[g]
            out = {n: arr[t0:t1][:, idx] for n, arr in sources.items()}
            out["next_values"] = (
                self.values[t1, idx] if t1 < self.num_ticks else self.bootstrap_values[idx]
            ).astype(np.float32, copy=False)
            out["t0"] = np.asarray(t0)
            out["agent_index"] = idx
            yield out

    def select_agents(self, agent_index: np.ndarray) -> ReplayData:
        idx = np.asarray(agent_index, dtype=np.int64)
        cols = {n: np.ascontiguousarray(arr[:, idx]) for n, arr in self.columns().items()}
        nxt = self.next_obs
        next_obs = None if nxt is None else Observation(*(np.ascontiguousarray(a[idx]) for a in nxt))
        return ReplayData.from_columns(
            self.spec,
            cols,
            bootstrap_values=self.bootstrap_values[idx].copy(),
            meta=dict(self.meta),
            events=dict(self.events),
            episode_stats=dict(self.episode_stats),
            next_obs=next_obs,
        )

    def split_by_agent(self, val_fraction: float, seed: int) -> tuple[ReplayData, ReplayData]:
        """Train/validation split by whole agent trajectories: rows of one agent are correlated in time,
        so a row split would leak. ``events``/``episode_stats`` describe the capture and go to both."""
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if self.num_agents < 2:
            raise DatasetError(
                f"cannot split {self.num_agents} agent trajectory by agent",
                hint="capture more agents or environments",
            )
        n_val = min(self.num_agents - 1, max(1, round(self.num_agents * val_fraction)))
        perm = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5B117]).permutation(self.num_agents)
        val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        train, val = self.select_agents(train_idx), self.select_agents(val_idx)
        train.meta["split"] = {"part": "train", "val_fraction": val_fraction, "seed": seed}
        val.meta["split"] = {"part": "val", "val_fraction": val_fraction, "seed": seed}
        return train, val
