"""Small rule helpers and action tables of the vectorised town, its observations and the teacher.

The oracle spells the same formulas out as scalar code, with the same floating-point operations in the
same order, so the equivalence tests check one against the other."""

from __future__ import annotations

import numpy as np

from townlet.world.spec import Action

# move deltas indexed by action id (non-moves are 0)
DX = np.array([0, 0, 0, 1, -1, 0, 0, 0], dtype=np.int64)
DY = np.array([0, -1, 1, 0, 0, 0, 0, 0], dtype=np.int64)
MOVE_ACTIONS = (Action.MOVE_NORTH, Action.MOVE_SOUTH, Action.MOVE_EAST, Action.MOVE_WEST)
OPPOSITE_DIR = np.array([1, 0, 3, 2], dtype=np.int64)  # north<->south, east<->west


def greedy_dir(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """First step towards (dx, dy): 0 N, 1 S, 2 E, 3 W, -1 when there; larger axis first, ties to x."""
    dx, dy = np.asarray(dx), np.asarray(dy)
    vertical = np.where(dy > 0, 1, np.where(dy < 0, 0, -1))
    return np.where((dx != 0) & (np.abs(dx) >= np.abs(dy)), np.where(dx > 0, 2, 3), vertical)


def conflict_intensity(queue_len: np.ndarray | int) -> np.ndarray:
    """Ghost-step intensity 1.5 + 0.25 * max(queue_len - 1, 0), clamped to [0.1, 5]."""
    q = np.asarray(queue_len, dtype=np.float64)
    return np.clip(1.5 + 0.25 * np.maximum(q - 1.0, 0.0), 0.1, 5.0)


def chat_quality(trust: np.ndarray | float, fam: np.ndarray | float, riv: np.ndarray | float) -> np.ndarray:
    """Quality in [0.1, 1] of a chat between two agents (minimum/maximum: np.clip's values, cheaper)."""
    raw = 0.5 + 0.2 * np.asarray(trust) + 0.1 * np.asarray(fam) - 0.2 * np.asarray(riv)
    return np.minimum(np.maximum(raw, 0.1), 1.0)
