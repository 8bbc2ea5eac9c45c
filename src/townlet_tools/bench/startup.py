"""Start-up cost of the CLI: ``townlet-train --help`` and ``--cfg job`` against ``python -c pass``.

Targets: each <= 600 ms median (Hydra itself costs ~0.4 s; torch must never load here).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from townlet.runs.seeding import thread_env
from townlet_tools.bench.protocol import alternate, run_command

TARGET_S = 0.6


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, **thread_env(1)}
    env.pop("HYDRA_FULL_ERROR", None)
    train = [sys.executable, "-m", "townlet.train"]
    subjects = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "townlet-train --help": [*train, "--help"],
        "townlet-train --cfg job": [*train, "--cfg", "job"],
    }
    reps = 3 if getattr(args, "quick", False) else 7
    measured = alternate({k: run_command(v, env) for k, v in subjects.items()}, reps=reps)
    base = measured["python -c pass"].median or 0.0
    rows = []
    for name, m in measured.items():
        row = m.summary()
        row["minus_python_s"] = None if m.median is None else m.median - base
        row["target_s"] = None if name.startswith("python") else TARGET_S
        row["ok"] = None if row["target_s"] is None else bool(m.median is not None and m.median <= TARGET_S)
        rows.append(row)
    return {"section": "startup", "rows": rows}
