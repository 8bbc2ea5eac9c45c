"""``townlet-bench bc``: behaviour cloning speed, each figure next to a reference from the same run.

* ``accuracy``: wall seconds from nothing (capture of the default scripted dataset, 25,600 rows)
  to 0.90 and 0.95 held-out accuracy with the default network (``model=conv``), one thread,
  validation every ``EVAL_EVERY`` minibatches (its time counted). Targets: <= 30 s and <= 60 s.
  Also in "bare epochs": the time to 0.90 divided by one bare train-step epoch on the same data
  (target <= 10). Torch import and the first optimiser (~1.4 s of ``torch._dynamo`` import) are
  paid before the clock starts and reported as ``warmup_s``.
* ``throughput``: ``train_epoch`` (what ``BCStrategy`` runs: randperm, gathered minibatches,
  on-device loss/accuracy sums) against a bare ``forward; loss; backward; step`` loop over
  contiguous slices of the same pre-stacked tensors, alternated ABAB, median of 5 quiet reps.
  Target: ratio >= 0.9.
* ``inference``: ``TorchPolicy.act`` on every agent of the default world (64) and of a 16x larger
  batch (1,024) against a bare ``network(...)`` forward on the same batch; forwards per act must
  be 1 (one batched forward per tick).

Run: ``townlet-bench bc [--quick] [--json PATH]`` or ``python -m townlet_tools.bench.bc``.
"""

from __future__ import annotations

from townlet.runs.seeding import configure_threads

configure_threads(1)  # before torch loads: one thread (also when run as a module)

import argparse  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

BATCH = 512
LR = 3e-3  # the strategy=bc default
EVAL_EVERY = 8  # minibatches between validation passes in the accuracy run
TARGET_90_S, TARGET_95_S = 30.0, 60.0
TARGET_RATIO = 0.9
MAX_BARE_EPOCHS = 10.0


def _torch() -> Any:
    import torch

    return torch


def _warmup() -> float:
    """Import torch and build a first optimiser (lazy ``torch._dynamo`` import) outside the clock."""
    t0 = time.perf_counter()
    torch = _torch()
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    return time.perf_counter() - t0


def _capture(ticks: int) -> Any:
    from townlet.rollout.collect import RolloutCaptureService
    from townlet.world import load_world_config

    return RolloutCaptureService().capture(load_world_config("default"), "scripted", ticks=ticks, seed=0)


def _network(spec: Any, model: Any = None) -> Any:
    from townlet.config.schema.model import ModelConfig
    from townlet.nets.models import build_network

    torch = _torch()
    torch.manual_seed(0)
    return build_network(model or ModelConfig(), spec)


def measure_accuracy(ticks: int = 400, budget_s: float = 90.0) -> dict[str, Any]:
    """Time from capture to 0.90 / 0.95 held-out accuracy (one thread, default network)."""
    from townlet.strategies.bc.data import map_channel_max, stack_tensors
    from townlet.strategies.bc.progress import evaluate_tensors
    from townlet_tools.bench.protocol import QuietProbe

    torch = _torch()
    import torch.nn.functional as F

    reached: dict[float, tuple[float, int] | None] = {0.90: None, 0.95: None}
    history: list[tuple[float, int, float]] = []
    with QuietProbe() as probe:
        t0 = time.perf_counter()
        data = _capture(ticks)
        t_capture = time.perf_counter() - t0
        train_data, val_data = data.split_by_agent(0.125, 0)
        train, _ = stack_tensors(train_data, "teacher_actions", "cpu")
        val, _ = stack_tensors(val_data, "teacher_actions", "cpu")
        net = _network(data.spec)
        net.set_input_normalisation(map_channel_max(train))
        opt = torch.optim.Adam(net.parameters(), lr=LR)
        gen = torch.Generator().manual_seed(0)
        seen, step = 0, 0
        while reached[0.95] is None and time.perf_counter() - t0 < budget_s:
            perm = torch.randperm(len(train), generator=gen)
            for start in range(0, len(train), BATCH):
                idx = perm[start : start + BATCH]
                net.train()
                logits, _ = net(train.maps[idx], train.features[idx], train.mask[idx])
                loss = F.cross_entropy(logits, train.targets[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                seen, step = seen + idx.shape[0], step + 1
                if step % EVAL_EVERY:
                    continue
                acc = evaluate_tensors(net, val, data.spec.num_actions)[1]
                elapsed = time.perf_counter() - t0
                history.append((round(elapsed, 2), seen, round(acc, 4)))
                for thr in reached:
                    if reached[thr] is None and acc >= thr:
                        reached[thr] = (elapsed, seen)
                if reached[0.95] is not None:
                    break
    bare_epoch = _bare_epoch_seconds(net, opt, train)
    t90 = reached[0.90][0] if reached[0.90] else None
    return {
        "rows": data.num_transitions,
        "train_rows": len(train),
        "val_rows": len(val),
        "capture_s": t_capture,
        "time_to_90_s": t90,
        "samples_to_90": reached[0.90][1] if reached[0.90] else None,
        "time_to_95_s": reached[0.95][0] if reached[0.95] else None,
        "samples_to_95": reached[0.95][1] if reached[0.95] else None,
        "bare_epoch_s": bare_epoch,
        "bare_epochs_to_90": t90 / bare_epoch if t90 is not None else None,
        "history": history,
        "contended": not probe.quiet,
        "other_share": probe.other_share,
    }


def _bare_epoch_seconds(net: Any, opt: Any, train: Any) -> float:
    """One pass of the bare train step over the training rows (the T6 'bare epoch')."""
    step = _bare_steps(net, opt, train, len(train))
    t0 = time.perf_counter()
    step()
    return time.perf_counter() - t0


def _bare_steps(net: Any, opt: Any, data: Any, rows: int) -> Any:
    """A bare loop: contiguous slices, forward, loss, backward, step — nothing else."""
    import torch.nn.functional as F

    def run() -> None:
        net.train()
        for start in range(0, rows, BATCH):
            sl = slice(start, min(start + BATCH, rows))
            logits, _ = net(data.maps[sl], data.features[sl], data.mask[sl])
            loss = F.cross_entropy(logits, data.targets[sl])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return run


def measure_throughput(rows: int, reps: int) -> dict[str, Any]:
    """BC's epoch loop against the bare loop on identical pre-stacked tensors (ABAB)."""
    from townlet.strategies.bc.data import BCTensors, epoch_generator, stack_tensors, train_epoch
    from townlet_tools.bench.protocol import alternate

    torch = _torch()
    data = _capture(max(1, rows // 64 + 1))
    full, _ = stack_tensors(data, "teacher_actions", "cpu")
    sub = BCTensors(*(t[:rows].contiguous() for t in full))
    net = _network(data.spec)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    bare = _bare_steps(net, opt, sub, rows)
    epoch = [0]

    def bc() -> None:
        epoch[0] += 1
        loss_sum, correct = train_epoch(
            net, opt, sub, BATCH, epoch_generator(0, epoch[0], torch.device("cpu"))
        )
        loss_sum.item(), correct.item()  # the one host sync per epoch BCStrategy also does

    bare()
    bc()  # warm both paths
    m = alternate({"bare": bare, "bc": bc}, reps=reps)
    b, s = m["bare"].median, m["bc"].median
    return {
        "rows_per_rep": rows,
        "bare_samples_per_s": rows / b if b else None,
        "bc_samples_per_s": rows / s if s else None,
        "ratio": b / s if b and s else None,
        "bare": m["bare"].summary(),
        "bc": m["bc"].summary(),
        "contended": m["bare"].contended or m["bc"].contended,
    }


def measure_inference(reps: int) -> dict[str, Any]:
    """TorchPolicy.act vs a bare forward on the same observation batch (64 and 1,024 agents)."""
    import numpy as np

    from townlet.behaviour.torch_policy import TorchPolicy
    from townlet.world import Observation
    from townlet_tools.bench.protocol import alternate

    torch = _torch()
    data = _capture(16)
    out: dict[str, Any] = {}
    net = _network(data.spec).eval()
    calls: list[int] = []
    hook = net.register_forward_hook(lambda *_: calls.append(1))
    for n in (64, 1024):
        flat = [np.ascontiguousarray(data.flat(c)[:n]) for c in ("maps", "features", "action_mask")]
        obs = Observation(*flat)
        policy = TorchPolicy(net, data.spec, "cpu", greedy=False, seed=0)
        tensors = [torch.from_numpy(a) for a in flat]
        loops = max(1, 4096 // n)

        def act(policy: Any = policy, obs: Any = obs, loops: int = loops) -> None:
            for _ in range(loops):
                policy.act(obs)

        def bare(tensors: list[Any] = tensors, loops: int = loops) -> None:
            with torch.inference_mode():
                for _ in range(loops):
                    net(*tensors)

        calls.clear()
        policy.act(obs)
        forwards = len(calls)
        bare()
        m = alternate({"bare": bare, "act": act}, reps=reps)
        b, a = m["bare"].median, m["act"].median
        out[str(n)] = {
            "agents": n,
            "forwards_per_act": forwards,
            "act_agent_steps_per_s": n * loops / a if a else None,
            "bare_agent_steps_per_s": n * loops / b if b else None,
            "ratio": b / a if a and b else None,
            "contended": m["bare"].contended or m["act"].contended,
        }
    hook.remove()
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Entry point for the ``townlet-bench`` dispatcher."""
    quick = bool(getattr(args, "quick", False))
    reps = 3 if quick else 5
    warm = _warmup()
    acc = measure_accuracy(ticks=100 if quick else 400, budget_s=30.0 if quick else 90.0)
    thr = measure_throughput(rows=2048 if quick else 4096, reps=reps)
    inf = measure_inference(reps)
    t90, t95 = acc["time_to_90_s"], acc["time_to_95_s"]
    rows = [
        _row(
            "time to 0.90 val acc (s)",
            t90,
            acc["capture_s"],
            "<= 30 s",
            t90 is not None and t90 <= TARGET_90_S,
            acc,
        ),
        _row(
            "time to 0.95 val acc (s)",
            t95,
            acc["capture_s"],
            "<= 60 s",
            t95 is not None and t95 <= TARGET_95_S,
            acc,
        ),
        _row(
            "bare epochs to 0.90",
            acc["bare_epochs_to_90"],
            acc["bare_epoch_s"],
            "<= 10",
            acc["bare_epochs_to_90"] is not None and acc["bare_epochs_to_90"] <= MAX_BARE_EPOCHS,
            acc,
        ),
        _row(
            "bc/bare train throughput",
            thr["ratio"],
            thr["bare_samples_per_s"],
            ">= 0.9",
            thr["ratio"] is not None and thr["ratio"] >= TARGET_RATIO,
            thr,
        ),
    ]
    for n, r in inf.items():
        rows.append(
            _row(
                f"act/bare inference B={n}",
                r["ratio"],
                r["bare_agent_steps_per_s"],
                "1 forward/tick",
                r["forwards_per_act"] == 1,
                r,
            )
        )
    if quick:  # smaller data: the accuracy targets are for the default dataset only
        for r in rows[:3]:
            r["met"] = None
    return {
        "warmup_s": warm,
        "accuracy": acc,
        "throughput": thr,
        "inference": inf,
        "targets_met": all(r["met"] for r in rows if r["met"] is not None),
        "rows": rows,
    }


def _row(
    metric: str, value: Any, reference: Any, target: str, met: bool, src: dict[str, Any]
) -> dict[str, Any]:
    return {
        "metric": metric,
        "value": value,
        "reference": reference,
        "target": target,
        "met": met,
        "contended": bool(src.get("contended")),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m townlet_tools.bench.bc", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    from townlet_tools.bench.protocol import context_record, format_table

    result = run(args)
    print(format_table(result["rows"]), end="")
    a = result["accuracy"]
    print(
        f"accuracy run: capture {a['capture_s']:.2f}s, {a['train_rows']} train / {a['val_rows']} val rows, "
        f"warm-up {result['warmup_s']:.2f}s (not counted)"
    )
    if args.json:
        from townlet.runs.atomic import atomic_write_json

        atomic_write_json(args.json, {"context": context_record(), "sections": {"bc": result}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
