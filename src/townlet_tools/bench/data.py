"""``townlet-bench data``: how fast the data path feeds training, and what streaming costs in memory.

Figures (each with its exact configuration in the result):

* ``inmemory``: transitions/s of `ReplayData.iter_minibatches` (all columns, shuffled, batch 1024),
  against a same-run reference: a contiguous copy of the same bytes (``np.copyto``), the memory
  bandwidth ceiling for moving that data once.
* ``streaming``: transitions/s and **peak RSS** of a `StreamingDataset` epoch over a dataset of
  >= 10 shards, in a fresh subprocess (clean RSS), next to a full in-memory load of the same data.
  Bound to meet: peak RSS above the post-import baseline <= one shard's decoded size + 150 MB.
* ``capture``: scripted capture frames/s at 1,024 agents (64 towns x 16 agents): world step +
  observations + scripted decisions + buffer write, i.e. `RolloutCaptureService.collect`.

Run: ``townlet-bench data`` or ``python -m townlet_tools.bench.data [--quick] [--json]``.
Torch is never imported.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from townlet.runs.seeding import thread_env

BATCH = 1024
RSS_SLACK_MB = 150.0


# ------------------------------------------------------------------------------- helpers
def _spec() -> Any:
    """The default world's observation spec, or a stand-in of the same size before the world exists."""
    try:
        from townlet.world import load_world_config, make_town

        return make_town(load_world_config("default"), 0).spec
    except (ImportError, AttributeError):
        from townlet.world.spec import ObservationSpec

        return ObservationSpec(
            map_channels=tuple(f"c{i}" for i in range(8)),
            window=11,
            feature_names=tuple(f"f{i}" for i in range(48)),
        )


def synthetic_data(spec: Any, ticks: int, agents: int, seed: int = 0) -> Any:
    """Well-formed data of realistic size (content is irrelevant to the data path's speed)."""
    from townlet.replay import ReplayData
    from townlet.replay.columns import allocate

    rng = np.random.default_rng(seed)
    cols = allocate(spec, ticks, agents)
    cols["maps"][:] = rng.integers(0, 3, cols["maps"].shape, dtype=np.uint8)
    cols["features"][:] = rng.random(cols["features"].shape, dtype=np.float32)
    cols["action_mask"][:] = True
    for name in ("actions", "teacher_actions"):
        cols[name][:] = rng.integers(0, spec.num_actions, (ticks, agents))
    for name in ("log_probs", "values", "final_values", "rewards"):
        cols[name][:] = rng.standard_normal((ticks, agents), dtype=np.float32)
    for name in ("terminated", "truncated"):
        cols[name][:] = False
    for name in ("env_id", "agent_id", "episode_id"):
        cols[name][:] = 0
    cols["tick"][:] = np.arange(ticks, dtype=np.int32)[:, None]
    return ReplayData.from_columns(spec, cols, meta={"behaviour": "synthetic"})


def _row_bytes(data: Any) -> int:
    return sum(a.nbytes for a in data.columns().values()) // data.num_transitions


def _alternate(subject: Callable[[], int], reference: Callable[[], int], reps: int) -> dict[str, Any]:
    """ABAB quiet-gated repetitions via the shared protocol; rates (items/s) from medians, plus
    process-time rates (less affected by a busy neighbour on the other core)."""
    from townlet_tools.bench.protocol import alternate

    cpu: dict[str, list[float]] = {"subject": [], "reference": []}
    items: dict[str, int] = {}

    def wrap(name: str, fn: Callable[[], int]) -> Callable[[], None]:
        def run_once() -> None:
            c0 = time.process_time()
            items[name] = fn()
            cpu[name].append(time.process_time() - c0)

        return run_once

    res = alternate({"subject": wrap("subject", subject), "reference": wrap("reference", reference)}, reps)

    def rates(name: str) -> dict[str, Any]:
        m = res[name]
        n = items[name]
        return {
            "median": n / m.median if m.median else 0.0,
            "best": n / m.best if m.best else 0.0,
            "median_cpu": n / statistics.median(cpu[name]) if cpu[name] else 0.0,
            "contended": m.contended,
            "reps": len(m.times),
        }

    sub, ref = rates("subject"), rates("reference")
    return {
        "subject": sub,
        "reference": ref,
        "ratio": sub["median"] / ref["median"] if ref["median"] else 0.0,
        "contended": sub["contended"] or ref["contended"],
    }


# ------------------------------------------------------------------------------- sections
def bench_inmemory(spec: Any, ticks: int, agents: int, reps: int) -> dict[str, Any]:
    data = synthetic_data(spec, ticks, agents)
    columns = data.columns()
    dst = {k: np.empty_like(v) for k, v in columns.items()}
    epoch = [0]

    def subject() -> int:
        epoch[0] += 1
        n = 0
        for batch in data.iter_minibatches(BATCH, seed=0, epoch=epoch[0]):
            n += len(batch["actions"])
        return n

    def reference() -> int:
        for k, v in columns.items():
            np.copyto(dst[k], v)
        return data.num_transitions

    result = _alternate(subject, reference, reps)
    return {
        "config": {
            "ticks": ticks,
            "agents": agents,
            "batch": BATCH,
            "row_bytes": _row_bytes(data),
            "columns": "all",
        },
        "transitions_per_s": result["subject"]["median"],
        "transitions_per_s_best": result["subject"]["best"],
        "transitions_per_s_cpu": result["subject"]["median_cpu"],
        "reference_copy_rows_per_s": result["reference"]["median"],
        "ratio_to_copy": result["ratio"],
        "target": 1_000_000,
        "meets_target": result["subject"]["median"] >= 1_000_000,
        "reps": reps,
        "contended": result["contended"],
    }


def _child(mode: str, path: str) -> dict[str, Any]:
    """Runs in a fresh interpreter: RSS baseline after imports, then one epoch, then peak RSS."""
    from townlet.replay import load_dataset

    def rss_mb() -> float:
        """Peak RSS of this address space (VmHWM). ru_maxrss is not used: Linux carries it over
        from the parent across fork+exec, so the child would report the parent's peak."""
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    base = rss_mb()
    t0 = time.perf_counter()
    ds = load_dataset(path, streaming=(mode == "streaming"))
    n = sum(len(b["actions"]) for b in ds.iter_minibatches(BATCH, seed=0, epoch=0))
    first = time.perf_counter() - t0
    t1 = time.perf_counter()
    n2 = sum(len(b["actions"]) for b in ds.iter_minibatches(BATCH, seed=0, epoch=1))
    second = time.perf_counter() - t1
    return {
        "baseline_rss_mb": base,
        "peak_rss_mb": rss_mb(),
        "first_epoch_per_s": n / first,  # load (+ sha256/finiteness checks) + one epoch
        "later_epoch_per_s": n2 / second,
    }


def _run_child(mode: str, path: Path) -> dict[str, Any]:
    env = {**os.environ, **thread_env(1)}
    out = subprocess.run(
        [sys.executable, "-m", "townlet_tools.bench.data", "--child", mode, str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"bench child ({mode}) failed: {out.stderr.strip().splitlines()[-1:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def bench_streaming(spec: Any, shard_rows: int, shards: int, agents: int) -> dict[str, Any]:
    from townlet.replay import read_manifest, write_dataset

    ticks_per_shard = max(1, shard_rows // agents)
    tmp = Path(tempfile.mkdtemp(prefix="townlet-bench-data-"))
    try:
        data = synthetic_data(spec, ticks_per_shard * shards, agents)
        path = write_dataset(data, tmp / "ds", shard_rows=shard_rows)
        row_bytes = _row_bytes(data)
        del data
        manifest = read_manifest(path)
        shard_mb = manifest.max_shard_rows * row_bytes / 2**20
        dataset_mb = manifest.transitions * row_bytes / 2**20
        streaming = _run_child("streaming", path)
        inmem = _run_child("inmemory", path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    growth = streaming["peak_rss_mb"] - streaming["baseline_rss_mb"]
    return {
        "config": {
            "shard_rows": manifest.max_shard_rows,
            "shards": len(manifest.shards),
            "agents": agents,
            "batch": BATCH,
            "row_bytes": row_bytes,
        },
        "dataset_mb": dataset_mb,
        "shard_mb": shard_mb,
        "dataset_to_shard": dataset_mb / shard_mb,
        "streaming_peak_rss_mb": streaming["peak_rss_mb"],
        "streaming_rss_growth_mb": growth,
        "streaming_bound_mb": shard_mb + RSS_SLACK_MB,
        "meets_bound": growth <= shard_mb + RSS_SLACK_MB,
        "streaming_first_epoch_per_s": streaming["first_epoch_per_s"],
        "streaming_transitions_per_s": streaming["later_epoch_per_s"],
        "inmemory_peak_rss_mb": inmem["peak_rss_mb"],
        "inmemory_rss_growth_mb": inmem["peak_rss_mb"] - inmem["baseline_rss_mb"],
        "inmemory_load_and_first_epoch_per_s": inmem["first_epoch_per_s"],
        "inmemory_later_epoch_per_s": inmem["later_epoch_per_s"],
        "baseline_rss_mb": streaming["baseline_rss_mb"],
    }


def bench_capture(ticks: int, reps: int, num_envs: int = 64, num_agents: int = 16) -> dict[str, Any]:
    try:
        from townlet.behaviour.rules import make_behaviour
        from townlet.world import load_world_config, make_town
    except ImportError as exc:
        return {"skipped": f"world not available ({exc})"}
    from townlet.rollout.collect import RolloutCaptureService

    cfg = load_world_config("default")
    cfg.num_envs, cfg.num_agents = num_envs, num_agents
    service = RolloutCaptureService()
    town = make_town(cfg, 0)
    policy = make_behaviour("scripted", town.spec, seed=0)
    service.collect(town, policy, ticks)  # warm-up: first-touch of the buffers, caches

    def capture() -> int:
        return int(service.collect(town, policy, ticks).num_transitions)

    def bare() -> int:
        """Same world + scripted decisions, nothing recorded: what the recording costs on top."""
        obs = town.reset()
        for _ in range(ticks):
            obs = town.step(policy.act(obs).actions).obs
        return ticks * int(town.n_agents)

    result = _alternate(capture, bare, reps)
    sub = result["subject"]
    return {
        "config": {"world": "default", "num_envs": num_envs, "num_agents": num_agents, "ticks": ticks},
        "frames_per_s": sub["median"],
        "frames_per_s_best": sub["best"],
        "frames_per_s_cpu": sub["median_cpu"],
        "bare_act_step_frames_per_s": result["reference"]["median"],
        "bare_act_step_frames_per_s_cpu": result["reference"]["median_cpu"],
        "ratio_to_bare": result["ratio"],
        "target": 100_000,
        "meets_target": sub["median"] >= 100_000,
        "meets_target_cpu": sub["median_cpu"] >= 100_000,
        "reps": reps,
        "contended": result["contended"],
    }


def _rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Table rows for the ``townlet-bench`` dispatcher."""
    im, st, cap = result["inmemory"], result["streaming"], result["capture"]
    rows = [
        {
            "figure": "in-memory minibatches (batch 1024, all columns)",
            "value": f"{im['transitions_per_s']:,.0f}/s (cpu {im['transitions_per_s_cpu']:,.0f}/s)",
            "reference": f"copy {im['reference_copy_rows_per_s']:,.0f} rows/s",
            "target": ">= 1,000,000/s",
            "ok": im["meets_target"],
            "contended": im["contended"],
        },
        {
            "figure": f"streaming peak RSS growth ({st['dataset_mb']:.0f} MB dataset, "
            f"{st['shard_mb']:.0f} MB shards)",
            "value": f"+{st['streaming_rss_growth_mb']:.0f} MB",
            "reference": f"in-memory +{st['inmemory_rss_growth_mb']:.0f} MB",
            "target": f"<= {st['streaming_bound_mb']:.0f} MB",
            "ok": st["meets_bound"],
            "contended": False,
        },
        {
            "figure": "streaming epoch (shards verified on first read)",
            "value": f"{st['streaming_transitions_per_s']:,.0f}/s",
            "reference": f"first epoch {st['streaming_first_epoch_per_s']:,.0f}/s",
            "target": "-",
            "ok": True,
            "contended": False,
        },
    ]
    if "skipped" not in cap:
        rows.append(
            {
                "figure": "scripted capture, 64x16 = 1,024 agents",
                "value": f"{cap['frames_per_s']:,.0f} frames/s (cpu {cap['frames_per_s_cpu']:,.0f}/s)",
                "reference": f"bare act+step {cap['bare_act_step_frames_per_s']:,.0f}/s",
                "target": ">= 100,000/s",
                "ok": cap["meets_target"],
                "contended": cap["contended"],
            }
        )
    return rows


def run(args: Any = None) -> dict[str, Any]:
    """Entry used by the ``townlet-bench`` dispatcher."""
    quick = bool(getattr(args, "quick", False))
    reps = int(getattr(args, "reps", 0) or (3 if quick else 5))
    spec = _spec()
    result: dict[str, Any] = {
        "section": "data",
        "threads": 1,
        "inmemory": bench_inmemory(spec, ticks=64 if quick else 128, agents=1024, reps=reps),
        "streaming": bench_streaming(spec, shard_rows=8192 if quick else 16384, shards=12, agents=1024),
        "capture": bench_capture(ticks=50 if quick else 200, reps=reps),
    }
    result["contended"] = bool(result["inmemory"]["contended"] or result["capture"].get("contended"))
    result["rows"] = _rows(result)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m townlet_tools.bench.data", description="data path benchmark")
    p.add_argument("--quick", action="store_true", help="smaller sizes, 3 reps")
    p.add_argument("--reps", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_child(*args.child)))
        return 0
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        from townlet_tools.bench.protocol import format_table

        print(format_table(result["rows"]), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
