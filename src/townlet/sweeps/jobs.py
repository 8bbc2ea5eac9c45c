"""One job of a sweep, read back from the files it left in its directory.

A job may have died at any point, so every file is optional: a missing or corrupt file degrades the
row (status ``incomplete``, no objective) instead of failing the whole report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from townlet.runs.atomic import finite_or_none, read_json_object
from townlet.runs.rundir import RESULT_FILE, RUN_FILE

JOB_STATUS_FILE = "job_status.json"
RUN_RECORD_FILE = RUN_FILE

OK, FAILED, DIVERGED, INCOMPLETE = "ok", "failed", "diverged", "incomplete"
_STATUS_WORDS: dict[str, str] = {
    **dict.fromkeys(("ok", "completed", "complete", "success", "succeeded", "finished", "done"), OK),
    **dict.fromkeys(("failed", "fail", "error", "crashed"), FAILED),
    "diverged": DIVERGED,
    **dict.fromkeys(("running", "started", "pending", "interrupted"), INCOMPLETE),
}
_SEVERITY = {DIVERGED: 3, FAILED: 2, OK: 1, INCOMPLETE: 0}
# A failure whose error names one of these is shown as "diverged" (the runner raises on a NaN objective).
_DIVERGENCE_HINTS = re.compile(r"diverg|non-?finite|\bnan\b", re.IGNORECASE)
_SKIP_DIRS = {".hydra", ".submitit", "checkpoints", "__pycache__"}
_TRACES = (".hydra/overrides.yaml", RUN_RECORD_FILE, RESULT_FILE, JOB_STATUS_FILE)  # any marks a job dir


@dataclass
class JobRow:
    """One job of the sweep as the summary shows it."""

    num: int | None
    job_dir: str  # relative to the sweep dir, so the summary survives moving the sweep
    run_dir: str  # absolute path at summary time
    status: str
    overrides: list[str]
    params: dict[str, str]
    objective: float | None
    metrics: dict[str, float | None]
    duration_sec: float | None
    error: str | None = None
    best: bool = False
    slurm_id: str | None = None  # "<array job>_<task>" for a SLURM task (run.json / job_status.json)


_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C-accelerated *safe* loader


def read_yaml(path: Path) -> Any:
    """Parsed YAML, or None when absent/corrupt."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_YamlLoader)
    except (OSError, yaml.YAMLError):
        return None


def dotted_get(data: Any, key: str) -> Any:
    """``data["a"]["b"]`` for ``key="a.b"``; None when any level is missing."""
    for part in key.split("."):
        if not (isinstance(data, Mapping) and part in data):
            return None
        data = data[part]
    return data


def override_key_value(override: str) -> tuple[str, str]:
    """``("a.b", "1")`` for ``"+a.b=1"``: the key without Hydra's ``+``/``~`` prefix."""
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def discover_job_dirs(sweep_dir: Path) -> list[Path]:
    """Directories below ``sweep_dir`` (up to 3 levels) that hold a Hydra job's traces."""
    found: list[Path] = []

    def visit(path: Path, depth: int) -> None:
        try:
            children = sorted(p for p in path.iterdir() if p.is_dir() and p.name not in _SKIP_DIRS)
        except OSError:
            return
        for child in children:
            if any((child / name).is_file() for name in _TRACES):
                found.append(child)
            elif depth < 3:
                visit(child, depth + 1)

    visit(sweep_dir, 1)
    return found


def read_job(job_dir: Path, sweep_dir: Path, objective: str | None, metrics: Sequence[str]) -> JobRow:
    """Fold one job's files into a :class:`JobRow`; missing files degrade to ``incomplete``."""
    record = read_json_object(job_dir / RUN_RECORD_FILE) or {}
    result = read_json_object(job_dir / RESULT_FILE)
    job_status = read_json_object(job_dir / JOB_STATUS_FILE) or {}
    # JSON first (the runner and the callback both record Hydra's task overrides): parsing YAML
    # dominates the cost of a summary, which is rebuilt after every job.
    overrides = record.get("overrides") or job_status.get("overrides")
    if not isinstance(overrides, list) or not overrides:
        overrides = read_yaml(job_dir / ".hydra" / "overrides.yaml")
    overrides = [str(o) for o in overrides] if isinstance(overrides, list) else []
    status, error = _status_and_error(record, result, job_status)
    durations = (
        record.get("duration_sec"),
        (result or {}).get("duration_sec"),
        job_status.get("duration_sec"),
    )
    return JobRow(
        num=_job_num(job_dir, record, job_status),
        job_dir=str(job_dir.relative_to(sweep_dir)) if job_dir.is_relative_to(sweep_dir) else str(job_dir),
        run_dir=str(job_dir.resolve()),
        status=status,
        overrides=overrides,
        params=dict(override_key_value(o) for o in overrides),
        objective=_objective_value(record, result, job_status, objective),
        metrics={m: finite_or_none(dotted_get(result, m)) for m in metrics} if result else {},
        duration_sec=next((x for v in durations if (x := finite_or_none(v)) is not None), None),
        error=error,
        slurm_id=_slurm_id(record, job_status),
    )


def _job_num(job_dir: Path, record: Mapping[str, Any], job_status: Mapping[str, Any]) -> int | None:
    for value in (record.get("job_num"), job_status.get("num")):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    if job_dir.name.isdigit():
        return int(job_dir.name)
    num = dotted_get(read_yaml(job_dir / ".hydra" / "hydra.yaml"), "hydra.job.num")
    return num if isinstance(num, int) else None


def _slurm_id(record: Mapping[str, Any], job_status: Mapping[str, Any]) -> str | None:
    array, task = record.get("slurm_array_job_id"), record.get("slurm_array_task_id")
    if array is not None and task is not None:
        return f"{array}_{task}"
    value = record.get("slurm_job_id") or job_status.get("slurm_id")
    return str(value) if value else None


def _status_and_error(
    record: Mapping[str, Any], result: Mapping[str, Any] | None, job_status: Mapping[str, Any]
) -> tuple[str, str | None]:
    """The most severe status any source reports (a job Hydra saw raise is failed whatever run.json says)."""
    words = [_STATUS_WORDS.get(str(source.get("status", "")).lower()) for source in (record, job_status)]
    candidates = [w for w in words if w is not None] + ([OK] if result is not None else [])
    status = max(candidates, key=_SEVERITY.__getitem__) if candidates else INCOMPLETE
    if status == OK:
        return status, None
    error = None
    for source in (record, job_status):
        message, kind = source.get("error"), source.get("error_type")
        if message:
            kind = str(kind).removeprefix("builtins.") if kind else None
            error = f"{kind}: {message}" if kind and not str(message).startswith(kind) else str(message)
            break
    if status == FAILED and error is not None and _DIVERGENCE_HINTS.search(error):
        status = DIVERGED
    return status, error


def _objective_value(
    record: Mapping[str, Any],
    result: Mapping[str, Any] | None,
    job_status: Mapping[str, Any],
    objective: str | None,
) -> float | None:
    own = finite_or_none(record.get("objective_value"))
    if own is not None and (objective is None or record.get("objective") in (None, objective)):
        return own  # the runner's own reading, unless the report asks for a different key
    found = finite_or_none(dotted_get(result, objective)) if objective else None
    return found if found is not None else finite_or_none(job_status.get("return_value"))


def objective_setting(job_dirs: Iterable[Path]) -> tuple[str | None, str | None]:
    """(objective key, mode) from the first job's saved config: the report CLI has no Hydra config."""
    for job_dir in job_dirs:
        cfg = read_yaml(job_dir / ".hydra" / "config.yaml")
        if isinstance(cfg, Mapping) and cfg.get("objective"):
            mode = cfg.get("objective_mode")
            return str(cfg["objective"]), str(mode) if mode else None
        record = read_json_object(job_dir / RUN_RECORD_FILE) or {}
        if isinstance(record.get("objective"), str):  # run.json records the key, not the mode
            return record["objective"], None
    return None, None
