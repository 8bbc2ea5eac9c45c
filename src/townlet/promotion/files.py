"""Promotion state and baseline files (torch-free): they outlive runs and get hand-edited, so every read is
strict and a bad file is never overwritten (``--reset-state`` moves it aside); every read-modify-write
holds an inter-process lock, as sweep jobs may finish at once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class Release(_Strict):
    """A policy that is (or was) the live release."""

    checkpoint: str | None
    run_dir: str | None = None
    evaluation: int | None = Field(default=None, ge=0)
    promoted_at: float | None = None


class PromotionStateFile(_Strict):
    """``promotion/state.json``, and the state in memory: the transitions return changed copies."""

    format_version: Literal[1] = 1
    state: Literal["monitoring", "ready", "promoted"] = "monitoring"
    pass_streak: int = Field(default=0, ge=0)
    required_passes: int = Field(default=2, ge=1)
    candidate_ready: bool = False
    candidate_ready_evaluation: int | None = Field(default=None, ge=0)
    last_result: Literal["PASS", "HOLD", "FAIL"] | None = None
    evaluations: int = Field(default=0, ge=0)
    last_evaluated_at: float | None = None
    candidate: dict[str, Any] | None = None
    current_release: Release | None = None
    previous_releases: list[Release] = Field(default_factory=list)
    updated_at: float | None = None


class BaselineEntry(_Strict):
    """One label's guardrail baselines; the metrics are finite numbers or absent."""

    loss_total: float | None = None
    queue_conflict_events: float | None = None
    queue_conflict_intensity_sum: float | None = None
    run_dir: str | None = None
    updated_at: float | None = None


class BaselineFile(RootModel[dict[str, BaselineEntry]]):
    """``anneal_baselines.json``: ``label → BaselineEntry``."""


class StateFileError(ValueError):
    """A state file that cannot be used as it is; the message names it and the fix."""


M = TypeVar("M", bound=BaseModel)


def read_state_file(
    path: Path, model: type[M], *, what: str, fix: str, error: type[StateFileError] = StateFileError
) -> M | None:
    """The validated content of ``path`` (None if absent); a bad file raises one line naming it and fix."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise error(f"{what} {path} cannot be read ({exc.strerror}); {fix}") from exc
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise error(f"{what} {path} is unreadable ({_first_problem(exc)}); {fix}") from exc


@contextmanager
def locked(lock_path: Path, timeout_s: float, error: type[Exception]) -> Iterator[None]:
    """Hold the inter-process lock ``lock_path``; ``error`` when another process keeps it too long."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(lock_path), timeout=timeout_s):
            yield
    except Timeout as exc:
        raise error(
            f"could not lock {lock_path} within {timeout_s:.0f}s; another process holds it "
            "(a crashed process releases it automatically; raise lock_timeout_s for very busy sweeps)"
        ) from exc


def reset_command(state_dir: str | Path) -> str:
    """The command that moves a bad state or baseline file aside (named in every refusal)."""
    return f"townlet-promote --state-dir {Path(state_dir).expanduser()} --reset-state status"


def _first_problem(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "top level"
    more = f"; {len(errors) - 1} more" if len(errors) > 1 else ""
    if first["type"] == "json_invalid":
        return f"not valid JSON: {first['msg']}"
    got = repr(first.get("input"))
    got = got if len(got) <= 40 else got[:37] + "..."
    return f"{where}: {first['msg']}, got {got}{more}"


def move_aside(path: Path) -> Path:
    """Rename ``path`` to ``<name>.corrupt-<UTC time>`` (never overwriting an earlier one)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, target)
    return target


def is_valid(path: Path, model: type[BaseModel]) -> bool:
    """Whether ``path`` is missing or holds what ``model`` accepts (for ``--reset-state``)."""
    try:
        read_state_file(path, model, what="", fix="")
    except StateFileError:
        return False
    return True
