"""The measuring protocol every bench section uses: alternating, quiet-gated reps (docs/performance.md).

The box is shared, so a repetition counts only when other processes used < 8% of the machine
while it ran (``/proc/stat`` busy jiffies minus our own CPU time). Reference and subject alternate
(ABAB...) so drift hits both; the result carries median and best of >= 5 accepted reps, and is
marked ``contended`` (never failed) when 60 s pass without enough quiet reps.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from townlet.runs.seeding import THREAD_VARS

QUIET_THRESHOLD = 0.08
CONTENDED_AFTER_S = 60.0


def _proc_stat() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine; (0, 0) where /proc is unavailable."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0, 0
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def _own_cpu_jiffies(children: bool) -> float:
    times = os.times()
    own = times.user + times.system + (times.children_user + times.children_system if children else 0.0)
    return own * os.sysconf("SC_CLK_TCK")


class QuietProbe:
    """Measures the share of the machine used by *other* processes during a window."""

    def __init__(self, include_children: bool = True) -> None:
        self.include_children = include_children

    def __enter__(self) -> QuietProbe:
        self._busy0, self._total0 = _proc_stat()
        self._own0 = _own_cpu_jiffies(self.include_children)
        return self

    def __exit__(self, *exc: object) -> None:
        busy1, total1 = _proc_stat()
        own = _own_cpu_jiffies(self.include_children) - self._own0
        total = max(total1 - self._total0, 1)
        self.other_share = max(0.0, (busy1 - self._busy0 - own) / total)

    @property
    def quiet(self) -> bool:
        return self.other_share < QUIET_THRESHOLD


@dataclass
class Measurement:
    """Accepted repetitions of one subject (seconds per rep)."""

    name: str
    times: list[float] = field(default_factory=list)
    rejected: int = 0
    contended: bool = False

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    @property
    def best(self) -> float | None:
        return min(self.times) if self.times else None

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "median_s": self.median,
            "best_s": self.best,
            "reps": len(self.times),
            "rejected": self.rejected,
            "contended": self.contended,
        }


def alternate(
    subjects: dict[str, Callable[[], Any]],
    reps: int = 5,
    *,
    gate: bool = True,
    contended_after_s: float = CONTENDED_AFTER_S,
) -> dict[str, Measurement]:
    """Run the subjects in ABAB order until each has ``reps`` quiet reps (or time runs out).

    After ``contended_after_s`` the loop accepts every rep and marks the measurements ``contended``.
    """
    results = {name: Measurement(name) for name in subjects}
    started = time.monotonic()
    contended = False
    while any(len(m.times) < reps for m in results.values()):
        if not contended and time.monotonic() - started > contended_after_s:
            contended = True
        for name, fn in subjects.items():
            m = results[name]
            if len(m.times) >= reps:
                continue
            with QuietProbe() as probe:
                t0 = time.perf_counter()
                fn()
                elapsed = time.perf_counter() - t0
            if not gate or probe.quiet or contended:
                m.times.append(elapsed)
                m.contended = m.contended or (gate and not probe.quiet)
            else:
                m.rejected += 1
    return results


def run_command(cmd: list[str], env: dict[str, str] | None = None) -> Callable[[], None]:
    """A subject that runs ``cmd`` to completion (stdout/stderr discarded; non-zero exit raises)."""

    def _fn() -> None:
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    return _fn


ISA_VARS = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA")


def context_record() -> dict[str, Any]:
    """Where and how the numbers were taken."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        sha = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                cwd=Path(__file__).parent,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        sha = None
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "omp": {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", *THREAD_VARS)},
        # a forced instruction set changes float order, so every learning figure names the one it ran under
        "isa": {k: os.environ.get(k) for k in ISA_VARS},
        "git_sha": sha,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of dict rows (columns from the first row)."""
    if not rows:
        return "(no rows)\n"
    cols = list(rows[0])
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    out = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(out) + "\n"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


__all__ = [
    "Measurement",
    "QuietProbe",
    "alternate",
    "context_record",
    "format_table",
    "run_command",
]
