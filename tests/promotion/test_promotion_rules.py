"""Guardrail flags, run status and promotion verdict rules (pure functions, hand-computed cases)."""

from __future__ import annotations

import pytest

from townlet.config.schema.strategy_anneal import FlagDirection
from townlet.dto import AnnealStageResultDTO
from townlet.promotion.rules import (
    AnnealStatus,
    GuardrailConfigError,
    GuardrailFlags,
    GuardrailMetrics,
    GuardrailTolerances,
    StageOutcome,
    Verdict,
    anneal_status,
    breaches,
    evaluate_flags,
    promotion_decision,
    relative_change,
    return_flag,
    status_reasons,
)


def bc(cycle: int, passed: bool) -> dict:
    return {"cycle": cycle, "mode": "bc", "passed": passed, "accuracy": 0.95 if passed else 0.5}


def ppo(
    cycle: int, loss: bool = False, queue: bool = False, intensity: bool = False, ret: bool = False
) -> dict:
    return {
        "cycle": cycle,
        "mode": "ppo",
        "anneal_loss_flag": loss,
        "anneal_queue_flag": queue,
        "anneal_intensity_flag": intensity,
        "anneal_return_flag": ret,
    }


# -- relative change and directions ------------------------------------------------------------


def test_relative_change_uses_absolute_baseline() -> None:
    assert relative_change(1.2, 1.0) == pytest.approx(0.2)
    assert relative_change(0.8, 1.0) == pytest.approx(-0.2)
    # Negative baseline: moving up (towards 0) is a rise, +50 %.
    assert relative_change(-1.0, -2.0) == pytest.approx(0.5)
    assert relative_change(1.0, None) is None
    assert relative_change(1.0, 0.0) is None
    assert relative_change(float("nan"), 1.0) is None


@pytest.mark.parametrize(
    ("value", "direction", "expected"),
    [
        (0.80, "drop", True),  # -20 % < -15 %
        (0.80, "rise", False),
        (0.80, "both", True),
        (1.20, "drop", False),
        (1.20, "rise", True),
        (1.20, "both", True),
        (0.90, "both", False),  # -10 % within 15 %
        (1.10, "both", False),
    ],
)
def test_breach_directions(value: float, direction: str, expected: bool) -> None:
    assert breaches(value, 1.0, 0.15, direction) is expected


def test_breach_is_strict_at_the_tolerance() -> None:
    assert breaches(1.25, 1.0, 0.25, "both") is False  # exactly +25 %: not beyond
    assert breaches(1.2500001, 1.0, 0.25, "both") is True


def test_no_baseline_never_flags() -> None:
    assert breaches(100.0, None, 0.1, "both") is False
    assert breaches(100.0, 0.0, 0.1, "both") is False  # relative change against 0 is undefined
    flags = evaluate_flags(GuardrailMetrics(loss_total=5.0, queue_conflict_events=3.0), None)
    assert flags == GuardrailFlags()


def test_default_tolerances_are_010_and_015() -> None:
    tol = GuardrailTolerances()
    assert (tol.loss, tol.queue, tol.intensity) == (0.10, 0.15, 0.15)
    base = GuardrailMetrics(loss_total=1.0, queue_conflict_events=100.0, queue_conflict_intensity_sum=50.0)
    # loss +12 % > 10 % flags; queue -12 % < 15 % does not; intensity -20 % does.
    cur = GuardrailMetrics(loss_total=1.12, queue_conflict_events=88.0, queue_conflict_intensity_sum=40.0)
    flags = evaluate_flags(cur, base)
    assert (flags.loss, flags.queue, flags.intensity) == (True, False, True)


def _towards(direction: FlagDirection) -> GuardrailTolerances:
    return GuardrailTolerances(
        loss_direction=direction, queue_direction=direction, intensity_direction=direction
    )


def test_configured_tolerances_and_directions_change_the_flags() -> None:
    base = GuardrailMetrics(loss_total=1.0, queue_conflict_events=100.0, queue_conflict_intensity_sum=50.0)
    cur = GuardrailMetrics(loss_total=1.12, queue_conflict_events=130.0, queue_conflict_intensity_sum=60.0)
    loose = GuardrailTolerances(loss=0.2, queue=0.5, intensity=0.5)
    assert evaluate_flags(cur, base, loose) == GuardrailFlags()
    drop_only = _towards(FlagDirection.drop)
    assert evaluate_flags(cur, base, drop_only) == GuardrailFlags()  # everything rose
    rise_only = _towards(FlagDirection.rise)
    flags = evaluate_flags(cur, base, rise_only)
    assert (flags.loss, flags.queue, flags.intensity) == (True, True, True)


def test_negative_loss_baseline_can_flag() -> None:
    # The new upstream code never flagged with a negative baseline; we do (|base| in the denominator).
    flags = evaluate_flags(GuardrailMetrics(loss_total=-0.5), GuardrailMetrics(loss_total=-1.0))
    assert flags.loss


@pytest.mark.parametrize(
    "kwargs",
    [{"loss": -0.1}, {"queue": float("nan")}, {"loss_direction": "up"}, {"intensity_direction": "sideways"}],
)
def test_invalid_tolerances_are_rejected(kwargs: dict) -> None:
    with pytest.raises(GuardrailConfigError):
        GuardrailTolerances(**kwargs)


def test_tolerances_from_mapping_rejects_typos() -> None:
    assert GuardrailTolerances.from_mapping({"loss": 0.3}).loss == 0.3
    with pytest.raises(GuardrailConfigError, match="losss"):
        GuardrailTolerances.from_mapping({"losss": 0.3})


# -- status and reasons --------------------------------------------------------------------------


def test_status_rules() -> None:
    assert anneal_status([bc(0, True), ppo(1), ppo(2)]) is AnnealStatus.PASS
    assert anneal_status([bc(0, True), ppo(1, queue=True)]) is AnnealStatus.HOLD
    assert anneal_status([bc(0, True), ppo(1, intensity=True)]) is AnnealStatus.HOLD
    assert anneal_status([bc(0, True), ppo(1), ppo(2, ret=True)]) is AnnealStatus.HOLD
    assert anneal_status([bc(0, False)]) is AnnealStatus.FAIL
    # FAIL wins over flags, wherever the failed BC stage is.
    assert anneal_status([ppo(0, loss=True), bc(1, False)]) is AnnealStatus.FAIL
    # A BC stage with passed=None (not judged) does not fail the run.
    assert anneal_status([{"cycle": 0, "mode": "bc", "passed": None}]) is AnnealStatus.PASS


def test_reasons_name_the_cycle() -> None:
    stages = [bc(0, True), ppo(1, loss=True, ret=True), ppo(2, queue=True, intensity=True), bc(3, False)]
    assert status_reasons(stages) == [
        "loss_flag_cycle_1",
        "return_flag_cycle_1",
        "queue_flag_cycle_2",
        "intensity_flag_cycle_2",
        "bc_stage_failed_cycle_3",
    ]


def test_return_flag_default_is_a_5_percent_drop_of_the_reference() -> None:
    # Returns are negative here: -10.6 vs -10 is a 6 % drop, -10.4 a 4 % one; rises never flag.
    assert return_flag(-10.6, -10.0) is True
    assert return_flag(-10.4, -10.0) is False
    assert return_flag(-10.5, -10.0) is False  # exactly the tolerance: strict
    assert return_flag(-5.0, -10.0) is False
    assert return_flag(-20.0, None) is False  # no evaluated reference (stage_evaluation off)
    assert return_flag(None, -10.0) is False
    tol = GuardrailTolerances(eval_return=0.01, eval_return_direction=FlagDirection.both)
    assert return_flag(-9.8, -10.0, tol) is True


def test_stage_outcome_accepts_dtos_and_rejects_bad_mode() -> None:
    dto = AnnealStageResultDTO(cycle=2.0, mode="ppo", anneal_loss_flag=True, anneal_queue_flag=False)
    assert StageOutcome.of(dto) == StageOutcome(cycle=2.0, mode="ppo", passed=None, flags=("loss",))
    with pytest.raises(ValueError, match="mode"):
        StageOutcome.of({"cycle": 0, "mode": "dagger"})


@pytest.mark.parametrize(
    ("stages", "ready", "verdict", "reasons", "code"),
    [
        ([bc(0, True), ppo(1)], True, Verdict.PROMOTE, (), 0),
        ([bc(0, True), ppo(1)], False, Verdict.HOLD, ("candidate_not_ready",), 1),
        ([bc(0, True), ppo(1, loss=True)], True, Verdict.HOLD, ("loss_flag_cycle_1",), 1),
        ([bc(0, True), ppo(1, queue=True)], False, Verdict.HOLD, ("queue_flag_cycle_1",), 1),
        ([bc(0, False)], True, Verdict.FAIL, ("bc_stage_failed_cycle_0",), 2),
    ],
)
def test_promotion_decision(stages: list, ready: bool, verdict: Verdict, reasons: tuple, code: int) -> None:
    decision = promotion_decision(stages, candidate_ready=ready)
    assert decision.verdict is verdict
    assert decision.reasons == reasons
    assert decision.exit_code == code
