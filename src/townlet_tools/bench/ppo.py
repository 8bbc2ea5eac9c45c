"""``townlet-bench ppo``: PPO throughput as ratios against references measured in the same run.

* ``update``: samples/s of ``ppo_update`` (the default network, minibatch 1024, one thread, 1 epoch
  over 8 minibatches of synthetic data), against (a) a bare ``forward; loss; backward; clip; step``
  loop over the same tensors and (b) the roofline = sgemm probe FLOP/s / the network's train FLOPs
  per sample (``torch.utils.flop_counter``). Floors: >= 0.9x bare, >= 0.5x roofline.
* ``rollout``: agent-steps/s of ``RolloutCaptureService.collect`` with the torch policy in the
  default world, against the harmonic bound 1 / (1/sim_rate + 1/inference_rate) of a bare
  ``town.step`` loop and a bare batched ``policy.act`` on the same batch size. Floor: >= 0.75.
* ``iteration``: one real ``PPOStrategy`` iteration (collect + GAE + update + metrics line +
  checkpoint) against collect-only + update-only of the same sizes. Floor: <= 1.15x.
* ``--learning`` (``python -m townlet_tools.bench.ppo --learning``): agent-steps and wall time for PPO
  from scratch to reach the scripted policy's mean episode return on ``default`` (minutes; not
  part of ``townlet-bench all``).

Run: ``townlet-bench ppo [--quick] [--json PATH]`` or ``python -m townlet_tools.bench.ppo``.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

MINIBATCH = 1024
GEMM_SHAPE = (1024, 3872, 256)  # the conv->fc layer of the default network: its dominant GEMM


def _torch() -> Any:
    import torch

    torch.set_num_threads(1)
    return torch


def _default_world() -> Any:
    from townlet.world import load_world_config

    return load_world_config("default")


def _default_model() -> Any:
    from townlet.config.schema.model import ModelConfig

    return ModelConfig()


def _network(spec: Any) -> Any:
    from townlet.nets.models import build_network

    torch = _torch()
    torch.manual_seed(0)
    return build_network(_default_model(), spec)


def synthetic_batch(spec: Any, rows: int, seed: int = 0) -> Any:
    """A PPO batch of realistic shapes (the update's speed does not depend on the values)."""
    from townlet.algorithms.update import PPOBatch

    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    c, w, _ = spec.map_shape
    return PPOBatch(
        maps=torch.randint(0, 2, (rows, c, w, w), dtype=torch.uint8, generator=g),
        features=torch.rand(rows, spec.feature_dim, generator=g),
        action_mask=torch.ones(rows, spec.num_actions, dtype=torch.bool),
        actions=torch.randint(0, spec.num_actions, (rows,), generator=g),
        old_log_probs=torch.full((rows,), -2.0),
        old_values=torch.randn(rows, generator=g),
        advantages=torch.randn(rows, generator=g),
        returns=torch.randn(rows, generator=g),
    )


def _ppo_loss(net: Any, b: Any, sl: slice) -> Any:
    from townlet.algorithms.update import clipped_surrogate, clipped_value_loss, log_prob_of, masked_entropy

    logits, v = net(b.maps[sl], b.features[sl], b.action_mask[sl])
    log_prob = log_prob_of(logits, b.actions[sl])
    loss_pi, _, _ = clipped_surrogate(log_prob, b.old_log_probs[sl], b.advantages[sl], 0.2)
    loss_v = clipped_value_loss(v, b.old_values[sl], b.returns[sl], 0.2)
    return loss_pi + 0.5 * loss_v - 0.01 * masked_entropy(logits).mean()


def train_flops_per_sample(net: Any, batch: Any, rows: int = MINIBATCH) -> float:
    """Forward + backward FLOPs of the PPO loss per sample (torch's FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        _ppo_loss(net, batch, slice(0, rows)).backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops() / rows


def bench_update(quick: bool) -> dict[str, Any]:
    from townlet.algorithms.update import ppo_update
    from townlet.strategies.ppo import PPOStrategy
    from townlet.world import make_town
    from townlet_tools.bench.protocol import alternate

    torch = _torch()
    spec = make_town(_default_world(), 0).spec
    rows = MINIBATCH * (4 if quick else 8)
    batch = synthetic_batch(spec, rows)
    net = _network(spec)
    opt = torch.optim.Adam(net.parameters(), lr=3e-4, eps=1e-5)
    strategy = PPOStrategy(update_epochs=1)
    hp = strategy.hyper_params(minibatch_size=MINIBATCH, entropy_coef=strategy.entropy_coef)
    gen = torch.Generator().manual_seed(0)
    params = list(net.parameters())

    def bare() -> None:
        for i in range(0, rows, MINIBATCH):
            loss = _ppo_loss(net, batch, slice(i, i + MINIBATCH))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 0.5)
            opt.step()

    def update() -> None:
        ppo_update(net, opt, batch, hp, gen)

    m, k, n = GEMM_SHAPE
    a, b = torch.randn(m, k), torch.randn(k, n)
    gemm_calls = 20

    def gemm() -> None:
        for _ in range(gemm_calls):
            torch.mm(a, b)

    flops = train_flops_per_sample(net, batch)
    t0 = time.perf_counter()
    for warm in (bare, update, gemm):  # warm-up: first optimizer step, oneDNN primitive creation
        warm()
    warmup = time.perf_counter() - t0
    res = alternate({"bare": bare, "update": update, "gemm": gemm}, reps=3 if quick else 5)
    bare_rate = rows / res["bare"].median  # type: ignore[operator]
    update_rate = rows / res["update"].median  # type: ignore[operator]
    gemm_flops = gemm_calls * 2.0 * m * k * n / res["gemm"].median  # type: ignore[operator]
    roofline = gemm_flops / flops
    return {
        "config": {"rows": rows, "minibatch": MINIBATCH, "threads": torch.get_num_threads(), "model": "conv"},
        "train_mflop_per_sample": flops / 1e6,
        "gemm_gflops": gemm_flops / 1e9,
        "roofline_samples_per_s": roofline,
        "bare_samples_per_s": bare_rate,
        "update_samples_per_s": update_rate,
        "update_vs_bare": update_rate / bare_rate,
        "update_vs_roofline": update_rate / roofline,
        "warmup_s": warmup,
        "contended": any(r.contended for r in res.values()),
        "reps": {name: r.summary() for name, r in res.items()},
    }


def _acting_policy(spec: Any, seed: int = 0) -> Any:
    from townlet.behaviour.torch_policy import TorchPolicy
    from townlet.strategies.ppo.sources import ActingPolicy

    return ActingPolicy(TorchPolicy(_network(spec), spec, "cpu", greedy=False, seed=seed))


def bench_rollout(quick: bool) -> dict[str, Any]:
    import numpy as np

    from townlet.rollout.collect import RolloutCaptureService
    from townlet.world import make_town
    from townlet_tools.bench.protocol import alternate

    torch = _torch()
    ticks = 32 if quick else 64
    sim_town = make_town(_default_world(), 1)
    roll_town = make_town(_default_world(), 2)
    n = sim_town.n_agents
    policy = _acting_policy(sim_town.spec)
    obs = sim_town.reset()
    rng = np.random.default_rng(0)
    actions = rng.integers(0, sim_town.spec.num_actions, size=(ticks, n), dtype=np.int64)
    service = RolloutCaptureService()
    state: dict[str, Any] = {"obs": None}

    def sim() -> None:
        for t in range(ticks):
            sim_town.step(actions[t])

    def infer() -> None:
        for _ in range(ticks):
            policy.act(obs)

    def rollout() -> None:
        data = service.collect(roll_town, policy, ticks, start_obs=state["obs"])
        state["obs"] = data.next_obs

    for warm in (sim, infer, rollout):
        warm()
    res = alternate({"sim": sim, "inference": infer, "rollout": rollout}, reps=3 if quick else 5)
    rate = {k: ticks * n / r.median for k, r in res.items()}  # type: ignore[operator]
    bound = 1.0 / (1.0 / rate["sim"] + 1.0 / rate["inference"])
    return {
        "config": {"world": "default", "agents": n, "ticks": ticks, "threads": torch.get_num_threads()},
        "sim_agent_steps_per_s": rate["sim"],
        "inference_agent_steps_per_s": rate["inference"],
        "rollout_agent_steps_per_s": rate["rollout"],
        "harmonic_bound": bound,
        "rollout_vs_bound": rate["rollout"] / bound,
        "contended": any(r.contended for r in res.values()),
        "reps": {name: r.summary() for name, r in res.items()},
    }


def _context(strategy: Any, run_dir: Path, model: Any, init_from: str | None = None) -> Any:
    """The context ``townlet-train`` would give ``strategy`` (the façade's assembly, seeding included)."""
    from townlet.config.schema.evaluation import EvaluationConfig
    from townlet.facade import PolicyTrainingOrchestrator, RunSettings
    from townlet.rollout.collect import RolloutCaptureService
    from townlet.runs.metrics import MetricsWriter
    from townlet.runs.rundir import RunDir
    from townlet.strategies.services import TrainingServices

    settings = RunSettings(
        seed=0,
        world=_default_world(),
        dataset=None,
        model=model,
        device="cpu",
        run_dir=RunDir(run_dir).prepare(),
        metrics=MetricsWriter(run_dir / "metrics.jsonl"),
        init_from=init_from,
        evaluation=EvaluationConfig(enabled=False),
    )
    services = TrainingServices(rollout=RolloutCaptureService())
    return PolicyTrainingOrchestrator(strategy, services, logging.getLogger(__name__)).build_context(settings)


def bench_iteration(quick: bool) -> dict[str, Any]:
    """A real strategy iteration vs its two halves run on their own (same sizes, same network)."""
    from townlet.algorithms.gae import prepare_batch
    from townlet.algorithms.update import ppo_update
    from townlet.strategies.ppo import PPORun, PPOStrategy
    from townlet_tools.bench.protocol import alternate

    torch = _torch()
    n_steps = 16 if quick else 32
    strategy = PPOStrategy(n_steps=n_steps, total_steps=10**9, minibatch_size=MINIBATCH, update_epochs=2)
    with tempfile.TemporaryDirectory() as tmp:
        run = PPORun(strategy, _context(strategy, Path(tmp), _default_model()))
        run.setup()
        counter = {"it": 0}
        assert run.rollout is not None
        town, policy, service = run.rollout.town, run.rollout.policy, run.rollout.service
        state: dict[str, Any] = {"obs": None}
        sample = service.collect(town, policy, n_steps)
        rows = strategy.minibatch_rows(sample.num_transitions)
        hp = strategy.hyper_params(minibatch_size=rows, entropy_coef=strategy.entropy_coef)
        gen = torch.Generator().manual_seed(0)

        def iteration() -> None:
            counter["it"] += 1
            run.iteration(counter["it"])
            run.checkpoint(counter["it"], final=True)

        def collect() -> None:
            state["obs"] = service.collect(town, policy, n_steps, start_obs=state["obs"]).next_obs

        def update() -> None:
            prepared = prepare_batch(sample, run.device, gamma=0.99, lam=0.95, normalise=True, where="bench")
            ppo_update(run.net, run.opt, prepared.batch, hp, gen)

        for warm in (iteration, collect, update):
            warm()
        parts = {"iteration": iteration, "collect": collect, "update": update}
        res = alternate(parts, reps=3 if quick else 5)
    med = {k: r.median for k, r in res.items()}
    return {
        "config": {
            "n_steps": n_steps,
            "rows": sample.num_transitions,
            "update_epochs": hp.update_epochs,
            "minibatch": hp.minibatch_size,
        },
        "iteration_s": med["iteration"],
        "collect_s": med["collect"],
        "update_s": med["update"],
        "iteration_vs_sum": med["iteration"] / (med["collect"] + med["update"]),  # type: ignore[operator]
        "contended": any(r.contended for r in res.values()),
        "reps": {name: r.summary() for name, r in res.items()},
    }


def bench_learning(max_steps: int, model: str = "conv", init_from: str | None = None) -> dict[str, Any]:
    """Agent-steps and wall time until a rolling mean of completed episode returns reaches scripted's."""
    import numpy as np

    from townlet.behaviour.rules import make_behaviour
    from townlet.rollout.collect import RolloutCaptureService
    from townlet.strategies.ppo import PPORun, PPOStrategy
    from townlet.world import make_town

    _torch()
    world = _default_world()
    town = make_town(world, 123)
    ref, rnd = (
        RolloutCaptureService().collect(town, make_behaviour(kind, town.spec, seed=0), world.episode_length)
        for kind in ("scripted", "random")
    )
    target = float(ref.episode_stats["return_mean"])
    model_cfg = _default_model()
    model_cfg.kind = model
    strategy = PPOStrategy(total_steps=max_steps)
    curve: list[tuple[float, float, float]] = []
    reached = None
    with tempfile.TemporaryDirectory() as tmp:
        run = PPORun(strategy, _context(strategy, Path(tmp), model_cfg, init_from))
        started = time.perf_counter()
        run.setup()
        recent: list[float] = []
        for it in range(1, run.iterations + 1):
            rec = run.iteration(it)
            if rec.get("episode_return_mean") is not None:
                recent.append(rec["episode_return_mean"])
                curve.append((run.state.env_steps, time.perf_counter() - started, rec["episode_return_mean"]))
                if reached is None and float(np.mean(recent[-2:])) >= target:
                    reached = {"env_steps": run.state.env_steps, "wall_s": time.perf_counter() - started}
                    break
    return {
        "scripted_return": target,
        "random_return": float(rnd.episode_stats["return_mean"]),
        "reached": reached,
        "best_return": max((c[2] for c in curve), default=None),
        "curve": curve,
        "max_steps": max_steps,
        "model": model,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Entry point for ``townlet-bench ppo``."""
    quick = bool(getattr(args, "quick", False))
    results: dict[str, Any] = {
        "update": bench_update(quick),
        "rollout": bench_rollout(quick),
        "iteration": bench_iteration(quick),
    }
    u, r, i = results["update"], results["rollout"], results["iteration"]
    rows = [
        {"figure": "update samples/s", "value": u["update_samples_per_s"], "reference": "bare loop",
         "ref_value": u["bare_samples_per_s"], "ratio": u["update_vs_bare"], "floor": ">= 0.90",
         "contended": u["contended"]},
        {"figure": "update samples/s", "value": u["update_samples_per_s"], "reference": "roofline",
         "ref_value": u["roofline_samples_per_s"], "ratio": u["update_vs_roofline"], "floor": ">= 0.50",
         "contended": u["contended"]},
        {"figure": "rollout agent-steps/s", "value": r["rollout_agent_steps_per_s"],
         "reference": "harmonic bound", "ref_value": r["harmonic_bound"], "ratio": r["rollout_vs_bound"],
         "floor": ">= 0.75", "contended": r["contended"]},
        {"figure": "iteration s", "value": i["iteration_s"], "reference": "collect + update",
         "ref_value": i["collect_s"] + i["update_s"], "ratio": i["iteration_vs_sum"], "floor": "<= 1.15",
         "contended": i["contended"]},
    ]  # fmt: skip
    if getattr(args, "learning", False):
        results["learning"] = bench_learning(
            int(getattr(args, "learning_steps", 1_048_576)),
            str(getattr(args, "learning_model", "conv")),
            getattr(args, "init_from", None),
        )
        lr = results["learning"]
        rows.append({"figure": "steps to scripted return", "value": (lr["reached"] or {}).get("env_steps"),
                     "reference": "scripted return", "ref_value": lr["scripted_return"], "ratio": None,
                     "floor": "report", "contended": None})  # fmt: skip
    results["rows"] = rows
    return results


def main(argv: list[str] | None = None) -> int:
    import json

    from townlet_tools.bench.protocol import context_record, format_table

    parser = argparse.ArgumentParser(
        prog="python -m townlet_tools.bench.ppo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--learning", action="store_true", help="also measure steps/time to scripted return")
    parser.add_argument("--learning-steps", type=int, default=1_048_576, dest="learning_steps")
    parser.add_argument("--learning-model", default="conv", dest="learning_model", help="conv | mlp")
    parser.add_argument("--init-from", default=None, dest="init_from", help="warm-start checkpoint (e.g. BC)")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    result = run(args)
    print(format_table(result["rows"]), end="")
    if args.json:
        payload = {"context": context_record(), "ppo": result}
        Path(args.json).write_text(json.dumps(payload, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
