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

Run: ``townlet-bench data`` or ``python -m townlet.bench.data [--quick] [--json]``.
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
    from townlet.policy.replay import ReplayData
    from townlet.policy.replay.columns import allocate

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


def _timed(fn: Callable[[], int]) -> tuple[float, float, int]:
    w0, c0 = time.perf_counter(), time.process_time()
    n = fn()
    return time.perf_counter() - w0, time.process_time() - c0, n


def _alternate(subject: Callable[[], int], reference: Callable[[], int], reps: int) -> dict[str, Any]:
    """ABAB repetitions; medians and bests of rates (items/s) by wall and by process time."""
    sub, ref = [], []
    for _ in range(reps):
        sub.append(_timed(subject))
        ref.append(_timed(reference))

    def rates(rows: list[tuple[float, float, int]]) -> dict[str, float]:
        wall = [n / w for w, _, n in rows]
        cpu = [n / c for _, c, n in rows if c > 0]
        return {
            "median": statistics.median(wall),
            "best": max(wall),
            "median_cpu": statistics.median(cpu) if cpu else 0.0,
        }

    s, r = rates(sub), rates(ref)
    return {
        "subject": s,
        "reference": r,
        "ratio": s["median"] / r["median"] if r["median"] else 0.0,
        "reps": reps,
    }


def _contended() -> bool:
    """Another process using more than ~8% of the machine right now (the quiet-gate rule)."""
    try:
        import psutil

        mine = psutil.Process().cpu_percent(interval=None)
        total = psutil.cpu_percent(interval=0.3) * psutil.cpu_count()
        return (total - mine) > 8.0 * psutil.cpu_count()
    except ImportError:  # pragma: no cover
        return False


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
    }


def _child(mode: str, path: str) -> dict[str, Any]:
    """Runs in a fresh interpreter: RSS baseline after imports, then one epoch, then peak RSS."""
    from townlet.policy.replay import load_dataset

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
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "townlet.bench.data", "--child", mode, str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"bench child ({mode}) failed: {out.stderr.strip().splitlines()[-1:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def bench_streaming(spec: Any, shard_rows: int, shards: int, agents: int) -> dict[str, Any]:
    from townlet.policy.replay import read_manifest, write_dataset

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
        from townlet.policy.behaviour import make_behaviour
        from townlet.world import load_world_config, make_town
    except ImportError as exc:
        return {"skipped": f"world not available ({exc})"}
    from townlet.policy.training.services.rollout import RolloutCaptureService

    cfg = load_world_config("default")
    cfg.num_envs, cfg.num_agents = num_envs, num_agents
    service = RolloutCaptureService()
    rates, cpu_rates = [], []
    for rep in range(reps + 1):  # rep 0 is warm-up
        town = make_town(cfg, rep)
        policy = make_behaviour("scripted", town.spec, seed=rep)

        def once(t: Any = town, p: Any = policy) -> int:
            return int(service.collect(t, p, ticks).num_transitions)

        wall, cpu, _ = _timed(once)
        if rep:
            rates.append(ticks * town.n_agents / wall)
            cpu_rates.append(ticks * town.n_agents / cpu)
    median = statistics.median(rates)
    return {
        "config": {"world": "default", "num_envs": num_envs, "num_agents": num_agents, "ticks": ticks},
        "frames_per_s": median,
        "frames_per_s_best": max(rates),
        "frames_per_s_cpu": statistics.median(cpu_rates),
        "upstream_frames_per_s": 136,
        "target": 100_000,
        "meets_target": median >= 100_000,
        "reps": reps,
    }


def run(args: Any = None) -> dict[str, Any]:
    """Entry used by the ``townlet-bench`` dispatcher."""
    quick = bool(getattr(args, "quick", False))
    reps = int(getattr(args, "reps", 0) or (3 if quick else 5))
    spec = _spec()
    contended_before = _contended()
    result: dict[str, Any] = {
        "section": "data",
        "threads": 1,
        "inmemory": bench_inmemory(spec, ticks=64 if quick else 128, agents=1024, reps=reps),
        "streaming": bench_streaming(spec, shard_rows=8192 if quick else 16384, shards=12, agents=1024),
        "capture": bench_capture(ticks=50 if quick else 200, reps=reps),
    }
    result["contended"] = contended_before or _contended()
    return result


def _table(result: dict[str, Any]) -> str:
    im, st, cap = result["inmemory"], result["streaming"], result["capture"]
    lines = [
        "data bench" + ("  [contended]" if result.get("contended") else ""),
        f"  in-memory minibatches  {im['transitions_per_s']:>14,.0f} transitions/s  "
        f"(copy ref {im['reference_copy_rows_per_s']:,.0f}/s, ratio {im['ratio_to_copy']:.2f}; "
        f"target 1,000,000: {'OK' if im['meets_target'] else 'MISS'})",
        f"  streaming epoch        {st['streaming_transitions_per_s']:>14,.0f} transitions/s  "
        f"(first, verifying: {st['streaming_first_epoch_per_s']:,.0f}/s)  "
        f"peak RSS +{st['streaming_rss_growth_mb']:.0f} MB for a {st['dataset_mb']:.0f} MB dataset "
        f"of {st['config']['shards']} x {st['shard_mb']:.0f} MB shards "
        f"(bound {st['streaming_bound_mb']:.0f} MB: {'OK' if st['meets_bound'] else 'MISS'}; "
        f"in-memory +{st['inmemory_rss_growth_mb']:.0f} MB)",
    ]
    if "skipped" in cap:
        lines.append(f"  scripted capture       skipped: {cap['skipped']}")
    else:
        lines.append(
            f"  scripted capture       {cap['frames_per_s']:>14,.0f} frames/s at "
            f"{cap['config']['num_envs'] * cap['config']['num_agents']} agents "
            f"(target 100,000: {'OK' if cap['meets_target'] else 'MISS'}; upstream 136)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m townlet.bench.data", description="data path benchmark")
    p.add_argument("--quick", action="store_true", help="smaller sizes, 3 reps")
    p.add_argument("--reps", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_child(*args.child)))
        return 0
    result = run(args)
    print(json.dumps(result, indent=1) if args.json else _table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
