"""``townlet-bench wall [--baseline PYTHON] [OVERRIDES]``: the whole ``townlet-train`` process, timed.

What a user waits for: start-up, data, training, the final evaluation and the plots, for one PPO job
(``strategy=ppo strategy.total_steps=65536`` unless overrides are given). With ``--baseline`` (the
interpreter of another checkout's environment, e.g. an older release's venv) the same command runs
under both, alternating, and the row carries the ratios new / baseline of the median wall time and of
the peak resident memory (the largest ``ru_maxrss`` the kernel reports for one run's process), measured
in the same run. Every run writes into a fresh temporary directory, so no run reuses another's data or
outputs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from townlet.runs.seeding import THREAD_VARS
from townlet_tools.bench.protocol import alternate

DEFAULT_OVERRIDES = ("strategy=ppo", "strategy.total_steps=65536")


def _subject(python: str, overrides: list[str], scratch: Path, peaks: list[int]) -> Any:
    counter = iter(range(10**6))
    # the bench pins its own threads; each timed process keeps the thread settings its config gives it
    unset = {"PYTHONPATH", "HYDRA_FULL_ERROR", "OMP_WAIT_POLICY", *THREAD_VARS}
    env = {k: v for k, v in os.environ.items() if k not in unset}

    def _once() -> None:
        out = scratch / f"run_{next(counter)}"
        where = [f"hydra.run.dir={out}", f"paths.data_dir={scratch / 'data'}"]
        cmd = [python, "-m", "townlet.train", *overrides, *where]
        proc = subprocess.Popen(
            cmd, env={**env, "TOWNLET_ROOT": str(out)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own resource usage, peak RSS included
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, cmd)
        peaks.append(usage.ru_maxrss)  # KiB on Linux

    return _once


def run(args: argparse.Namespace) -> dict[str, Any]:
    overrides = list(args.overrides or DEFAULT_OVERRIDES)
    reps = 3 if getattr(args, "quick", False) else 5
    peaks: dict[str, list[int]] = {"this checkout": [], "baseline": []}
    with tempfile.TemporaryDirectory(prefix="townlet-wall-") as tmp:
        scratch = Path(tmp)
        subjects = {
            "this checkout": _subject(sys.executable, overrides, scratch / "new", peaks["this checkout"])
        }
        if args.baseline:
            subjects["baseline"] = _subject(args.baseline, overrides, scratch / "old", peaks["baseline"])
        for subject in subjects.values():
            subject()  # a first run of each captures the shared dataset and warms the file cache
        measured = alternate(subjects, reps=reps, gate=False)
    peak_mib = {name: max(kib) / 1024 for name, kib in peaks.items() if kib}
    rows = [
        {**m.summary(), "peak_rss_mib": round(peak_mib[name], 1), "overrides": " ".join(overrides)}
        for name, m in measured.items()
    ]
    new, old = measured["this checkout"].median, measured.get("baseline")
    summary = {"peak_rss_mib": round(peak_mib["this checkout"], 1)}
    if old is not None and old.median and new:
        summary["wall_ratio_new_over_baseline"] = round(new / old.median, 3)
        summary["peak_rss_ratio_new_over_baseline"] = round(
            peak_mib["this checkout"] / peak_mib["baseline"], 3
        )
    return {"section": "wall", "rows": rows, "summary": summary}
