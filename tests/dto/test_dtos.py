"""DTO contract: frozen, extra keys rejected, NaN never reaches JSON, union round trip, schema export."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from townlet.dto import (
    AnnealStageResultDTO,
    AnnealSummaryDTO,
    BCTrainingResultDTO,
    EvaluationBlock,
    PolicyEvaluationDTO,
    PPOTrainingResultDTO,
    TrainingResult,
    load_result,
)

PPO_CORE: dict[str, Any] = dict(
    epoch=1,
    updates=2,
    transitions=2,
    loss_policy=0.1,
    loss_value=0.2,
    loss_entropy=1.09,
    loss_total=0.3,
    clip_fraction=1.0,
    adv_mean=0.0,
    adv_std=0.0,
    grad_norm=1.0,
    kl_divergence=0.84,
    lr=3e-4,
    steps=2,
)


def _bc(**extra: object) -> BCTrainingResultDTO:
    base: dict[str, Any] = dict(
        manifest="m", accuracy=0.9, loss=0.2, learning_rate=1e-3, batch_size=64, epochs=3
    )
    return BCTrainingResultDTO(**{**base, **extra})


def _eval(label: str) -> PolicyEvaluationDTO:
    return PolicyEvaluationDTO(
        policy=label,
        episodes=2,
        mean_return=1.5,
        return_std=0.1,
        faint_rate=0.0,
        mean_needs=0.7,
        conflicts_per_100_agent_ticks=0.5,
        scripted_agreement=0.9,
    )


@pytest.mark.parametrize(
    "dto",
    [
        _bc(evaluation=EvaluationBlock(policy=_eval("trained"), scripted=_eval("scripted"))),
        PPOTrainingResultDTO(**PPO_CORE, data_mode="rollout", queue_conflict_events=3.0, conflict={"x": 1.0}),
        AnnealSummaryDTO(
            stages=[AnnealStageResultDTO(cycle=0, mode="bc", accuracy=0.95, bc=_bc())],
            status="PASS",
            dataset_label="scripted",
            baselines={"loss": {"total": 0.3}},
        ),
    ],
)
def test_round_trip_through_the_union(dto: Any) -> None:
    text = dto.model_dump_json()
    assert TrainingResult.model_validate_json(text).root == dto
    assert type(load_result(text)) is type(dto)


def test_non_finite_optional_becomes_null_and_required_is_rejected() -> None:
    dto = _bc(val_loss=float("nan"), duration_sec=float("inf"))
    assert dto.val_loss is None and dto.duration_sec is None
    assert "NaN" not in dto.model_dump_json()
    with pytest.raises(ValidationError, match="accuracy"):
        _bc(accuracy=float("nan"))
    ppo = PPOTrainingResultDTO(**PPO_CORE, conflict={"a": math.nan, "b": 2.0})
    assert ppo.conflict == {"b": 2.0}


def test_frozen_and_extra_forbidden() -> None:
    dto = _bc()
    with pytest.raises(ValidationError):
        dto.accuracy = 0.1
    with pytest.raises(ValidationError, match="extra"):
        _bc(surprise=1)


def test_correlation_clamped_only_for_rounding() -> None:
    assert PPOTrainingResultDTO(**PPO_CORE, reward_advantage_corr=-1.0000000002).reward_advantage_corr == -1.0
    with pytest.raises(ValidationError):
        PPOTrainingResultDTO(**PPO_CORE, reward_advantage_corr=1.5)


def test_schema_export_command() -> None:
    cmd = [sys.executable, "-m", "townlet.train", "--schema"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    schema = json.loads(out.stdout)
    assert set(schema) >= {"result", "run"}
    assert "bc" in json.dumps(schema["result"]) and "run_id" in schema["run"]["properties"]


def test_ppo_carries_the_best_iteration_next_to_the_final_one() -> None:
    ppo = PPOTrainingResultDTO(**PPO_CORE, best_iteration=3, best={"episode_return_mean": 1.5, "x": math.inf})
    assert ppo.best_iteration == 3 and ppo.best == {"episode_return_mean": 1.5}  # non-finite dropped
    assert load_result(ppo.model_dump_json()) == ppo
    with pytest.raises(ValidationError, match="best_iteration"):
        PPOTrainingResultDTO(**PPO_CORE, best_iteration=-1)
