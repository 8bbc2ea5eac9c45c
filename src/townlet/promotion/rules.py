"""Pure anneal guardrail and status rules (torch-free, no I/O), shared by the strategy, the CLI and tests: a
*flag* fires when a PPO stage's metric moved beyond a relative tolerance from its baseline; a run is FAIL if
a BC stage failed, else HOLD if a flag fired, else PASS; only a PASS run with a ready candidate is PROMOTE."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from townlet.config.schema.strategy_anneal import FlagDirection, GuardrailTolerancesConfig
from townlet.runs.atomic import finite_or_none

#: Guardrail metric keys, as they appear in PPO results and in the baseline store, and their flags.
GUARDRAIL_KEYS: tuple[str, ...] = ("loss_total", "queue_conflict_events", "queue_conflict_intensity_sum")
FLAGS: tuple[str, ...] = ("loss", "queue", "intensity")
STAGE_FLAGS: tuple[str, ...] = (*FLAGS, "return")


class GuardrailConfigError(ValueError):
    """A tolerance or direction is invalid; the message names the field and the allowed values."""


class AnnealStatus(StrEnum):
    PASS = "PASS"
    HOLD = "HOLD"
    FAIL = "FAIL"


class Verdict(StrEnum):
    PROMOTE = "PROMOTE"
    HOLD = "HOLD"
    FAIL = "FAIL"


@dataclass
class GuardrailTolerances(GuardrailTolerancesConfig):
    """The schema's tolerances (``strategy.tolerances``), checked."""

    def __post_init__(self) -> None:
        for name in (*FLAGS, "eval_return", "min_abs_baseline"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise GuardrailConfigError(
                    f"guardrail tolerance '{name}' must be a finite number >= 0, got {value!r}; "
                    f"e.g. strategy.tolerances.{name}=0.1"
                )
        for name in (f"{flag}_direction" for flag in (*FLAGS, "eval_return")):
            value = getattr(self, name)
            if value not in list(FlagDirection):
                raise GuardrailConfigError(
                    f"guardrail '{name}' must be one of {', '.join(FlagDirection)}, got {value!r}"
                )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> GuardrailTolerances:
        """Build from a config mapping; unknown keys are an error (typos must not pass silently)."""
        allowed = set(cls.__dataclass_fields__)
        unknown = sorted(set(data or {}) - allowed)
        if unknown:
            raise GuardrailConfigError(
                f"unknown guardrail tolerance key(s) {unknown}; allowed: {sorted(allowed)}"
            )
        return cls(**dict(data or {}))


@dataclass(frozen=True)
class GuardrailMetrics:
    """The three metrics a PPO stage is judged on (any may be unknown)."""

    loss_total: float | None = None
    queue_conflict_events: float | None = None
    queue_conflict_intensity_sum: float | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> GuardrailMetrics:
        return cls(**{k: finite_or_none((data or {}).get(k)) for k in GUARDRAIL_KEYS})

    def as_dict(self) -> dict[str, float]:
        """Known metrics only (what the baseline store and DTOs persist)."""
        return {k: float(v) for k in GUARDRAIL_KEYS if (v := getattr(self, k)) is not None}


@dataclass(frozen=True)
class GuardrailFlags:
    loss: bool = False
    queue: bool = False
    intensity: bool = False


def relative_change(
    value: float | None, baseline: float | None, min_abs_baseline: float = 1e-8
) -> float | None:
    """(value - baseline) / |baseline| (a value above a negative baseline is still a *rise*), or None when
    either side is unknown or the baseline ~ 0."""
    v, b = finite_or_none(value), finite_or_none(baseline)
    if v is None or b is None or abs(b) <= min_abs_baseline:
        return None
    return (v - b) / abs(b)


def breaches(
    value: float | None,
    baseline: float | None,
    tolerance: float,
    direction: str,
    min_abs_baseline: float = 1e-8,
) -> bool:
    """True when value moved beyond ``tolerance`` (relative, strictly) from baseline in ``direction``;
    no baseline never flags (a label's first PPO stage has nothing to compare against)."""
    change = relative_change(value, baseline, min_abs_baseline)
    if change is None:
        return False
    if direction == FlagDirection.drop:
        return change < -tolerance
    if direction == FlagDirection.rise:
        return change > tolerance
    return abs(change) > tolerance


def evaluate_flags(
    current: GuardrailMetrics,
    baseline: GuardrailMetrics | None,
    tolerances: GuardrailTolerances | None = None,
) -> GuardrailFlags:
    """Loss / queue-event / queue-intensity flags of one PPO stage against its baseline."""
    if baseline is None:
        return GuardrailFlags()
    tol = tolerances or GuardrailTolerances()
    limits = {f: (getattr(tol, f), getattr(tol, f"{f}_direction"), tol.min_abs_baseline) for f in FLAGS}
    pairs = zip(FLAGS, GUARDRAIL_KEYS, strict=True)
    return GuardrailFlags(
        **{f: breaches(getattr(current, k), getattr(baseline, k), *limits[f]) for f, k in pairs}
    )


def return_flag(
    value: float | None, reference: float | None, tolerances: GuardrailTolerances | None = None
) -> bool:
    """Did a PPO stage's evaluated return move beyond ``eval_return`` (relative) from the reference: the
    best return of the passing stages before it, so a slow drift cannot slip under the tolerance?"""
    tol = tolerances or GuardrailTolerances()
    return breaches(value, reference, tol.eval_return, tol.eval_return_direction, tol.min_abs_baseline)


@dataclass(frozen=True)
class StageOutcome:
    """What the status rules need from one stage; ``flags`` names those that fired, in reporting order."""

    cycle: float
    mode: str
    passed: bool | None
    flags: tuple[str, ...]

    @classmethod
    def of(cls, stage: Any) -> StageOutcome:
        """From a stage DTO or an ``anneal_results.json`` row (its ``anneal_<flag>_flag`` keys)."""
        row = stage if isinstance(stage, Mapping) else dict(stage)
        mode = str(row.get("mode", "")).lower()
        if mode not in ("bc", "ppo"):
            raise ValueError(f"stage mode must be 'bc' or 'ppo', got {row.get('mode')!r} in {dict(row)!r}")
        passed = row.get("passed")
        flags = tuple(f for f in STAGE_FLAGS if row.get(f"anneal_{f}_flag"))
        return cls(float(row.get("cycle", 0.0)), mode, None if passed is None else bool(passed), flags)


def anneal_status(stages: Iterable[Any]) -> AnnealStatus:
    """Any failed BC stage → FAIL; else any PPO flag (loss, queue, intensity, return) → HOLD; else PASS."""
    outcomes = [StageOutcome.of(s) for s in stages]
    if any(s.mode == "bc" and s.passed is False for s in outcomes):
        return AnnealStatus.FAIL
    if any(s.mode == "ppo" and s.flags for s in outcomes):
        return AnnealStatus.HOLD
    return AnnealStatus.PASS


def status_reasons(stages: Iterable[Any]) -> list[str]:
    """Machine-readable reasons, in stage order (``bc_stage_failed_cycle_N``, ``<flag>_flag_cycle_N``)."""
    reasons: list[str] = []
    for s in map(StageOutcome.of, stages):
        c = str(int(s.cycle)) if s.cycle.is_integer() else str(s.cycle)  # 3.0 -> loss_flag_cycle_3
        if s.mode == "bc" and s.passed is False:
            reasons.append(f"bc_stage_failed_cycle_{c}")
        if s.mode == "ppo":
            reasons += [f"{f}_flag_cycle_{c}" for f in s.flags]
    return reasons


@dataclass(frozen=True)
class PromotionDecision:
    verdict: Verdict
    status: AnnealStatus
    reasons: tuple[str, ...]

    @property
    def exit_code(self) -> int:
        """``townlet-promote evaluate``'s exit code: scripts branch on it (0 promote, 1 hold, 2 fail)."""
        return {Verdict.PROMOTE: 0, Verdict.HOLD: 1, Verdict.FAIL: 2}[self.verdict]


def promotion_decision(stages: Iterable[Any], candidate_ready: bool) -> PromotionDecision:
    """PASS + ready → PROMOTE; PASS not ready → HOLD (candidate_not_ready); HOLD → HOLD; FAIL → FAIL.
    FAIL lists only the failed BC stages (a failed stage ends the schedule); HOLD lists every flag."""
    stages = list(stages)
    status = anneal_status(stages)
    reasons = status_reasons(stages)
    if status is AnnealStatus.FAIL:
        return PromotionDecision(Verdict.FAIL, status, tuple(r for r in reasons if r.startswith("bc_stage")))
    if status is AnnealStatus.HOLD:
        return PromotionDecision(Verdict.HOLD, status, tuple(reasons))
    if not candidate_ready:
        return PromotionDecision(Verdict.HOLD, status, ("candidate_not_ready",))
    return PromotionDecision(Verdict.PROMOTE, status, ())
