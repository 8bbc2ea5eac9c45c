"""Which stage's policy the run ends with, and installing it as the run's checkpoint.

A failed BC stage ends the schedule with the last passing stage's policy; a PPO stage that lost
return (the return flag) makes the run end with the best-evaluated passing stage's policy.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from townlet.promotion.rules import AnnealStatus
from townlet.strategies.anneal.progress import write_stage

if TYPE_CHECKING:
    from townlet.strategies.anneal.progress import Passing, Progress
    from townlet.strategies.context import TrainingContext


def final_stage(progress: Progress, log: logging.Logger) -> Passing:
    """The stage whose policy the run ends with: the last passing one, unless a PPO stage lost
    return; then the best-evaluated passing stage, and every stage after it is marked rolled back
    (in the results and in its ``stage.json``)."""
    best = progress.best
    if best is None or not any(r.anneal_return_flag for r in progress.results):
        return progress.last_passing
    results = progress.results
    for i in range(best.index + 1, len(results)):
        results[i] = results[i].model_copy(update={"rolled_back": True})
        write_stage(progress.stage_dirs[i], results[i])
    log.warning(
        "anneal: return flag raised; the final policy rolls back to stage %d (return %s)",
        best.index + 1,
        best.mean_return,
    )
    return best


def install_final_checkpoint(context: TrainingContext, source: str | None) -> Path | None:
    """Copy the final (or rolled-back-to) stage checkpoint to the run's ``checkpoints/{best,last}.pt``,
    so ``init_from=<run dir>``, ``townlet-eval`` and promotion all see the anneal's real outcome."""
    if source is None:
        return None
    from townlet.nets.checkpoints import BEST, LAST, resolve_checkpoint_path
    from townlet.runs.atomic import atomic_write_bytes

    src = resolve_checkpoint_path(source)
    folder = context.run_dir.checkpoints
    data = src.read_bytes()
    for name in (LAST, BEST):
        atomic_write_bytes(folder / name, data)
    return folder / BEST


def final_evaluation(progress: Progress, chosen: Passing, status: AnnealStatus) -> Any:
    """The run's evaluation block: the last stage's, unless the run ends with another stage's policy."""
    if chosen is not progress.last_passing or status is AnnealStatus.FAIL:
        return with_policy_of(progress.evaluation, chosen.evaluation)
    return progress.evaluation


def with_policy_of(last: Any, chosen: Any) -> Any:
    """The run's evaluation block for a rolled-back policy: the chosen stage's policy row next to the
    scripted/random rows of the last evaluated stage (same seeds and episodes, so comparable)."""
    if chosen is None:
        return last
    if last is None or getattr(chosen, "scripted", None) is not None:
        return chosen
    return last.model_copy(update={"policy": chosen.policy})
