"""Anneal: a schedule of BC and PPO stages that hands the policy from the teacher to the learner.

What the original only pretended to do, this does (upstream §1.12, §7.1, §7.11, §7.12):

* **weights flow** — every stage starts from the previous stage's checkpoint (``init_from``), so
  PPO refines the cloned policy instead of a fresh random network;
* **stages are the real strategies** — each stage builds the configured BC or PPO strategy from its
  ``_target_`` node with only ``epochs`` (and PPO's teacher share) overridden, and runs it in its own
  sub-directory ``stages/NN_cK_<mode>/``;
* **BC stages gate** — a BC stage passes when its validation accuracy ≥ ``accuracy_threshold``; a
  failure ends the schedule with FAIL and **rolls back**: the run's final checkpoint is the last
  passing stage's (byte-for-byte copy), not the failed one;
* **bc_weight anneals** — during a PPO stage it weights a kickstarting loss: PPO's ``bc_coef`` is
  ``bc_weight × bc_loss_coef``, the cross-entropy between the policy and the scripted teacher's
  action on the same rollout observations. With ``teacher_mix: true`` it is also the probability
  that the teacher's action is executed in rollouts (the recorded log-prob is the mixture's; see
  ``teacher_mix``). It is shown in ``context.anneal``; schedules take it towards 0;
* **returns are guarded** — every stage's policy is evaluated on the same episodes; a PPO stage whose
  return drops more than ``tolerances.eval_return`` below the best earlier passing stage's raises
  the return flag (HOLD), and the run's final policy rolls back to the best-evaluated passing stage;
* **guardrails persist** — PPO-stage loss / queue-event / queue-intensity flags compare a stage with
  the same stage (label + cycle) of earlier runs, stored under ``paths.state_dir``; with
  ``chain_stages`` a stage without a stored baseline is compared with the previous PPO stage
  (the original's rule);
* **promotion persists** — the run's PASS/HOLD/FAIL is recorded in the file-locked promotion state,
  so two PASS runs in a row from the command line make the candidate ready.

Torch is only touched by the stage strategies; this module stays importable without it.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from townlet.promotion.rules import (
    AnnealStatus,
    GuardrailMetrics,
    GuardrailTolerances,
    anneal_status,
    evaluate_flags,
    return_flag,
    status_reasons,
)
from townlet.runs.atomic import atomic_write_json
from townlet.strategies.base import StrategyBase

if TYPE_CHECKING:
    from townlet.dto import AnnealStageResultDTO, AnnealSummaryDTO
    from townlet.strategies.context import TrainingContext

RESULTS_FILE = "anneal_results.json"
STAGES_DIR = "stages"
STAGE_FILE = "stage.json"
BASELINE_UPDATES = ("on_pass", "always", "never")


class AnnealConfigError(ValueError):
    """The anneal schedule or settings are invalid; the message names the key and the fix."""


@dataclass(frozen=True)
class _Passing:
    """A stage whose policy the run may end with: its index, evaluated return, checkpoint, evaluation."""

    index: int
    mean_return: float | None
    checkpoint: str | None
    evaluation: Any


@dataclass(frozen=True)
class Stage:
    """One schedule entry, validated."""

    cycle: int
    mode: str
    epochs: int
    bc_weight: float

    @classmethod
    def from_any(cls, raw: Any, index: int) -> Stage:
        data = _plain(raw)
        if not isinstance(data, Mapping):
            raise AnnealConfigError(f"strategy.schedule[{index}] must be a mapping, got {raw!r}")
        unknown = sorted(set(data) - {"cycle", "mode", "epochs", "bc_weight"})
        if unknown:
            raise AnnealConfigError(
                f"strategy.schedule[{index}] has unknown key(s) {unknown}; "
                "allowed: cycle, mode, epochs, bc_weight"
            )
        mode = str(data.get("mode", "")).lower()
        if mode not in ("bc", "ppo"):
            raise AnnealConfigError(
                f"strategy.schedule[{index}].mode must be bc or ppo, got {data.get('mode')!r}"
            )
        try:
            cycle, epochs = int(data.get("cycle", index)), int(data.get("epochs", 1))
            weight = float(data.get("bc_weight", 1.0 if mode == "bc" else 0.0))
        except (TypeError, ValueError) as exc:
            raise AnnealConfigError(f"strategy.schedule[{index}]: {exc}") from exc
        if cycle < 0 or epochs < 1:
            raise AnnealConfigError(
                f"strategy.schedule[{index}] needs cycle >= 0 and epochs >= 1 "
                f"(got cycle={cycle}, epochs={epochs})"
            )
        if not (math.isfinite(weight) and 0.0 <= weight <= 1.0):
            raise AnnealConfigError(f"strategy.schedule[{index}].bc_weight must be in [0, 1], got {weight}")
        return cls(cycle=cycle, mode=mode, epochs=epochs, bc_weight=weight)

    def dirname(self, index: int) -> str:
        return f"{index:02d}_c{self.cycle}_{self.mode}"


class AnnealStrategy(StrategyBase):
    """``strategy=anneal`` (the default main job); keywords are ``AnnealStrategyConfig``'s fields."""

    name = "anneal"
    requires_torch = True

    def __init__(
        self,
        bc: Any,
        ppo: Any,
        schedule: Sequence[Any],
        accuracy_threshold: float = 0.9,
        tolerances: Mapping[str, Any] | None = None,
        promotion: Mapping[str, Any] | None = None,
        baseline_update: str = "on_pass",
        dataset_label: str | None = None,
        stage_evaluation: bool = True,
        chain_stages: bool = False,
        bc_loss_coef: float = 1.0,
        teacher_mix: bool = False,
        evaluation_episodes: int | None = None,
    ) -> None:
        stages = [Stage.from_any(s, i) for i, s in enumerate(_plain(schedule) or [])]
        if not stages:
            raise AnnealConfigError(
                "strategy.schedule is empty; give at least one stage, e.g. [{cycle: 0, mode: bc, epochs: 5}]"
            )
        if not 0.0 <= float(accuracy_threshold) <= 1.0:
            raise AnnealConfigError(
                f"strategy.accuracy_threshold must be in [0, 1], got {accuracy_threshold}"
            )
        if not (math.isfinite(float(bc_loss_coef)) and float(bc_loss_coef) >= 0):
            raise AnnealConfigError(f"strategy.bc_loss_coef must be >= 0, got {bc_loss_coef}")
        if evaluation_episodes is not None and int(evaluation_episodes) < 1:
            raise AnnealConfigError(
                f"strategy.evaluation_episodes must be >= 1 or null, got {evaluation_episodes}"
            )
        if str(baseline_update) not in BASELINE_UPDATES:
            raise AnnealConfigError(
                f"strategy.baseline_update must be one of {list(BASELINE_UPDATES)}, got {baseline_update!r}"
            )
        promo = dict(_plain(promotion) or {})
        unknown = sorted(set(promo) - {"record", "required_passes", "hold_resets_streak"})
        if unknown:
            raise AnnealConfigError(f"strategy.promotion has unknown key(s) {unknown}")
        if int(promo.get("required_passes", 2)) < 1:
            raise AnnealConfigError("strategy.promotion.required_passes must be >= 1")
        for key, node in (("bc", bc), ("ppo", ppo)):
            if any(s.mode == key for s in stages) and node is None:
                raise AnnealConfigError(f"the schedule has {key} stages but strategy.{key} is not set")
        # Stable sort: stages with the same cycle keep their listed order (e.g. BC then PPO in cycle 0).
        self.schedule: list[Stage] = sorted(stages, key=lambda s: s.cycle)
        self.bc = bc
        self.ppo = ppo
        self.accuracy_threshold = float(accuracy_threshold)
        self.tolerances = GuardrailTolerances.from_mapping(_plain(tolerances))
        self.record_promotion = bool(promo.get("record", True))
        self.required_passes = int(promo.get("required_passes", 2))
        self.hold_resets_streak = bool(promo.get("hold_resets_streak", True))
        self.baseline_update = str(baseline_update)
        self.dataset_label = dataset_label
        self.stage_evaluation = bool(stage_evaluation)
        self.chain_stages = bool(chain_stages)
        self.bc_loss_coef = float(bc_loss_coef)
        self.teacher_mix = bool(teacher_mix)
        self.evaluation_episodes = None if evaluation_episodes is None else int(evaluation_episodes)

    # ------------------------------------------------------------------ building the stages
    def build_stage_strategy(self, stage: Stage, context: TrainingContext) -> Any:
        """The BC or PPO strategy for one stage, from its config node with the stage's overrides."""
        node = self.bc if stage.mode == "bc" else self.ppo
        overrides: dict[str, Any] = {"epochs": stage.epochs}
        if stage.mode == "ppo":
            overrides.update(self._ppo_overrides(node, stage, context))
        else:  # the BC value-head warm-up must learn the critic PPO will use: same discount
            ppo_cfg = _plain(self.ppo) if _is_config_node(self.ppo) else vars(self.ppo)
            if ppo_cfg.get("gamma") is not None:
                overrides["gamma"] = float(ppo_cfg["gamma"])
        if _is_config_node(node):
            from townlet.config.instantiate import build

            accepted = _accepted_keywords(_plain(node).get("_target_"))
            return build(node, **{k: v for k, v in overrides.items() if accepted is None or k in accepted})
        strategy = copy.copy(node)  # an already-built strategy (tests, Python callers)
        for key, value in overrides.items():
            if hasattr(strategy, key):
                setattr(strategy, key, value)
        return strategy

    def _ppo_overrides(self, node: Any, stage: Stage, context: TrainingContext) -> dict[str, Any]:
        """``epochs`` means update iterations for PPO: in rollout mode, total_steps is sized to match.

        ``bc_weight`` becomes the kickstarting weight ``bc_coef`` (and, with ``teacher_mix``, the
        ``teacher_mix`` keyword of a PPO strategy that mixes natively; see ``_with_teacher_mix``).
        """
        cfg = _plain(node) if _is_config_node(node) else vars(node)
        out: dict[str, Any] = {"bc_coef": stage.bc_weight * self.bc_loss_coef}
        if self.teacher_mix:
            out["teacher_mix"] = stage.bc_weight
        if str(cfg.get("data_mode", "rollout")) != "replay":
            envs = cfg.get("num_envs") or getattr(context.world, "num_envs", 1)
            agents = cfg.get("num_agents") or getattr(context.world, "num_agents", 1)
            out["total_steps"] = int(stage.epochs) * int(envs) * int(agents) * int(cfg.get("n_steps", 64))
        return out

    # ------------------------------------------------------------------ the run
    def run(self, context: TrainingContext) -> AnnealSummaryDTO:
        self.ensure_torch()
        from townlet.dto import AnnealSummaryDTO

        started = time.perf_counter()
        log = context.log
        label = self.dataset_label or default_dataset_label(context)
        state_dir = _state_dir(context)
        store = _baseline_store(state_dir)
        stored: dict[int, GuardrailMetrics] = {}
        for s in self.schedule:
            entry = store.get(baseline_key(label, s.cycle)) if store is not None and s.mode == "ppo" else None
            if entry:
                stored[s.cycle] = GuardrailMetrics.from_mapping(entry)
        log.info(
            "anneal: %d stages, label=%s, stored baselines for cycles %s",
            len(self.schedule),
            label,
            sorted(stored) or "none",
        )
        observed: dict[int, GuardrailMetrics] = {}
        previous: GuardrailMetrics | None = None

        results: list[AnnealStageResultDTO] = []
        stage_dirs: list[Path] = []
        checkpoint = context.init_from  # what the next stage starts from
        last_passing = _Passing(-1, None, context.init_from, None)  # a failed BC stage rolls back here
        best: _Passing | None = None  # best-evaluated passing stage: where a return flag rolls back to
        bc_acc: float | None = None
        bc_passed = True
        evaluation = None
        for index, stage in enumerate(self.schedule):
            is_last = index == len(self.schedule) - 1
            baseline = stored.get(stage.cycle) or (previous if self.chain_stages else None)
            child = self._stage_context(
                context, stage, index, checkpoint, label, bc_acc, bc_passed, baseline, is_last
            )
            log.info(
                "anneal: stage %d/%d cycle=%d mode=%s epochs=%d bc_weight=%.2f init_from=%s",
                index + 1,
                len(self.schedule),
                stage.cycle,
                stage.mode,
                stage.epochs,
                stage.bc_weight,
                checkpoint or "scratch",
            )
            strategy = self.build_stage_strategy(stage, child)
            if self.teacher_mix:
                child = _with_teacher_mix(child, stage, strategy)
            dto = strategy.run(child)
            if stage.mode == "bc":
                result, passed = self._bc_result(stage, dto)
                bc_acc, bc_passed = result.accuracy, passed
                if not passed:
                    result = result.model_copy(update={"rolled_back": True})
                    results.append(result)
                    stage_dirs.append(child.run_dir.path)
                    _write_stage(child, result)
                    log.warning(
                        "anneal: BC stage cycle=%d accuracy %.3f < threshold %.3f: FAIL, rolling back to %s",
                        stage.cycle,
                        result.accuracy or 0.0,
                        self.accuracy_threshold,
                        last_passing.checkpoint or "no checkpoint",
                    )
                    break
            else:
                reference = None if best is None else best.mean_return
                result, current = self._ppo_result(stage, dto, baseline, reference)
                b = baseline or GuardrailMetrics()
                child.metrics.log(
                    {
                        "strategy": "anneal",
                        "anneal_loss_baseline": b.loss_total,
                        "anneal_queue_baseline": b.queue_conflict_events,
                        "anneal_intensity_baseline": b.queue_conflict_intensity_sum,
                        "anneal_loss_flag": result.anneal_loss_flag,
                        "anneal_queue_flag": result.anneal_queue_flag,
                        "anneal_intensity_flag": result.anneal_intensity_flag,
                        "anneal_return": result.mean_return,
                        "anneal_return_baseline": result.return_baseline,
                        "anneal_return_flag": result.anneal_return_flag,
                        "anneal_bc_weight": stage.bc_weight,
                    },
                    force=True,
                )
                observed[stage.cycle] = current
                previous = _merge(previous, current)
            results.append(result)
            stage_dirs.append(child.run_dir.path)
            _write_stage(child, result)
            checkpoint = getattr(dto, "checkpoint", None) or checkpoint
            evaluation = getattr(dto, "evaluation", None) or evaluation
            last_passing = _Passing(index, result.mean_return, checkpoint, evaluation)
            if not result.anneal_return_flag and _improves(result.mean_return, best):
                best = last_passing

        status = anneal_status(results)
        chosen = last_passing
        if best is not None and any(r.anneal_return_flag for r in results):
            chosen = best  # a PPO stage lost return: end with the best-evaluated passing policy
            for i in range(best.index + 1, len(results)):
                results[i] = results[i].model_copy(update={"rolled_back": True})
                atomic_write_json(stage_dirs[i] / STAGE_FILE, results[i].model_dump(mode="json"))
            log.warning(
                "anneal: return flag raised; the final policy rolls back to stage %d (return %s)",
                best.index + 1,
                best.mean_return,
            )
        final = _install_final_checkpoint(context, chosen.checkpoint)
        if chosen is not last_passing or status is AnnealStatus.FAIL:
            evaluation = _with_policy_of(evaluation, chosen.evaluation)
        baselines_out = {baseline_key(label, c): m.as_dict() for c, m in observed.items()}
        for cycle, metrics in observed.items():
            if store is not None and self._should_store(status, cycle in stored):
                store.put(baseline_key(label, cycle), metrics.as_dict(), run_dir=context.run_dir.path)

        snapshot = self._record_promotion(context, state_dir, status, final, label)
        reasons = status_reasons(results)
        summary = AnnealSummaryDTO(
            duration_sec=time.perf_counter() - started,
            seed=context.seed,
            device=getattr(context, "device_str", None),
            checkpoint=None if final is None else str(final),
            init_from=None if context.init_from is None else str(context.init_from),
            evaluation=evaluation,
            stages=results,
            status=status.value,
            dataset_label=label,
            baselines=baselines_out,
            promotion_pass_streak=None if snapshot is None else snapshot["pass_streak"],
            promotion_candidate_ready=None if snapshot is None else snapshot["candidate_ready"],
            promotion_state=None if snapshot is None else snapshot["state"],
        )
        atomic_write_json(
            context.run_dir.path / RESULTS_FILE,
            {
                "status": status.value,
                "reasons": reasons,
                "dataset_label": label,
                "stages": [r.model_dump(mode="json", exclude={"bc", "ppo"}) for r in results],
                "baselines": baselines_out,
                "stored_baselines": {baseline_key(label, c): m.as_dict() for c, m in stored.items()},
                "promotion": snapshot,
                "final_checkpoint": None if final is None else str(final),
                "final_stage_index": None if chosen.index < 0 else chosen.index,
                "state_dir": None if state_dir is None else str(state_dir),
                "run_dir": str(context.run_dir.path),
            },
        )
        context.metrics.log(
            {
                "strategy": "anneal",
                "anneal_status": status.value,
                "anneal_reasons": reasons,
                "anneal_dataset": label,
                "promotion_pass_streak": summary.promotion_pass_streak,
                "promotion_candidate_ready": summary.promotion_candidate_ready,
            },
            force=True,
        )
        log.info("anneal: status %s%s", status.value, f" ({', '.join(reasons)})" if reasons else "")
        if snapshot is not None:
            log.info(
                "promotion: state=%s pass_streak=%d/%d candidate_ready=%s",
                snapshot["state"],
                snapshot["pass_streak"],
                snapshot["required_passes"],
                snapshot["candidate_ready"],
            )
        return summary

    # ------------------------------------------------------------------ pieces
    def _stage_context(
        self,
        context: TrainingContext,
        stage: Stage,
        index: int,
        init_from: str | None,
        label: str,
        bc_acc: float | None,
        bc_passed: bool,
        baseline: GuardrailMetrics | None,
        is_last: bool,
    ) -> TrainingContext:
        """The parent context re-pointed at the stage's directory, checkpoint and anneal context.

        Training seeds differ per stage (two PPO stages must not replay the same rollouts); the
        evaluation seed does not, so every stage's policy is judged on the same episodes (as many
        as ``evaluation_episodes``, when set: the return guardrail needs more than a couple).
        """
        from townlet.runs.rundir import RunDir
        from townlet.strategies.context import AnnealContext

        b = baseline or GuardrailMetrics()
        anneal = AnnealContext(
            cycle=stage.cycle,
            stage=stage.mode,
            dataset_label=label,
            bc_accuracy=bc_acc,
            bc_threshold=self.accuracy_threshold,
            bc_passed=bc_passed,
            bc_weight=stage.bc_weight,
            loss_baseline=b.loss_total,
            queue_baseline=b.queue_conflict_events,
            intensity_baseline=b.queue_conflict_intensity_sum,
            tolerances=self.tolerances.as_dict(),
        )
        seed = int(context.seed) + 1000 * index
        evaluation = context.evaluation
        if is_dataclass(evaluation) and not isinstance(evaluation, type):
            eval_on = bool(evaluation.enabled) and (self.stage_evaluation or is_last)
            evaluation = replace(
                evaluation,
                enabled=eval_on,
                seed_offset=int(evaluation.seed_offset) - 1000 * index,
                baselines=bool(evaluation.baselines) and is_last,
                episodes=self.evaluation_episodes or int(evaluation.episodes),
            )
        tags = {"anneal_stage_index": index, "anneal_cycle": stage.cycle, "anneal_stage": stage.mode}
        return replace(
            context,
            seed=seed,
            run_dir=RunDir(context.run_dir.path / STAGES_DIR / stage.dirname(index)),
            init_from=None if init_from is None else str(init_from),
            resume=False,
            anneal=anneal,
            metrics=TaggedMetrics(context.metrics, tags),  # type: ignore[arg-type]  # duck-typed writer
            evaluation=evaluation,
        )

    def _bc_result(self, stage: Stage, dto: Any) -> tuple[AnnealStageResultDTO, bool]:
        from townlet.dto import AnnealStageResultDTO

        accuracy = dto.val_accuracy if dto.val_accuracy is not None else dto.accuracy
        loss = dto.val_loss if dto.val_loss is not None else dto.loss
        passed = accuracy is not None and float(accuracy) >= self.accuracy_threshold
        return (
            AnnealStageResultDTO(
                duration_sec=dto.duration_sec,
                cycle=stage.cycle,
                mode="bc",
                epochs=stage.epochs,
                accuracy=accuracy,
                loss=loss,
                threshold=self.accuracy_threshold,
                passed=passed,
                bc_weight=stage.bc_weight,
                rolled_back=False,
                mean_return=_mean_return(dto),
                bc=dto,
            ),
            passed,
        )

    def _ppo_result(
        self, stage: Stage, dto: Any, baseline: GuardrailMetrics | None, return_reference: float | None
    ) -> tuple[AnnealStageResultDTO, GuardrailMetrics]:
        """Judge the stage with the shared rules (whatever PPO itself logged per iteration)."""
        from townlet.dto import AnnealStageResultDTO

        current = GuardrailMetrics.from_mapping(
            {
                "loss_total": dto.loss_total,
                "queue_conflict_events": dto.queue_conflict_events,
                "queue_conflict_intensity_sum": dto.queue_conflict_intensity_sum,
            }
        )
        flags = evaluate_flags(current, baseline, self.tolerances)
        mean_return = _mean_return(dto)
        return (
            AnnealStageResultDTO(
                duration_sec=dto.duration_sec,
                cycle=stage.cycle,
                mode="ppo",
                epochs=stage.epochs,
                bc_weight=stage.bc_weight,
                loss_total=dto.loss_total,
                loss_policy=dto.loss_policy,
                loss_value=dto.loss_value,
                queue_conflict_events=dto.queue_conflict_events,
                queue_conflict_intensity_sum=dto.queue_conflict_intensity_sum,
                anneal_loss_flag=flags.loss,
                anneal_queue_flag=flags.queue,
                anneal_intensity_flag=flags.intensity,
                mean_return=mean_return,
                return_baseline=return_reference,
                anneal_return_flag=return_flag(mean_return, return_reference, self.tolerances),
                ppo=dto,
            ),
            current,
        )

    def _should_store(self, status: AnnealStatus, has_stored: bool) -> bool:
        if self.baseline_update == "always":
            return True
        if self.baseline_update == "never":
            return False
        return status is AnnealStatus.PASS or not has_stored

    def _record_promotion(
        self,
        context: TrainingContext,
        state_dir: Path | None,
        status: AnnealStatus,
        final: Path | None,
        label: str,
    ) -> dict[str, Any] | None:
        if not self.record_promotion or state_dir is None:
            return None
        from townlet.promotion.state import PromotionService

        service = PromotionService(
            state_dir, required_passes=self.required_passes, hold_resets_streak=self.hold_resets_streak
        )
        return service.record_evaluation(
            status.value,
            run_dir=context.run_dir.path,
            checkpoint=final,
            detail={"dataset_label": label, "cycle": self.schedule[-1].cycle},
        )


class TaggedMetrics:
    """Adds the stage's ``anneal_*`` tags to every record a stage strategy logs (shared file)."""

    def __init__(self, inner: Any, tags: Mapping[str, Any]) -> None:
        self._inner = inner
        self._tags = dict(tags)

    def log(self, record: Mapping[str, Any], *, force: bool = False) -> bool:
        return bool(self._inner.log({**self._tags, **dict(record)}, force=force))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


# ---------------------------------------------------------------------- module helpers
def default_dataset_label(context: TrainingContext) -> str:
    """``<dataset kind>/<world name>-<hash of the world config>``: baselines are only comparable
    between runs on the same data source and the same world."""
    kind = getattr(context.dataset, "kind", None) or getattr(context.dataset, "name", None) or "dataset"
    world = context.world
    raw = asdict(world) if is_dataclass(world) and not isinstance(world, type) else _plain(world)
    digest = hashlib.sha1(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{getattr(kind, 'value', kind)}/{getattr(world, 'name', 'world')}-{digest}"


def baseline_key(label: str, cycle: int) -> str:
    """Baselines are kept per label *and* cycle: a stage is compared with the same stage (same
    bc_weight, same place in the schedule) of earlier runs, i.e. like with like."""
    return f"{label}@cycle{cycle}"


def _plain(node: Any) -> Any:
    """OmegaConf containers → plain Python; anything else unchanged."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a core dependency
        return node
    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _is_config_node(node: Any) -> bool:
    plain = _plain(node)
    return isinstance(plain, Mapping) and "_target_" in plain


def _accepted_keywords(target: str | None) -> set[str] | None:
    """Constructor keywords of ``target`` (None = accepts anything / unknown)."""
    if not target:
        return None
    import importlib

    module, _, attr = target.rpartition(".")
    try:
        params = inspect.signature(getattr(importlib.import_module(module), attr)).parameters
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return set(params)


def _state_dir(context: TrainingContext) -> Path | None:
    service = getattr(context.services, "promotion", None)
    value = getattr(service, "state_dir", None) or context.metadata.get("state_dir")
    return None if value is None else Path(value)


def _baseline_store(state_dir: Path | None) -> Any:
    if state_dir is None:
        return None
    from townlet.promotion.baselines import BaselineStore

    return BaselineStore(state_dir)


def _merge(old: GuardrailMetrics | None, new: GuardrailMetrics) -> GuardrailMetrics:
    """New values win; a metric the new stage did not report keeps its old baseline."""
    merged = {**(old.as_dict() if old else {}), **new.as_dict()}
    return GuardrailMetrics.from_mapping(merged)


def _with_teacher_mix(child: TrainingContext, stage: Stage, strategy: Any) -> TrainingContext:
    """Give a PPO stage the teacher-mixed rollout service, unless PPO mixes natively (``teacher_mix``).

    ``bc_weight`` = probability that the scripted action is executed; the mixture's exact log-prob is
    recorded, so PPO's ratios stay correct (see ``townlet.rollout.teacher_mix``).
    """
    if stage.mode != "ppo" or stage.bc_weight <= 0.0 or hasattr(strategy, "teacher_mix"):
        return child
    if str(getattr(strategy, "data_mode", "rollout")) == "replay":
        child.log.warning("anneal: bc_weight=%.2f has no effect in PPO replay mode", stage.bc_weight)
        return child
    rollout = getattr(child.services, "rollout", None)
    if rollout is None:
        return child
    from townlet.rollout.teacher_mix import TeacherMixRollout

    mixed = TeacherMixRollout(rollout, stage.bc_weight, seed=child.seed)
    return replace(child, services=replace(child.services, rollout=mixed))


def _write_stage(child: TrainingContext, result: Any) -> None:
    atomic_write_json(child.run_dir.path / STAGE_FILE, result.model_dump(mode="json"))


def _install_final_checkpoint(context: TrainingContext, source: str | None) -> Path | None:
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


def _mean_return(dto: Any) -> float | None:
    """The evaluated mean return of a stage's policy (None when the stage was not evaluated)."""
    evaluation = getattr(dto, "evaluation", None)
    policy = getattr(evaluation, "policy", None)
    value = getattr(policy, "mean_return", None)
    return None if value is None or not math.isfinite(float(value)) else float(value)


def _improves(value: float | None, best: _Passing | None) -> bool:
    """At least as good as the best so far (ties go to the later, longer-trained stage)."""
    if value is None:
        return best is None
    return best is None or best.mean_return is None or value >= best.mean_return


def _with_policy_of(last: Any, chosen: Any) -> Any:
    """The run's evaluation block for a rolled-back policy: the chosen stage's policy row next to the
    scripted/random rows of the last evaluated stage (same seeds and episodes, so comparable)."""
    if chosen is None:
        return last
    if last is None or getattr(chosen, "scripted", None) is not None:
        return chosen
    return last.model_copy(update={"policy": chosen.policy})


__all__ = ["AnnealConfigError", "AnnealStrategy", "Stage", "TaggedMetrics", "default_dataset_label"]
