"""``townlet-bench soak [--runs 20] [--json PATH]``: many small runs, some stopped by signals, all checked.

Each run is a real ``townlet-train`` process (a tiny BC or PPO job, alternating). Some receive
SIGINT, SIGTERM or SIGKILL after a random delay from the moment their ``run.json`` appears (the run
has started); the rest run to the end. Afterwards every run directory must tell the truth:

* exit 0 → ``run.json`` ``completed`` and a ``result.json`` that parses as a result DTO;
* SIGINT/SIGTERM → exit 130/143, one line on stderr, ``interrupted`` with that signal recorded,
  ``checkpoints/last.pt`` present unless nothing was trained yet, and ``resume=true`` then completes
  the run;
* SIGKILL → ``run.json`` absent or ``running`` with a dead pid (stale), and the next run in that
  directory (``resume=true``) completes and leaves no ``*.tmp`` behind;
* a signal that lands after the run finished (exit 0) must have left a completed run.

Anything else counts as an inconsistency (``consistent`` is False and the command exits 1).
Memory is measured as the peak RSS of each child (``wait4``'s rusage) and the parent's resident
size after each run, so a leak in either shows as growth over the runs.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from townlet.runs.seeding import thread_env

DEFAULT_RUNS = 20
QUICK_RUNS = 6
RUN_TIMEOUT_S = 600.0
ACTIONS = ("SIGKILL", "SIGTERM", "none", "SIGINT")  # any 3 runs include a kill and a stop
TINY = {
    "bc": ["experiment=smoke", "strategy.epochs=30", "strategy.early_stopping_patience=0"],
    "ppo": [
        "experiment=smoke",
        "strategy=ppo",
        "objective=loss_total",
        "strategy.n_steps=16",
        "strategy.total_steps=1920",
    ],
}


@dataclass(frozen=True)
class Planned:
    index: int
    strategy: str
    action: str
    delay_s: float
    after: str = "run.json"  # the delay counts from this file's appearance (run.json: start-up too)


@dataclass
class Finished:
    returncode: int
    stderr: str
    peak_rss_mb: float | None
    seconds: float


def plan_runs(n: int, seed: int = 0) -> list[Planned]:
    """Alternate BC/PPO; a quarter each: SIGKILL, SIGTERM, no signal, SIGINT (in a shuffled order).

    Half the delays count from ``run.json`` (0-3 s: start-up, data, the first epochs), half from
    the first ``checkpoints/last.pt`` (0-1.5 s: mid-training), so both stay covered whatever the
    machine's speed.
    """
    rng = random.Random(seed)
    actions = [ACTIONS[i % len(ACTIONS)] for i in range(n)]
    rng.shuffle(actions)
    plan = []
    for i, action in enumerate(actions):
        after = rng.choice(("run.json", "last.pt"))
        delay = rng.uniform(0.0, 3.0 if after == "run.json" else 1.5)
        plan.append(Planned(i, "bc" if i % 2 == 0 else "ppo", action, round(delay, 2), after))
    return plan


def _default_sigint() -> None:
    # a soak started from a non-interactive shell's background job would pass SIGINT ignored on
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def launch(cmd: list[str], env: dict[str, str], log_dir: Path, name: str) -> subprocess.Popen[bytes]:
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / f"{name}.out").open("wb") as out, (log_dir / f"{name}.err").open("wb") as err:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=err, preexec_fn=_default_sigint)


def reap(proc: subprocess.Popen[bytes], timeout_s: float = RUN_TIMEOUT_S) -> tuple[int, float | None]:
    """Wait for ``proc`` with ``wait4``: (exit code as Popen reports it, peak RSS in MB)."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024.0  # kilobytes on Linux


def run_planned(p: Planned, cmd: list[str], env: dict[str, str], run_dir: Path, log_dir: Path) -> Finished:
    """Start the run; send its signal ``delay_s`` after ``p.after`` appears; wait for it."""
    started = time.monotonic()
    proc = launch(cmd, env, log_dir, f"run{p.index:02d}")
    if p.action != "none":
        anchor = run_dir / ("run.json" if p.after == "run.json" else "checkpoints/last.pt")
        while not anchor.exists() and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(p.delay_s)
        if proc.poll() is None:
            proc.send_signal(getattr(signal, p.action))
    code, rss = reap(proc)
    stderr = (log_dir / f"run{p.index:02d}.err").read_text(encoding="utf-8", errors="replace")
    return Finished(code, stderr, rss, time.monotonic() - started)


def parent_rss_mb() -> float | None:
    """Resident size of this process now (``/proc/self/statm``; None where there is no /proc)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(args: argparse.Namespace) -> dict[str, Any]:
    n = getattr(args, "runs", None) or (QUICK_RUNS if getattr(args, "quick", False) else DEFAULT_RUNS)
    seeds = getattr(args, "seeds", None) or [0]
    root = Path(tempfile.mkdtemp(prefix="townlet-soak-"))
    env = {**os.environ, **thread_env(1)}
    env.pop("HYDRA_FULL_ERROR", None)
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    for planned in plan_runs(n, seed=seeds[0]):
        rows.append(soak_one(planned, root, env))
        rows[-1]["parent_rss_mb"] = parent_rss_mb()
    summary = summarise(rows)
    summary["wall_s"] = round(time.monotonic() - started, 1)
    summary["root"] = str(root) if summary["inconsistencies"] else None
    if not summary["inconsistencies"]:
        shutil.rmtree(root, ignore_errors=True)  # kept for inspection otherwise
    return {
        "section": "soak",
        "rows": rows,
        "summary": summary,
        "consistent": summary["inconsistencies"] == 0,
    }


def soak_one(p: Planned, root: Path, env: dict[str, str]) -> dict[str, Any]:
    run_dir = root / f"run{p.index:02d}"
    common = [f"paths.data_dir={root / 'data'}", f"paths.state_dir={root / 'state'}"]
    cmd = [sys.executable, "-m", "townlet.train", f"hydra.run.dir={run_dir}", *TINY[p.strategy], *common]
    first = run_planned(p, cmd, env, run_dir, root / "logs")
    outcome, problems = check_first(p.action, first.returncode, first.stderr, run_dir)
    orphans = len(list(run_dir.rglob("*.tmp"))) if run_dir.is_dir() else 0  # the follow-up removes them
    checkpointed = _checkpointed(run_dir)
    follow_up = None
    if outcome in ("interrupted", "killed"):
        again = Planned(p.index + 1000, p.strategy, "none", 0.0)
        second = run_planned(again, [*cmd, "resume=true"], env, run_dir, root / "logs")
        problems += check_follow_up(second.returncode, second.stderr, run_dir)
        follow_up = round(second.seconds, 1)
    return {
        "run": p.index,
        "strategy": p.strategy,
        "signal": p.action,
        "after": p.after if p.action != "none" else None,
        "delay_s": p.delay_s if p.action != "none" else None,
        "exit": first.returncode,
        "outcome": outcome,
        "ckpt": checkpointed,
        "tmp_left": orphans,
        "resume_s": follow_up,
        "child_peak_rss_mb": first.peak_rss_mb,
        "parent_rss_mb": None,
        "ok": not problems,
        "problems": "; ".join(problems) or None,
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    child = [r["child_peak_rss_mb"] for r in rows if r["child_peak_rss_mb"] is not None]
    parent = [r["parent_rss_mb"] for r in rows if r["parent_rss_mb"] is not None]
    outcomes: dict[str, int] = {}
    for r in rows:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    return {
        "runs": len(rows),
        "inconsistencies": sum(1 for r in rows if not r["ok"]),
        "temp_files_left_by_kills": sum(r["tmp_left"] for r in rows),
        "outcomes": outcomes,
        "child_peak_rss_max_mb": max(child) if child else None,
        "child_peak_rss_first_last_mb": [child[0], child[-1]] if child else None,
        "parent_rss_first_last_mb": [parent[0], parent[-1]] if parent else None,
        "parent_rss_growth_mb": parent[-1] - parent[0] if parent else None,
    }


def _record(run_dir: Path) -> Any:
    from townlet.dto import RunRecord

    try:
        return RunRecord.model_validate_json((run_dir / "run.json").read_bytes())
    except (OSError, ValueError):
        return None


def _completed(run_dir: Path, record: Any) -> list[str]:
    """Problems with a run that claims to be complete (none when it is)."""
    from townlet.dto import load_result

    if record is None or record.status != "completed":
        return [f"run.json says {getattr(record, 'status', None)!r}, not 'completed'"]
    try:
        load_result((run_dir / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"completed but result.json is not a valid result ({type(exc).__name__})"]
    return []


def _checkpointed(run_dir: Path) -> bool:
    return (run_dir / "checkpoints" / "last.pt").is_file()


def _trained(run_dir: Path) -> bool:
    """Whether any epoch/iteration was logged: a stop after that must have left ``last.pt``."""
    try:
        return bool((run_dir / "metrics.jsonl").read_text(encoding="utf-8").strip())
    except OSError:
        return False


def _temp_files(run_dir: Path) -> list[str]:
    found = [str(p.relative_to(run_dir)) for p in run_dir.rglob("*.tmp")] if run_dir.is_dir() else []
    return [f"temp files left: {', '.join(found)}"] if found else []


def check_first(action: str, code: int, stderr: str, run_dir: Path) -> tuple[str, list[str]]:
    """(outcome, problems) of the signalled (or not) run: does ``run.json`` match the exit?"""
    from townlet.runs.record import is_stale

    record = _record(run_dir)
    if record is not None and record.status == "completed":  # also a signal that came after the end
        return "completed", _completed(run_dir, record) + _temp_files(run_dir)
    if code == 0 or (action == "none" and code != 0):
        return "failed", [f"exit {code} with run.json {getattr(record, 'status', None)!r}: {_last(stderr)}"]
    if code in (130, 143):
        name = "SIGINT" if code == 130 else "SIGTERM"
        problems = [] if name == action else [f"exit {code} after {action}"]
        if record is None or record.status != "interrupted" or record.signal != name:
            problems.append(f"run.json {getattr(record, 'status', None)!r}/{getattr(record, 'signal', None)}")
        lines = stderr.strip().splitlines()
        if len(lines) != 1 or "Traceback" in stderr:
            problems.append(f"{len(lines)} stderr lines")
        if not _checkpointed(run_dir) and _trained(run_dir):
            problems.append("trained (metrics.jsonl has lines) but no checkpoint to resume from")
        return "interrupted", problems + _temp_files(run_dir)
    if code < 0:  # died of the signal itself: SIGKILL, or a signal before the handlers were in place
        if record is not None and not (record.status == "running" and is_stale(record)):
            return "killed", [f"killed but run.json says {record.status!r} and is not stale"]
        return "killed", []
    return "failed", [f"exit {code}: {_last(stderr)}"]


def check_follow_up(code: int, stderr: str, run_dir: Path) -> list[str]:
    """The ``resume=true`` run after an interruption or a kill must complete and clean up."""
    if code != 0:
        return [f"resume exited {code}: {_last(stderr)}"]
    record = _record(run_dir)
    problems = _completed(run_dir, record) + _temp_files(run_dir)
    if record is not None and not record.resumed:
        problems.append("resumed run not marked resumed")
    return problems


def _last(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    return lines[-1][:200] if lines else "(no stderr)"
