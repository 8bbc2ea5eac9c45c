"""Column schema of format v1: one place that says which arrays a dataset holds, with dtype and shape.

Every column is time-major with leading axes [T, N] (ticks x agents, env-major agent order); the
trailing shape depends only on the :class:`ObservationSpec`. Writer, loader, validation and the
capture buffer all read this table, so the layouts cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from townlet.world.spec import ObservationSpec


@dataclass(frozen=True)
class Column:
    name: str
    dtype: np.dtype
    trailing: Callable[[ObservationSpec], tuple[int, ...]]
    doc: str

    @property
    def is_float(self) -> bool:
        return bool(np.issubdtype(self.dtype, np.floating))

    def shape(self, spec: ObservationSpec, ticks: int, agents: int) -> tuple[int, ...]:
        return (ticks, agents, *self.trailing(spec))


def _scalar(_: ObservationSpec) -> tuple[int, ...]:
    return ()


COLUMNS: tuple[Column, ...] = (
    Column("maps", np.dtype(np.uint8), lambda s: s.map_shape, "egocentric map window [C, W, W]"),
    Column("features", np.dtype(np.float32), lambda s: (s.feature_dim,), "named feature vector [F]"),
    Column("action_mask", np.dtype(np.bool_), lambda s: (s.num_actions,), "True = action allowed [A]"),
    Column("actions", np.dtype(np.int64), _scalar, "executed action, chosen from this row's observation"),
    Column("teacher_actions", np.dtype(np.int64), _scalar, "scripted teacher's choice (= actions if none)"),
    Column("log_probs", np.dtype(np.float32), _scalar, "log pi_behaviour(action | obs)"),
    Column("values", np.dtype(np.float32), _scalar, "behaviour value estimate V(obs) (0 without a critic)"),
    Column("final_values", np.dtype(np.float32), _scalar, "V(final_obs) where truncated, else 0"),
    Column("rewards", np.dtype(np.float32), _scalar, "reward received for this action"),
    Column("terminated", np.dtype(np.bool_), _scalar, "agent fainted on this step (GAE cuts here)"),
    Column("truncated", np.dtype(np.bool_), _scalar, "episode ended on this step (time limit)"),
    Column("env_id", np.dtype(np.int32), _scalar, "town index"),
    Column("agent_id", np.dtype(np.int32), _scalar, "agent index within its town"),
    Column("episode_id", np.dtype(np.int32), _scalar, "episode counter of the town"),
    Column("tick", np.dtype(np.int32), _scalar, "world tick at which the observation was taken"),
)
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)


def column_schema(spec: ObservationSpec) -> dict[str, dict[str, object]]:
    """The manifest's description of every column (dtype and trailing shape)."""
    return {c.name: {"dtype": c.dtype.name, "shape": list(c.trailing(spec))} for c in COLUMNS}


def allocate(spec: ObservationSpec, ticks: int, agents: int) -> dict[str, np.ndarray]:
    """Uninitialised time-major buffers for ``ticks`` x ``agents`` transitions (the capture buffer)."""
    return {c.name: np.empty(c.shape(spec, ticks, agents), dtype=c.dtype) for c in COLUMNS}
