"""``townlet-bench learn [--seeds 0,1,2] [OVERRIDES...]``: does training beat the teacher, and how fast?

Each seed is one whole ``townlet-train`` process with the given overrides (the default main job
when none are given), so the figures are what a user gets: data capture, BC, PPO and evaluation
included; the run dirs (with their learning-curve plots) stay under
``outputs/bench_learn/<time>_<pid>/seed_<n>/``. Every run evaluates its trained policy, the scripted
teacher and the random policy on the same episodes, so the baselines are measured in the same run
as the result they frame.

Time-to-teacher reads the run's ``metrics.jsonl``: the first periodic evaluation
(``eval_return_mean``) at or above the teacher's evaluated return, or, in runs without periodic
evaluation, the first training-episode return (``episode_return_mean``) there; the ``source`` column
says which. Agent-steps count across anneal stages (see ``townlet.runs.plots.return_curves``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from townlet.config.schema import repo_root
from townlet.runs.metrics import read_metrics
from townlet.runs.plots import along_agent_steps, return_curves
from townlet.runs.seeding import THREAD_VARS

DEFAULT_SEEDS = (0, 1, 2)
MARGINS = (0.0, 10.0)  # time-to-teacher and time-to-teacher+10
QUICK_OVERRIDES = (  # a seconds-long smoke of the section itself, not a learning measurement
    "world.num_envs=2",
    "world.num_agents=2",
    "world.episode_length=40",
    "dataset.ticks=80",
    "evaluation.episodes=1",
    "strategy.evaluation_episodes=1",
    "strategy.schedule=[{cycle:0,mode:bc,epochs:1,bc_weight:1.0},{cycle:1,mode:ppo,epochs:2,bc_weight:0.0}]",
)


def train_once(seed: int, overrides: list[str], root: Path) -> dict[str, Any]:
    """One ``townlet-train`` run into ``root/seed_<n>``; its figures, or the error it ended with."""
    run_dir = root / f"seed_{seed}"
    cmd = [
        sys.executable,
        "-m",
        "townlet.train",
        *overrides,
        f"seed={seed}",
        f"hydra.run.dir={run_dir}",
        f"paths.data_dir={run_dir / 'data'}",  # every run pays for its own data, as a new user does
        f"paths.state_dir={run_dir / 'state'}",  # no baselines or promotion state shared across seeds
    ]
    # each seed runs alone with the threads its config gives it, as a user's run does
    env = {k: v for k, v in os.environ.items() if k not in {"HYDRA_FULL_ERROR", *THREAD_VARS}}
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return {"seed": seed, "wall_sec": wall, "error": lines[-1] if lines else f"exit {proc.returncode}"}
    result = json.loads((run_dir / "result.json").read_text())
    return {"seed": seed, "wall_sec": wall, "run_dir": str(run_dir), **run_figures(run_dir, result)}


def run_figures(run_dir: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Evaluated returns (trained, teacher, random), throughput and time-to-teacher of one run."""
    block = result.get("evaluation") or {}
    returns = {name: (block.get(name) or {}).get("mean_return") for name in ("policy", "scripted", "random")}
    records = list(read_metrics(run_dir / "metrics.jsonl"))
    curves = return_curves(records)
    source = "eval" if "eval" in curves else "train"
    points = sorted(
        ((x, y) for line in curves.get(source, {}).values() for x, y in line), key=lambda point: point[0]
    )
    walls = _wall_at_steps(records)
    figures: dict[str, Any] = {**returns, "source": source}
    figures["agent_steps"] = points[-1][0] if points else _total_steps(records)
    teacher = returns["scripted"]
    for margin in MARGINS:
        hit = next((x for x, y in points if teacher is not None and y >= teacher + margin), None)
        key = "teacher" if margin == 0 else f"teacher_plus_{margin:g}"
        figures[f"steps_to_{key}"] = hit
        figures[f"wall_to_{key}"] = walls.get(hit) if hit is not None else None
    return figures


def _wall_at_steps(records: list[dict[str, Any]]) -> dict[float, float]:
    """Agent-steps (counted across stages, as on the return plot) -> ``wall_sec`` of that record."""
    return {x: float(r["wall_sec"]) for x, r in along_agent_steps(records) if "wall_sec" in r}


def _total_steps(records: list[dict[str, Any]]) -> float | None:
    steps = along_agent_steps(records)
    return steps[-1][0] if steps else None


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std, min, max and median of the figures over the seeds that finished."""
    done = [r for r in runs if "error" not in r and r.get("policy") is not None]
    out: dict[str, Any] = {"seeds": len(runs), "finished": len(done)}
    for key in ("policy", "scripted", "random", "wall_sec"):
        values = [float(r[key]) for r in done if r.get(key) is not None]
        if values:
            out[key] = {
                "mean": statistics.fmean(values),
                "std": statistics.pstdev(values),
                "min": min(values),
                "max": max(values),
                "median": statistics.median(values),
            }
    gaps = [float(r["policy"]) - float(r["scripted"]) for r in done if r.get("scripted") is not None]
    if gaps:
        out["policy_minus_teacher"] = {"median": statistics.median(gaps), "min": min(gaps), "max": max(gaps)}
        out["beat_teacher"] = sum(g > 0 for g in gaps)
    steps = [r["agent_steps"] / r["wall_sec"] for r in done if r.get("agent_steps")]
    if steps:
        out["agent_steps_per_sec"] = statistics.median(steps)
    return out


def _row(run: dict[str, Any]) -> dict[str, Any]:
    if "error" in run:
        return {"seed": run["seed"], "wall_s": run["wall_sec"], "error": run["error"]}
    gap = None if run.get("scripted") is None else run["policy"] - run["scripted"]
    return {
        "seed": run["seed"],
        "trained": run["policy"],
        "teacher": run["scripted"],
        "random": run["random"],
        "trained-teacher": gap,
        "wall_s": run["wall_sec"],
        "t_teacher_s": run.get("wall_to_teacher"),
        "t_teacher+10_s": run.get("wall_to_teacher_plus_10"),
        "steps_teacher+10": run.get("steps_to_teacher_plus_10"),
        "source": run.get("source"),
    }


def _summary_row(summary: dict[str, Any]) -> dict[str, Any]:
    def pm(key: str) -> str:
        entry = summary.get(key)
        return "-" if entry is None else f"{entry['mean']:.2f} ± {entry['std']:.2f}"

    gap = summary.get("policy_minus_teacher") or {}
    return {
        "seed": f"all ({summary['finished']}/{summary['seeds']})",
        "trained": pm("policy"),
        "teacher": pm("scripted"),
        "random": pm("random"),
        "trained-teacher": (
            f"median {gap['median']:.2f}, min {gap['min']:.2f}, beat {summary.get('beat_teacher')}"
            if gap
            else "-"
        ),
        "wall_s": pm("wall_sec"),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    seeds = list(getattr(args, "seeds", None) or (DEFAULT_SEEDS[:1] if args.quick else DEFAULT_SEEDS))
    overrides = list(getattr(args, "overrides", None) or [])
    if args.quick:
        overrides = [*QUICK_OVERRIDES, *overrides]
    root = repo_root() / "outputs" / "bench_learn" / f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{os.getpid()}"
    runs = [train_once(seed, overrides, root) for seed in seeds]
    summary = summarise(runs)
    return {
        "consistent": summary["finished"] > 0,  # every seed failing is a failed bench (exit 1)
        "overrides": overrides,
        "runs_dir": str(root),
        "runs": runs,
        "summary": summary,
        "rows": [*(_row(r) for r in runs), _summary_row(summary)],
    }
