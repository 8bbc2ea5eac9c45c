"""Pure anneal guardrail and status rules (torch-free, no I/O): one home for the strategy, the CLI and tests.

* a guardrail *flag* fires when a PPO stage's metric moved from its baseline by more than a relative
  tolerance in the configured direction (``drop``, ``rise``, ``both``); the *return* flag compares the
  stage's evaluated return with the best earlier passing stage's (BC's first);
* the run *status* is FAIL if any BC stage failed, else HOLD if any flag fired, else PASS;
* the promotion *verdict* is PROMOTE only for a PASS run whose candidate is ready."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from townlet.runs.atomic import finite_or_none

Direction = Literal["drop", "rise", "both"]
DIRECTIONS: tuple[str, ...] = ("drop", "rise", "both")

#: Guardrail metric keys, as they appear in PPO results and in the baseline store, and their flags.
GUARDRAIL_KEYS: tuple[str, ...] = ("loss_total", "queue_conflict_events", "queue_conflict_intensity_sum")
FLAGS: tuple[str, ...] = ("loss", "queue", "intensity")


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


#: Exit codes of ``townlet-promote evaluate``: scripts branch on them (0 promote, 1 hold, 2 fail).
VERDICT_EXIT_CODES: dict[Verdict, int] = {Verdict.PROMOTE: 0, Verdict.HOLD: 1, Verdict.FAIL: 2}


@dataclass(frozen=True)
class GuardrailTolerances:
    """Relative tolerances and directions of the guardrail flags.

    Queue flags watch both directions: a surge of conflicts is as suspicious as a collapse.
    ``eval_return`` guards each PPO stage's evaluated return, so PPO cannot undo the clone unnoticed.
    Baselines within ``min_abs_baseline`` of zero count as absent (a change relative to ~0 means nothing).
    """

    loss: float = 0.10
    queue: float = 0.15
    intensity: float = 0.15
    eval_return: float = 0.05
    loss_direction: Direction = "both"
    queue_direction: Direction = "both"
    intensity_direction: Direction = "both"
    eval_return_direction: Direction = "drop"
    min_abs_baseline: float = 1e-8

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
            if value not in DIRECTIONS:
                raise GuardrailConfigError(
                    f"guardrail '{name}' must be one of {', '.join(DIRECTIONS)}, got {value!r}"
                )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> GuardrailTolerances:
        """Build from a config mapping; unknown keys are an error (typos must not pass silently)."""
        if not data:
            return cls()
        allowed = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise GuardrailConfigError(
                f"unknown guardrail tolerance key(s) {unknown}; allowed: {sorted(allowed)}"
            )
        return cls(**dict(data))

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True)
class GuardrailMetrics:
    """The three metrics a PPO stage is judged on (any may be unknown)."""

    loss_total: float | None = None
    queue_conflict_events: float | None = None
    queue_conflict_intensity_sum: float | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> GuardrailMetrics:
        if not data:
            return cls()
        return cls(**{k: finite_or_none(data.get(k)) for k in GUARDRAIL_KEYS})

    def as_dict(self) -> dict[str, float]:
        """Known metrics only (what the baseline store and DTOs persist)."""
        return {k: float(v) for k in GUARDRAIL_KEYS if (v := getattr(self, k)) is not None}


@dataclass(frozen=True)
class GuardrailFlags:
    loss: bool = False
    queue: bool = False
    intensity: bool = False

    @property
    def any(self) -> bool:
        return any(getattr(self, f) for f in FLAGS)


def relative_change(
    value: float | None, baseline: float | None, min_abs_baseline: float = 1e-8
) -> float | None:
    """(value - baseline) / |baseline|, or None when either side is unknown or the baseline ~ 0.

    |baseline| keeps the sign meaningful for negative baselines (PPO's total loss often is): a value
    above the baseline is always a *rise*."""
    v, b = finite_or_none(value), finite_or_none(baseline)
    if v is None or b is None or abs(b) <= min_abs_baseline:
        return None
    return (v - b) / abs(b)


def breaches(
    value: float | None,
    baseline: float | None,
    tolerance: float,
    direction: Direction,
    min_abs_baseline: float = 1e-8,
) -> bool:
    """True when value moved beyond ``tolerance`` (relative, strictly) from baseline in ``direction``;
    no baseline never flags (a label's first PPO stage has nothing to compare against)."""
    if direction not in DIRECTIONS:
        raise GuardrailConfigError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    change = relative_change(value, baseline, min_abs_baseline)
    if change is None:
        return False
    if direction == "drop":
        return change < -tolerance
    if direction == "rise":
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
    flags = {
        flag: breaches(
            getattr(current, key),
            getattr(baseline, key),
            getattr(tol, flag),
            getattr(tol, f"{flag}_direction"),
            tol.min_abs_baseline,
        )
        for flag, key in zip(FLAGS, GUARDRAIL_KEYS, strict=True)
    }
    return GuardrailFlags(**flags)


def return_flag(
    value: float | None, reference: float | None, tolerances: GuardrailTolerances | None = None
) -> bool:
    """Did a PPO stage's evaluated return move beyond ``eval_return`` (relative) from the reference: the
    best return of the passing stages before it, so a slow drift cannot slip under the tolerance?"""
    tol = tolerances or GuardrailTolerances()
    return breaches(value, reference, tol.eval_return, tol.eval_return_direction, tol.min_abs_baseline)


STAGE_FLAGS: tuple[str, ...] = (*FLAGS, "return")


@dataclass(frozen=True)
class StageOutcome:
    """What the status rules need from one stage (built from a DTO or an anneal_results.json row)."""

    cycle: float
    mode: str
    passed: bool | None = None
    loss_flag: bool = False
    queue_flag: bool = False
    intensity_flag: bool = False
    return_flag: bool = False

    @property
    def flags(self) -> list[str]:
        """The names of the flags that fired, in reporting order."""
        return [f for f in STAGE_FLAGS if getattr(self, f"{f}_flag")]

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> StageOutcome:
        """Accepts both our short names and the DTO's ``anneal_*_flag`` names."""

        def flag(name: str) -> bool:
            return bool(row.get(f"anneal_{name}_flag") or row.get(f"{name}_flag"))

        mode = str(row.get("mode", "")).lower()
        if mode not in ("bc", "ppo"):
            raise ValueError(f"stage mode must be 'bc' or 'ppo', got {row.get('mode')!r} in {dict(row)!r}")
        passed = row.get("passed")
        flags = {f"{f}_flag": flag(f) for f in STAGE_FLAGS}
        return cls(
            cycle=float(row.get("cycle", 0.0)),
            mode=mode,
            passed=None if passed is None else bool(passed),
            **flags,
        )

    @classmethod
    def from_obj(cls, obj: Any) -> StageOutcome:
        """From any object with the DTO attribute names (e.g. ``AnnealStageResultDTO``)."""
        if isinstance(obj, StageOutcome):
            return obj
        if isinstance(obj, Mapping):
            return cls.from_mapping(obj)
        fields = ("cycle", "mode", "passed", *(f"anneal_{f}_flag" for f in STAGE_FLAGS))
        return cls.from_mapping({f: getattr(obj, f, None) for f in fields})


def _outcomes(stages: Iterable[Any]) -> list[StageOutcome]:
    return [StageOutcome.from_obj(s) for s in stages]


def anneal_status(stages: Iterable[Any]) -> AnnealStatus:
    """Any failed BC stage → FAIL; else any PPO flag (loss, queue, intensity, return) → HOLD; else PASS."""
    outcomes = _outcomes(stages)
    if any(s.mode == "bc" and s.passed is False for s in outcomes):
        return AnnealStatus.FAIL
    if any(s.mode == "ppo" and s.flags for s in outcomes):
        return AnnealStatus.HOLD
    return AnnealStatus.PASS


def status_reasons(stages: Iterable[Any]) -> list[str]:
    """Machine-readable reasons, in stage order (``bc_stage_failed_cycle_N``, ``loss_flag_cycle_N``,
    ``queue_flag_cycle_N``, ``intensity_flag_cycle_N``, ``return_flag_cycle_N``)."""
    reasons: list[str] = []
    for s in _outcomes(stages):
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
        return VERDICT_EXIT_CODES[self.verdict]


def promotion_decision(stages: Iterable[Any], candidate_ready: bool) -> PromotionDecision:
    """PASS + ready → PROMOTE; PASS not ready → HOLD (candidate_not_ready); HOLD → HOLD; FAIL → FAIL.
    FAIL lists only the failed BC stages (a failed stage ends the schedule); HOLD lists every flag."""
    outcomes = _outcomes(stages)
    status = anneal_status(outcomes)
    reasons = status_reasons(outcomes)
    if status is AnnealStatus.FAIL:
        return PromotionDecision(Verdict.FAIL, status, tuple(r for r in reasons if r.startswith("bc_stage")))
    if status is AnnealStatus.HOLD:
        return PromotionDecision(Verdict.HOLD, status, tuple(reasons))
    if not candidate_ready:
        return PromotionDecision(Verdict.HOLD, status, ("candidate_not_ready",))
    return PromotionDecision(Verdict.PROMOTE, status, ())
