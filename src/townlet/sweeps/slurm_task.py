"""Inside one SLURM array task: signals, why the run stopped, and whether SLURM runs it again.

submitit installs its own handlers before our task starts: SIGTERM is *ignored* (so a plain
``scancel`` lets training run on until SIGKILL, leaving ``run.json`` at ``running``) and SIGUSR2
checkpoints, requeues and ``sys.exit(-1)`` whatever ``max_num_timeout`` says (recorded as a failure).
:class:`TaskSignals` hands SIGTERM/SIGINT back to the run's own stop handling (``run.json`` says
``interrupted``, the checkpoint stays) and turns SIGUSR2, SLURM's warning ``signal_delay_s`` before
the time limit or a preemption, into the same stop. :func:`stop_reason` then asks SLURM what
happened, so the record names it: cancelled, requeued, preempted or timed out.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

#: The SLURM-side warning signal (submitit's choice, overridable through SUBMITIT_PREEMPT_SIGNAL).
WARNING_SIGNAL = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), signal.SIGUSR2)
#: A warning this close to the time limit (beyond signal_delay_s) is the time limit, not a preemption:
#: SLURM may send it up to 60 s early, plus the task's own start-up.
_TIMEOUT_MARGIN_S = 90.0


class SlurmTaskStopped(RuntimeError):
    """The task stopped before its run finished; the message says why (one line)."""


def restart_count() -> int:
    """How many times SLURM has requeued this task (0 on its first start)."""
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    except ValueError:
        return 0


class TaskSignals:
    """SIGTERM/SIGINT back to their defaults (the run installs its own stop handlers over them) and
    the warning signal translated into the run's stop, remembering which limit it announced."""

    def __init__(self, time_limit_s: float, signal_delay_s: float) -> None:
        self.time_limit_s = time_limit_s
        self.signal_delay_s = signal_delay_s
        self.started = time.monotonic()
        self.warning: str | None = None  # "timed out" / "preempted" once the warning arrived

    def install(self) -> TaskSignals:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(WARNING_SIGNAL, self._warned)
        return self

    def _warned(self, signum: int, frame: FrameType | None) -> None:
        if self.warning is not None:
            return
        left = self.time_limit_s - (time.monotonic() - self.started)
        self.warning = "timed out" if left <= self.signal_delay_s + _TIMEOUT_MARGIN_S else "preempted"
        stop = signal.getsignal(signal.SIGTERM)
        if callable(stop):  # the run's handler: it stops the run (now or at its next safe point)
            stop(signum, frame)
            return
        raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


@dataclass(frozen=True)
class StopReason:
    """Why the task stopped and what happens next."""

    text: str  # for run.json's error and the submitter's line
    requeue_self: bool = False  # we ask SLURM to run the task again
    requeued_by_slurm: bool = False  # SLURM already put it back in the queue


def _slurm_job_fields(job_id: str) -> dict[str, str]:
    try:
        out = subprocess.run(
            ["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return dict(f.split("=", 1) for f in out.split() if "=" in f)


def stop_reason(exc: BaseException, signals: TaskSignals, max_requeues: int) -> StopReason:
    """What stopped the run: the warning signal (time limit/preemption), a requeue SLURM already
    decided, a time-limit kill, or a cancel; ``max_requeues`` is the launcher's ``max_num_timeout``."""
    restarts = restart_count()
    if signals.warning is not None:
        name = signal.Signals(WARNING_SIGNAL).name
        if restarts < max_requeues:
            left = max_requeues - restarts
            return StopReason(
                f"{signals.warning} ({name}): requeued, resumes from its checkpoint "
                f"({left} requeue(s) allowed by max_num_timeout)",
                requeue_self=True,
            )
        return StopReason(
            f"{signals.warning} ({name}): not requeued (max_num_timeout={max_requeues}); "
            "the checkpoint is kept for resume=true"
        )
    fields = _slurm_job_fields(os.environ.get("SLURM_JOB_ID", ""))
    signame = str(getattr(exc, "signal_name", None) or "SIGINT")
    try:
        requeued = int(fields.get("Restarts", restarts)) > restarts
    except ValueError:
        requeued = False
    if requeued:
        return StopReason(
            f"requeued by SLURM ({signame}: preemption or scontrol requeue); resumes from its checkpoint",
            requeued_by_slurm=True,
        )
    state = fields.get("JobState", "")
    if state == "TIMEOUT" or fields.get("Reason") == "TimeLimit":
        return StopReason(f"timed out ({signame} at the SLURM time limit); the checkpoint is kept")
    if state == "PREEMPTED":
        return StopReason(f"preempted ({signame}); the checkpoint is kept for resume=true")
    how = "scancel" if signame == "SIGTERM" else f"scancel --signal={signame.removeprefix('SIG')}"
    return StopReason(f"cancelled ({signame}, e.g. {how}); the checkpoint is kept for resume=true")


def amend_record(run_dir: Path, reason: StopReason) -> None:
    """Put the SLURM reason into an ``interrupted`` run.json (left alone in any other state)."""
    from townlet.dto import RunRecord
    from townlet.runs.record import RunRecorder

    path = run_dir / "run.json"
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        record = RunRecord.model_validate(data)
    except (OSError, ValueError):
        return
    if record.status == "interrupted":
        RunRecorder(path, record).update(error=reason.text)


def requeue_self() -> str | None:
    """``scontrol requeue`` this task; None on success, else SLURM's complaint."""
    job_id = os.environ.get("SLURM_JOB_ID", "")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the requeue itself sends SIGTERM to this task
    try:
        done = subprocess.run(
            ["scontrol", "requeue", job_id], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    return None if done.returncode == 0 else (done.stderr.strip() or f"scontrol exit {done.returncode}")
