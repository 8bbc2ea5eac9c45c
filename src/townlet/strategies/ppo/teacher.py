"""The scripted teacher whose actions label every row for the kickstarting loss (``loss_bc``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from townlet.config.schema.strategy_ppo import PPOConfigError

if TYPE_CHECKING:
    from townlet.replay import ReplayData

__all__ = ["make_teacher", "teacher_labels"]


def make_teacher(spec: Any, bc_coef: float) -> Any:
    """The scripted teacher for ``spec``, or None if it cannot read this world and ``bc_coef`` is 0.

    Without a teacher ``loss_bc`` is simply not measured; with ``bc_coef > 0`` it is required.
    """
    from townlet.behaviour.rules import ScriptedPolicy

    try:
        return ScriptedPolicy(spec)
    except ValueError as exc:
        if bc_coef > 0:
            raise PPOConfigError(
                f"strategy.bc_coef={bc_coef} needs the scripted teacher, which cannot read this "
                f"world's observations ({exc}); set strategy.bc_coef=0"
            ) from None
        return None


def teacher_labels(teacher: Any, data: ReplayData, *, recorded: bool) -> np.ndarray | None:
    """The teacher's action for every row, [T, N], for the kickstarting loss and ``loss_bc``.

    Rollout rows are labelled by the teacher itself: it is a deterministic, vectorised function
    of the observation, so one call per iteration costs next to nothing. Replay rows keep the
    labels recorded at capture (what BC trained on) when a scripted teacher recorded them; other
    behaviours (random) recorded their own actions there, so those rows are labelled afresh.
    """
    if recorded and data.meta.get("behaviour") == "scripted":
        return np.asarray(data.teacher_actions)
    if teacher is None:
        return None
    from townlet.world.spec import Observation

    flat = Observation(data.flat("maps"), data.flat("features"), data.flat("action_mask"))
    return np.asarray(teacher.teacher(flat), np.int64).reshape(data.actions.shape)
