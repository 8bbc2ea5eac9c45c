"""Promotion state across runs (torch-free): ``required_passes`` PASS runs in a row make a *ready* candidate
that ``townlet-promote promote`` releases; ``monitoring`` → ``ready`` → ``promoted``, and back to
``monitoring`` on lost readiness or ``rollback``. A JSON snapshot plus a JSONL history under
``paths.state_dir/promotion/``."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from townlet.promotion.files import (
    PromotionStateFile,
    Release,
    StateFileError,
    locked,
    read_state_file,
    reset_command,
)
from townlet.promotion.rules import AnnealStatus
from townlet.runs.atomic import atomic_write_text, loads_json

MAX_RELEASE_STACK = 50


class PromotionError(RuntimeError):
    """A promotion action cannot be carried out (message says why and what to do)."""


class PromotionStateError(StateFileError):
    """The persisted promotion state is unreadable or invalid."""


def apply_evaluation(
    st: PromotionStateFile,
    status: str,
    *,
    required_passes: int,
    hold_resets_streak: bool = True,
    candidate: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> PromotionStateFile:
    """One run's status → new state: PASS extends the streak, FAIL resets it and clears the candidate, HOLD
    too unless ``hold_resets_streak`` is False (then it changes nothing)."""
    status = str(status).upper()
    if status not in list(AnnealStatus):
        raise ValueError(f"anneal status must be one of {', '.join(AnnealStatus)}, got {status!r}")
    evaluation = st.evaluations + 1
    if status == "PASS":
        streak = st.pass_streak + 1
        cand: dict[str, Any] | None = {**dict(candidate or {}), "status": status, "evaluation": evaluation}
    elif status == "HOLD" and not hold_resets_streak:
        streak, cand = st.pass_streak, st.candidate
    else:
        streak, cand = 0, None
    ready = streak >= required_passes and cand is not None
    if ready:
        state, ready_eval = "ready", st.candidate_ready_evaluation if st.candidate_ready else evaluation
    else:
        state, ready_eval = "monitoring" if st.state == "ready" else st.state, None
    return st.model_copy(
        update={
            "state": state,
            "pass_streak": streak,
            "required_passes": required_passes,
            "candidate_ready": ready,
            "candidate_ready_evaluation": ready_eval,
            "last_result": status,
            "evaluations": evaluation,
            "last_evaluated_at": now,
            "candidate": cand,
            "updated_at": now,
        }
    )


def _new_release(
    st: PromotionStateFile, state: str, current: Release | None, stack: list[Release], now: float | None
) -> PromotionStateFile:
    """A release change: the streak and the candidate start over."""
    return st.model_copy(
        update={
            "state": state,
            "pass_streak": 0,
            "candidate_ready": False,
            "candidate_ready_evaluation": None,
            "candidate": None,
            "current_release": current,
            "previous_releases": stack,
            "updated_at": now,
        }
    )


@dataclass
class PromotionService:
    """Persisted promotion state under ``state_dir/promotion``, safe across processes (no Hydra, no torch)."""

    state_dir: str | Path
    required_passes: int = 2
    hold_resets_streak: bool = True
    lock_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        root = Path(self.state_dir).expanduser() / "promotion"
        self.state_path, self.history_path = root / "state.json", root / "history.jsonl"

    def _locked(self) -> AbstractContextManager[None]:
        return locked(self.state_path.with_name("state.lock"), self.lock_timeout_s, PromotionError)

    def state(self) -> PromotionStateFile:
        """The validated state (replaced atomically, so reading needs no lock)."""
        fix = (
            f"restore it from {self.history_path.name} (each event embeds a snapshot), or move it aside "
            f"and start over: {reset_command(self.state_dir)}"
        )
        stored = read_state_file(
            self.state_path,
            PromotionStateFile,
            what="promotion state file",
            fix=fix,
            error=PromotionStateError,
        )
        return stored if stored is not None else PromotionStateFile(required_passes=self.required_passes)

    def snapshot(self) -> dict[str, Any]:
        return self.state().model_dump()

    def history(self, limit: int | None = None) -> list[dict[str, Any]]:
        if not self.history_path.exists():
            return []
        events: list[dict[str, Any]] = []
        raw = self.history_path.read_bytes().splitlines()
        for number, line in enumerate(raw, start=1):
            if not line.strip():
                continue
            try:
                event = loads_json(line)
            except ValueError as exc:  # bad JSON or bad UTF-8 (a torn or edited line)
                raise PromotionStateError(
                    f"promotion history {self.history_path} line {number} is corrupt ({exc}); "
                    "remove or repair that line (the state file does not depend on it)"
                ) from exc
            if isinstance(event, dict):
                events.append(event)
        return events[-limit:] if limit else events

    def _commit(self, new: PromotionStateFile, event: str, detail: Mapping[str, Any]) -> dict[str, Any]:
        """Snapshot first (atomic), then the history line; both under the lock held by the caller."""
        snapshot = new.model_dump()
        atomic_write_text(self.state_path, json.dumps(snapshot, indent=2, sort_keys=True) + "\n")
        record = {"event": event, "time": new.updated_at, "pid": os.getpid(), **detail, "state": snapshot}
        with self.history_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return snapshot

    def record_evaluation(
        self,
        status: str,
        *,
        run_dir: str | Path | None = None,
        checkpoint: str | Path | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record one anneal run's PASS/HOLD/FAIL; returns the new snapshot."""
        paths = {"run_dir": run_dir, "checkpoint": checkpoint}
        candidate = {**{k: None if v is None else str(v) for k, v in paths.items()}, **dict(detail or {})}
        with self._locked():
            new = apply_evaluation(
                self.state(),
                status,
                required_passes=self.required_passes,
                hold_resets_streak=self.hold_resets_streak,
                candidate=candidate,
                now=_now(),
            )
            detail = {"status": new.last_result, "run_dir": candidate["run_dir"]}
            return self._commit(new, "evaluation", detail)

    def promote(
        self, *, run_dir: str | Path | None = None, checkpoint: str | Path | None = None, force: bool = False
    ) -> dict[str, Any]:
        """Make the ready candidate (or, with ``force``, the given run/checkpoint) the current release."""
        with self._locked():
            st = self.state()
            cand = st.candidate or {}
            if not force:
                if not st.candidate_ready:
                    raise PromotionError(
                        f"no candidate is ready (pass_streak {st.pass_streak} of {st.required_passes} "
                        "required PASS runs in a row); run more anneal jobs or pass --force to promote anyway"
                    )
                if run_dir is not None and _norm(run_dir) != _norm(cand.get("run_dir")):
                    raise PromotionError(
                        f"run {run_dir} is not the ready candidate (that is {cand.get('run_dir')}); "
                        "promote the candidate, or pass --force"
                    )
            now = _now()
            release = Release(
                checkpoint=str(checkpoint) if checkpoint is not None else cand.get("checkpoint"),
                run_dir=str(run_dir) if run_dir is not None else cand.get("run_dir"),
                evaluation=st.evaluations,
                promoted_at=now,
            )
            if release.checkpoint is None:
                raise PromotionError(
                    "the release has no checkpoint; pass the run directory of a finished run"
                )
            stack = [*st.previous_releases, *([st.current_release] if st.current_release else [])]
            new = _new_release(st, "promoted", release, stack[-MAX_RELEASE_STACK:], now)
            return self._commit(new, "promote", {"run_dir": release.run_dir, "forced": bool(force)})

    def rollback(self) -> dict[str, Any]:
        """Return to the previous release (or to none) and to ``monitoring``."""
        with self._locked():
            st = self.state()
            if st.current_release is None:
                raise PromotionError("nothing to roll back: no release has been promoted yet")
            previous = st.previous_releases[-1] if st.previous_releases else None
            new = _new_release(st, "monitoring", previous, list(st.previous_releases[:-1]), _now())
            return self._commit(new, "rollback", {"run_dir": st.current_release.run_dir})


def _now() -> float:
    return round(time.time(), 3)


def _norm(path: str | Path | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().resolve())
