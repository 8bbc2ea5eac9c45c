"""Fabricated sweep directories: real run.json/result.json files shaped by the project's DTOs."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from townlet.dto import BCTrainingResultDTO, RunRecord

MakeJob = Callable[..., Path]


def _write_job(
    sweep_dir: Path,
    num: int,
    overrides: Sequence[str],
    *,
    status: str = "completed",
    accuracy: float | None = 0.9,
    objective_value: float | None = None,
    error: str | None = None,
    error_type: str | None = None,
    write_result: bool = True,
    write_record: bool = True,
    job_status: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
) -> Path:
    job = sweep_dir / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    cfg = {"seed": 0, "objective": "accuracy", "objective_mode": "max", **(config or {})}
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    if write_result and accuracy is not None:
        result = BCTrainingResultDTO(
            manifest="scripted",
            accuracy=accuracy,
            loss=1.0 - accuracy,
            learning_rate=1e-3,
            batch_size=32,
            epochs=1,
            duration_sec=1.5,
        )
        (job / "result.json").write_text(result.model_dump_json(indent=2))
    if write_record:
        record = RunRecord(
            run_id=f"run-{num}",
            status=status,  # type: ignore[arg-type]
            started_at=datetime(2026, 1, 1, tzinfo=UTC),
            duration_sec=2.0,
            seed=0,
            config_hash="0" * 16,
            objective="accuracy",
            objective_value=objective_value if objective_value is not None else accuracy,
            overrides=list(overrides),
            run_dir=str(job),
            host="test",
            pid=1,
            python="3.11",
            job_num=num,
            error=error,
            error_type=error_type,
        )
        (job / "run.json").write_text(record.model_dump_json(indent=2))
    if job_status is not None:
        (job / "job_status.json").write_text(json.dumps(job_status))
    return job


@pytest.fixture
def make_job(tmp_path: Path) -> MakeJob:
    sweep = tmp_path / "sweep"
    sweep.mkdir(exist_ok=True)

    def make(num: int, overrides: Sequence[str], **kwargs: Any) -> Path:
        return _write_job(sweep, num, overrides, **kwargs)

    return make


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    return tmp_path / "sweep"
