"""``townlet-bench sweep``: a 4-job BC sweep with ``launcher=joblib n_jobs=2`` against the same sweep run
sequentially (Hydra's basic launcher). Target: parallel wall time <= 0.55x sequential.

Why whole ``townlet-train -m`` processes: the number users feel includes Hydra start-up, worker start-up
(each loky worker imports torch once) and the summary callback, not just the training loops. The
dataset is captured once before timing (both subjects read the same cache), every rep writes a fresh
sweep dir, and both subjects keep ``device.num_threads=1`` so the only difference is the launcher.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from itertools import count
from pathlib import Path
from typing import Any

from townlet.runs.seeding import thread_env
from townlet_tools.bench.protocol import alternate

TARGET_RATIO = 0.55
JOBS = 4

# Big enough that training, not start-up, dominates a job (several seconds of CPU each; at a tenth of
# that the fixed start-up of the sweep and its workers decided the ratio), small enough for a bench.
# Early stopping is off so every job does the same work.
BENCH_OVERRIDES = (
    "strategy=bc",
    "world.episode_length=100",
    "dataset.ticks=800",
    "strategy.epochs=4",
    "strategy.early_stopping_patience=0",
    "evaluation.episodes=1",
    "objective=accuracy",
    "device.num_threads=1",
)


def _env() -> dict[str, str]:
    env = {**os.environ, **thread_env(1)}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def _command(root: Path, sweep_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "townlet.train",
        "-m",
        *BENCH_OVERRIDES,
        f"paths.output_root={root / 'outputs'}",
        f"paths.data_dir={root / 'data'}",
        f"hydra.sweep.dir={sweep_dir}",
        f"seed={','.join(str(s) for s in range(JOBS))}",
        *extra,
    ]


def _subject(root: Path, name: str, extra: tuple[str, ...]) -> Callable[[], None]:
    """A fresh sweep dir per rep; fails loudly if any job did not finish."""
    reps = count()

    def _fn() -> None:
        sweep_dir = root / f"{name}-{next(reps)}"
        subprocess.run(
            _command(root, sweep_dir, *extra),
            env=_env(),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        summary = json.loads((sweep_dir / "sweep_summary.json").read_text())
        if summary["counts"]["ok"] != JOBS:
            raise RuntimeError(
                f"bench sweep {sweep_dir} finished {summary['counts']} jobs, expected {JOBS} ok"
            )
        shutil.rmtree(sweep_dir, ignore_errors=True)

    return _fn


def _warm_cache(root: Path) -> None:
    """Capture the dataset once (a single run) so no timed rep pays for it."""
    cmd = [
        sys.executable,
        "-m",
        "townlet.train",
        *BENCH_OVERRIDES,
        "strategy.epochs=1",
        f"paths.output_root={root / 'outputs'}",
        f"paths.data_dir={root / 'data'}",
        f"hydra.run.dir={root / 'warmup'}",
    ]
    subprocess.run(cmd, env=_env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run(args: argparse.Namespace) -> dict[str, Any]:
    quick = bool(getattr(args, "quick", False))
    reps = int(getattr(args, "reps", 0) or (2 if quick else 5))
    root = Path(tempfile.mkdtemp(prefix="townlet-bench-sweep-"))
    try:
        _warm_cache(root)
        subjects = {
            "sequential (basic)": _subject(root, "seq", ()),
            "joblib n_jobs=2": _subject(root, "par", ("launcher=joblib", "hydra.launcher.n_jobs=2")),
        }
        measured = alternate(subjects, reps=reps)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    seq, par = measured["sequential (basic)"], measured["joblib n_jobs=2"]
    ratio = None if not (seq.median and par.median) else par.median / seq.median
    # Parallel jobs lose far more than a sequential one when another process takes a core, so on a
    # shared box the best (least disturbed) reps show the launcher's capability; both are reported.
    ratio_best = None if not (seq.best and par.best) else par.best / seq.best
    rows = []
    for m in (seq, par):
        row = m.summary()
        row["jobs"] = JOBS
        row["times_s"] = [round(t, 2) for t in m.times]
        row["ratio_vs_sequential"] = None if m is seq or ratio is None else ratio
        row["ratio_best"] = None if m is seq else ratio_best
        row["target"] = None if m is seq else TARGET_RATIO
        row["ok"] = None if m is seq else ratio is not None and ratio <= TARGET_RATIO
        rows.append(row)
    return {
        "section": "sweep",
        "rows": rows,
        "ratio": ratio,
        "ratio_best": ratio_best,
        "target_ratio": TARGET_RATIO,
        "ok": ratio is not None and ratio <= TARGET_RATIO,
        "command": " ".join(_command(Path("<tmp>"), Path("<tmp>/sweep"))),
    }
