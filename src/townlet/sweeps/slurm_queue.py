"""Waiting for the tasks of a SLURM job array without trusting one source of truth.

submitit waits for a task's result file and asks ``sacct`` when there is none. Without accounting
``sacct`` answers nothing, the state stays ``UNKNOWN`` and the submitter waits forever; with it, a task
that died without a result (scancel, OOM, node loss) raises a 40-line ``UncompletedJobError``. Here
each poll asks ``squeue --states=all`` first (it keeps finished tasks for ``MinJobAge``, accounting or
not), then ``sacct`` for the tasks ``squeue`` no longer knows. A task is over when its result file
appears; one that SLURM calls finished without a result, or that no command has known for
``lost_after_s``, is *lost*: the sweep records it as failed and still ends.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: States in which a task may still produce its result (a requeued task passes through several).
LIVE_STATES = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESIZING",
        "SUSPENDED",
        "STOPPED",
        "SIGNALING",
        "STAGE_OUT",
        "RESV_DEL_HOLD",
    }
)
#: A finished task's result file may reach the submitter late on a network filesystem.
RESULT_GRACE_S = 15.0
#: How long a task may be unknown to both squeue and sacct before it counts as lost.
LOST_AFTER_S = 120.0

_ARRAY_RANGE = re.compile(r"^(?P<job>\d+)_\[(?P<ranges>[^\]]+)\]$")


@dataclass
class TaskOutcome:
    """How one array task ended, as the submitter saw it."""

    kind: str  # "success" (result is a JobReturn), "error" (result is a traceback) or "lost"
    state: str | None  # SLURM's last word on the task (None when nothing knew it)
    result: Any = None


def expand_task_ids(job_id: str) -> list[str]:
    """``["7_0", "7_1"]`` for sacct's compressed ``7_[0-1%2]``; plain ids pass through."""
    match = _ARRAY_RANGE.match(job_id)
    if match is None:
        return [job_id]
    out: list[str] = []
    for part in match.group("ranges").split("%")[0].split(","):
        low, _, high = part.partition("-")
        out += [f"{match.group('job')}_{i}" for i in range(int(low), int(high or low) + 1)]
    return out


def parse_states(text: str) -> dict[str, str]:
    """``{"7_0": "RUNNING"}`` from ``ID|STATE`` lines (squeue ``-o %i|%T``, sacct ``-P``)."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        job_id, sep, state = line.strip().partition("|")
        if not sep or not job_id or "." in job_id:  # job steps (7_0.batch) carry no extra news
            continue
        word = state.split()[0].upper() if state.strip() else "UNKNOWN"  # "CANCELLED by 0"
        for task in expand_task_ids(job_id):
            states[task] = word
    return states


def _run(command: list[str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return None


def query_states(
    array_ids: Sequence[str], missing: Callable[[dict[str, str]], bool]
) -> dict[str, str] | None:
    """States of every task of ``array_ids``: squeue first, sacct when ``missing`` says squeue lacked some.

    None when neither command answered (the controller is unreachable): nothing is decided then.
    """
    ids = ",".join(sorted(set(array_ids)))
    squeue = _run(["squeue", "-h", "-r", "-t", "all", "-j", ids, "-o", "%i|%T"])
    states: dict[str, str] | None = None
    if squeue is not None and (squeue.returncode == 0 or "Invalid job id" in squeue.stderr):
        states = parse_states(squeue.stdout) if squeue.returncode == 0 else {}
    if states is None or missing(states):
        sacct = _run(["sacct", "-n", "-P", "-X", "-j", ids, "-o", "JobID,State"])
        if sacct is not None and sacct.returncode == 0:
            states = {**parse_states(sacct.stdout), **(states or {})}
    return states


class TaskWatch:
    """Polls until every task has a result or is lost; ``query`` and ``clock`` are injectable for tests."""

    def __init__(
        self,
        tasks: Mapping[str, Path],
        *,
        read_result: Callable[[Path], tuple[str, Any]],
        query: Callable[[Sequence[str], Callable[[dict[str, str]], bool]], dict[str, str] | None] = (
            query_states
        ),
        lost_after_s: float = LOST_AFTER_S,
        grace_s: float = RESULT_GRACE_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.tasks = dict(tasks)  # SLURM task id ("7_0") -> its result file
        self.read_result = read_result
        self.query = query
        self.lost_after_s = lost_after_s
        self.grace_s = grace_s
        self.clock = clock
        self.sleep = sleep
        self._quiet_since: dict[str, float] = {}
        self._last_state: dict[str, str] = {}

    def wait(self) -> dict[str, TaskOutcome]:
        """Block until each task is over; ``{task id: outcome}``."""
        outcomes: dict[str, TaskOutcome] = {}
        query_every, next_query = 2.0, self.clock()
        while len(outcomes) < len(self.tasks):
            self._collect_results(outcomes)
            pending = [t for t in self.tasks if t not in outcomes]
            if pending and self.clock() >= next_query:
                self._update(pending, outcomes)
                query_every = min(query_every * 1.5, 15.0)
                next_query = self.clock() + query_every
            if len(outcomes) < len(self.tasks):
                self.sleep(1.0)
        return outcomes

    def _collect_results(self, outcomes: dict[str, TaskOutcome]) -> None:
        for task, path in self.tasks.items():
            if task not in outcomes and path.exists():
                kind, result = self.read_result(path)
                outcomes[task] = TaskOutcome(kind, self._last_state.get(task), result)

    def _update(self, pending: list[str], outcomes: dict[str, TaskOutcome]) -> None:
        arrays = sorted({t.split("_")[0] for t in pending})
        states = self.query(arrays, lambda found: any(t not in found for t in pending))
        now = self.clock()
        for task in pending:
            state = None if states is None else states.get(task)
            if state is not None:
                self._last_state[task] = state
            if state in LIVE_STATES:
                self._quiet_since.pop(task, None)
                continue
            # finished without a result file (short grace for a slow filesystem), or unknown to
            # every command (no accounting, controller away): lost after the longer wait
            since = self._quiet_since.setdefault(task, now)
            limit = self.grace_s if state is not None else self.lost_after_s
            if now - since >= limit and not self.tasks[task].exists():
                outcomes[task] = TaskOutcome("lost", state or self._last_state.get(task))
