"""Format v1 columns (time-major [T, N, ...], trailing shape from the ObservationSpec) and their check: the
one table writer, loader and capture buffer read."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from townlet.replay.errors import DatasetError
from townlet.world.layout import memory_budget
from townlet.world.spec import ObservationSpec


@dataclass(frozen=True)
class Column:
    name: str
    dtype: np.dtype
    doc: str
    trailing: Callable[[ObservationSpec], tuple[int, ...]] = lambda _: ()  # one value per row

    def shape(self, spec: ObservationSpec, ticks: int, agents: int) -> tuple[int, ...]:
        return (ticks, agents, *self.trailing(spec))


COLUMNS: tuple[Column, ...] = (
    Column("maps", np.dtype(np.uint8), "egocentric map window [C, W, W]", lambda s: s.map_shape),
    Column("features", np.dtype(np.float32), "named feature vector [F]", lambda s: (s.feature_dim,)),
    Column("action_mask", np.dtype(np.bool_), "True = action allowed [A]", lambda s: (s.num_actions,)),
    Column("actions", np.dtype(np.int64), "executed action, chosen from this row's observation"),
    Column("teacher_actions", np.dtype(np.int64), "scripted teacher's choice (= actions if none)"),
    Column("log_probs", np.dtype(np.float32), "log pi_behaviour(action | obs)"),
    Column("values", np.dtype(np.float32), "behaviour value estimate V(obs) (0 without a critic)"),
    Column("final_values", np.dtype(np.float32), "V(final_obs) where truncated, else 0"),
    Column("rewards", np.dtype(np.float32), "reward received for this action"),
    Column("terminated", np.dtype(np.bool_), "agent fainted on this step (GAE cuts here)"),
    Column("truncated", np.dtype(np.bool_), "episode ended on this step (time limit)"),
    Column("env_id", np.dtype(np.int32), "town index"),
    Column("agent_id", np.dtype(np.int32), "agent index within its town"),
    Column("episode_id", np.dtype(np.int32), "episode counter of the town"),
    Column("tick", np.dtype(np.int32), "world tick at which the observation was taken"),
)
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)


def column_schema(spec: ObservationSpec) -> dict[str, dict[str, object]]:
    """The manifest's description of every column (dtype and trailing shape)."""
    return {c.name: {"dtype": c.dtype.name, "shape": list(c.trailing(spec))} for c in COLUMNS}


def allocate(spec: ObservationSpec, ticks: int, agents: int) -> dict[str, np.ndarray]:
    """Uninitialised time-major buffers for ``ticks`` x ``agents`` transitions (the capture buffer); a
    size past the machine's memory budget is refused before it is allocated (or starts swapping)."""
    need = sum(math.prod(c.shape(spec, ticks, agents)) * c.dtype.itemsize for c in COLUMNS)
    if (budget := memory_budget()) is not None and need > budget:
        raise DatasetError(
            f"{ticks:,} ticks x {agents:,} agents of transitions need about {need / 2**30:.0f} GiB, "
            f"more than half this machine's memory ({2 * budget / 2**30:.0f} GiB); record fewer ticks "
            "(dataset.ticks, world.episode_length, evaluation.episodes) or fewer agents"
        )
    return {c.name: np.empty(c.shape(spec, ticks, agents), dtype=c.dtype) for c in COLUMNS}


def check_columns(
    columns: Mapping[str, np.ndarray],
    spec: ObservationSpec,
    *,
    ticks: int | None = None,
    agents: int | None = None,
    source: str | Path | None = None,
    values: bool = True,
) -> tuple[int, int]:
    """(T, N) after checking names, dtypes and shapes (with ``values`` also finite floats and action ids in
    range); the first problem is one DatasetError naming the column."""
    missing = [n for n in COLUMN_NAMES if n not in columns]
    if missing:
        raise DatasetError(f"missing column(s) {missing}", file=source)
    actions = columns["actions"]
    if not isinstance(actions, np.ndarray) or actions.ndim != 2:
        raise DatasetError(f"column 'actions' must be [T, N], got shape {np.shape(actions)}", file=source)
    t = actions.shape[0] if ticks is None else ticks
    n = actions.shape[1] if agents is None else agents
    for col in COLUMNS:
        arr, want = columns[col.name], col.shape(spec, t, n)
        if not isinstance(arr, np.ndarray):
            raise DatasetError(f"column {col.name!r} is not an array", file=source)
        if arr.dtype != col.dtype:
            raise DatasetError(
                f"column {col.name!r} has dtype {arr.dtype}, expected {col.dtype}", file=source
            )
        if arr.shape != want:
            raise DatasetError(
                f"column {col.name!r} has shape {list(arr.shape)}, expected {list(want)} "
                f"(features: {spec.feature_dim} names, map {list(spec.map_shape)})",
                file=source,
            )
        if values and np.issubdtype(col.dtype, np.floating):
            check_finite_array(arr, col.name, source)
    for name in ("actions", "teacher_actions") if values else ():
        arr = columns[name]
        if arr.size and (arr.min() < 0 or arr.max() >= spec.num_actions):
            raise DatasetError(
                f"column {name!r} holds action ids outside [0, {spec.num_actions}) "
                f"(min {arr.min()}, max {arr.max()})",
                file=source,
            )
    return t, n


def check_finite_array(arr: np.ndarray, name: str, source: str | Path | None) -> None:
    """Raise a DatasetError naming the column and first bad position when NaN/Inf is present."""
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.argwhere(~finite)
        raise DatasetError(
            f"column {name!r} holds {bad.shape[0]} non-finite value(s) (NaN/Inf), first at index "
            f"{tuple(int(i) for i in bad[0])}",
            file=source,
            hint="the data is corrupt; re-capture it",
        )
