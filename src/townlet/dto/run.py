"""``run.json``: what ran, where, from which code, and how it ended."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from townlet.dto.base import SCHEMA_VERSION, FrozenModel

RunStatus = Literal["running", "completed", "failed", "interrupted"]


class RunRecord(FrozenModel):
    """Run metadata written at start (status ``running``) and rewritten when the run ends."""

    schema_version: str = SCHEMA_VERSION
    run_id: str
    run_name: str = "train"
    status: RunStatus
    started_at: datetime
    ended_at: datetime | None = None
    duration_sec: float | None = Field(default=None, ge=0)
    seed: int
    config_hash: str = Field(description="sha256 of the resolved job config (hex, 16 chars)")
    strategy: str | None = None
    result_kind: str | None = None
    objective: str | None = None
    objective_value: float | None = None
    overrides: list[str] = Field(default_factory=list)
    run_dir: str
    device: str | None = None
    host: str
    pid: int
    python: str
    versions: dict[str, str] = Field(default_factory=dict, description="package versions (torch if present)")
    git_commit: str | None = None
    git_dirty: bool | None = None
    command: list[str] = Field(default_factory=list)
    resumed: bool = False
    parent_run: str | None = None
    job_num: int | None = Field(default=None, description="job number inside a multirun")
    slurm_job_id: str | None = Field(default=None, description="SLURM_JOB_ID (this array task's own id)")
    slurm_array_job_id: str | None = Field(default=None, description="SLURM_ARRAY_JOB_ID (the whole sweep)")
    slurm_array_task_id: int | None = Field(default=None, description="SLURM_ARRAY_TASK_ID")
    node: str | None = Field(default=None, description="SLURM node name (SLURMD_NODENAME)")
    error: str | None = None
    error_type: str | None = None
    signal: str | None = Field(default=None, description="the signal that interrupted the run")
    stop_reason: str | None = Field(default=None, description="why training ended early (stop settings)")
