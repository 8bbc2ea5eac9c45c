"""The anneal run: BC clones the teacher, then PPO stages refine the clone while ``bc_weight`` anneals
to 0, each stage from the previous one's checkpoint (docs/anneal.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from townlet.promotion.baselines import BaselineStore
from townlet.promotion.rules import AnnealStatus, anneal_status
from townlet.promotion.state import PromotionService
from townlet.strategies.anneal.outcome import (
    Passing,
    Progress,
    baseline_key,
    default_dataset_label,
    final_stage,
    install_final_checkpoint,
    load_baselines,
    report,
    state_dir_of,
)
from townlet.strategies.anneal.settings import AnnealSettings
from townlet.strategies.anneal.stages import bc_result, judge_ppo, stage_context, with_teacher_mix

if TYPE_CHECKING:
    from townlet.dto import AnnealSummaryDTO
    from townlet.promotion.rules import GuardrailMetrics
    from townlet.strategies.anneal.settings import Stage
    from townlet.strategies.context import TrainingContext


@dataclass
class AnnealStrategy(AnnealSettings):
    """``strategy=anneal``, the default main job: the settings plus the run below."""

    def run(self, context: TrainingContext) -> AnnealSummaryDTO:
        self.ensure_torch()
        started = time.perf_counter()
        label = self.dataset_label or default_dataset_label(context)
        state_dir = state_dir_of(context)
        store = None if state_dir is None else BaselineStore(state_dir)
        stored = load_baselines(store, label, self.stages)
        context.log.info(
            "anneal: %d stages, label=%s, stored baselines for cycles %s",
            len(self.stages),
            label,
            sorted(stored) or "none",
        )

        progress = Progress(
            checkpoint=context.init_from, last_passing=Passing(-1, None, context.init_from, None)
        )
        for index, stage in enumerate(self.stages):
            if not _run_stage(self, context, progress, index, stage, label, stored):
                break  # a BC stage below the accuracy threshold ends the schedule
            if context.stop.reason is not None:
                break  # a stage ended on the run's stop settings: so does the schedule

        status = anneal_status(progress.results)
        chosen = final_stage(progress, context.log)
        final = install_final_checkpoint(context, chosen.checkpoint)
        run_dir = context.run_dir.path
        # this run's PPO-stage metrics become later runs' baselines (``on_pass``: after a PASS run,
        # or for a cycle that has none yet)
        if store is not None and self.baseline_update != "never":
            replace_all = self.baseline_update == "always" or status is AnnealStatus.PASS
            for cycle, metrics in progress.observed.items():
                if replace_all or cycle not in stored:
                    store.put(baseline_key(label, cycle), metrics.as_dict(), run_dir=run_dir)
        rules = self.promotion_rules
        snapshot = None  # the promotion state after this run, when recorded
        if rules.record and state_dir is not None:
            passes, hold_resets = rules.required_passes, rules.hold_resets_streak
            promotion = PromotionService(state_dir, required_passes=passes, hold_resets_streak=hold_resets)
            snapshot = promotion.record_evaluation(
                status.value,
                run_dir=run_dir,
                checkpoint=final,
                detail={"dataset_label": label, "cycle": self.stages[-1].cycle},
            )
        duration = time.perf_counter() - started
        return report(context, progress, chosen, stored, status, label, final, snapshot, duration)


def _run_stage(
    strategy: AnnealSettings,
    context: TrainingContext,
    progress: Progress,
    index: int,
    stage: Stage,
    label: str,
    stored: dict[int, GuardrailMetrics],
) -> bool:
    """Build, run (train and evaluate) and judge one stage; False when it fails the BC gate."""
    baseline = stored.get(stage.cycle) or (progress.previous if strategy.chain_stages else None)
    child = stage_context(context, strategy, stage, index, progress.checkpoint)
    context.log.info(
        "anneal: stage %d/%d cycle=%d mode=%s epochs=%d bc_weight=%.2f init_from=%s",
        index + 1,
        len(strategy.stages),
        stage.cycle,
        stage.mode,
        stage.epochs,
        stage.bc_weight,
        progress.checkpoint or "scratch",
    )
    stage_strategy = strategy.build_stage_strategy(stage, child)
    if strategy.teacher_mix:
        child = with_teacher_mix(child, stage, stage_strategy)
    dto = stage_strategy.run(child)

    if stage.mode == "bc":
        result = bc_result(stage, dto, strategy.accuracy_threshold)
        progress.bc_accuracy, progress.bc_passed = result.accuracy, bool(result.passed)
        if not result.passed:
            progress.record(result.model_copy(update={"rolled_back": True}), child)
            context.log.warning(
                "anneal: BC stage cycle=%d accuracy %.3f < threshold %.3f: FAIL, rolling back to %s",
                stage.cycle,
                result.accuracy or 0.0,
                strategy.accuracy_threshold,
                progress.last_passing.checkpoint or "no checkpoint",
            )
            return False
    else:
        result, dto = judge_ppo(child, stage, dto, label, progress, baseline, strategy)
    progress.record(result, child)
    progress.advance(index, result, dto)
    return True
