"""``townlet-bench ppo``: PPO throughput as ratios against references measured in the same run.

* ``update``: samples/s of ``ppo_update`` (the network ``townlet-train`` builds, ``model=`` to choose
  another; minibatch 1024, ``device.num_threads`` threads (``auto``: the usable cores, as in a run),
  1 epoch over 8 minibatches of synthetic data), against (a) a bare ``forward; loss; backward; clip;
  step`` loop over the same tensors and (b) the roofline = GEMM probe FLOP/s (the network's largest
  linear layer at the minibatch size) / the network's train FLOPs per sample
  (``torch.utils.flop_counter``). Floors: >= 0.9x bare, >= 0.5x roofline.
* ``rollout``: agent-steps/s of ``RolloutCaptureService.collect`` with the torch policy in the
  default world, against the harmonic bound 1 / (1/sim_rate + 1/inference_rate) of a bare
  ``town.step`` loop and a bare batched ``policy.act`` on the same batch size. Floor: >= 0.75.
* ``iteration``: one real ``PPOStrategy`` iteration (collect + GAE + update + metrics line +
  checkpoint) against collect-only + update-only of the same sizes. Floor: <= 1.15x. It also
  reports collect's and update's shares of the two halves and the cores the process kept busy.

Learning (steps and time to the teacher's return) is ``townlet-bench learn``'s.

Run: ``townlet-bench ppo [--quick] [--json PATH] [model=conv] [device.num_threads=1]``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

MINIBATCH = 1024
_SETUP: dict[str, Any] = {"overrides": []}  # the section's townlet-train overrides (model=, device.*)


def _composed() -> Any:
    """``townlet-train``'s config with the section's overrides: the network and threads a run uses."""
    from hydra import compose, initialize_config_dir

    from townlet.config.schema import conf_dir, register_configs
    from townlet.config.schema.device import usable_cores

    if "cfg" not in _SETUP:
        register_configs()
        wanted = [o for o in _SETUP["overrides"] if o.split("=")[0].split(".")[0] in {"model", "device"}]
        with initialize_config_dir(str(conf_dir()), job_name="bench"):
            cfg = compose("train", overrides=wanted)
        if cfg.device.num_threads == "auto":  # not townlet-bench's own one-thread OMP_NUM_THREADS pin
            cfg.device.num_threads = usable_cores()
        _SETUP["cfg"] = cfg
    return _SETUP["cfg"]


def _torch() -> Any:
    import torch

    from townlet.config.schema.device import resolve_threads

    torch.set_num_threads(resolve_threads(_composed().device.num_threads))
    return torch


def _default_world() -> Any:
    from townlet.world import load_world_config

    return load_world_config("default")


def _default_model() -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_object(_composed().model)


def _network(spec: Any) -> Any:
    from townlet.nets.models import build_network

    torch = _torch()
    torch.manual_seed(0)
    return build_network(_default_model(), spec)


def synthetic_batch(spec: Any, rows: int, seed: int = 0) -> Any:
    """A PPO batch of realistic shapes (the update's speed does not depend on the values)."""
    from townlet.algorithms.gae import PPOBatch

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

    # the roofline's GEMM: the network's largest linear layer at the minibatch size
    widest = max(
        (mod for mod in net.modules() if isinstance(mod, torch.nn.Linear)), key=lambda m: m.weight.numel()
    )
    m, k, n = MINIBATCH, widest.in_features, widest.out_features
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
    gemm_flops = gemm_calls * 2.0 * m * k * n / res["gemm"].median
    roofline = gemm_flops / flops
    return {
        "config": {
            "rows": rows,
            "minibatch": MINIBATCH,
            "threads": torch.get_num_threads(),
            "gemm": [m, k, n],
        },
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
        device=_composed().device,  # its threads too: the façade applies them
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
        threads = torch.get_num_threads()  # what the run's own set-up applied
        parts = {"iteration": iteration, "collect": collect, "update": update}
        cpu0, wall0 = time.process_time(), time.perf_counter()
        res = alternate(parts, reps=3 if quick else 5)
        cores_used = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    med = {k: r.median for k, r in res.items()}
    halves = med["collect"] + med["update"]  # type: ignore[operator]
    return {
        "config": {
            "n_steps": n_steps,
            "rows": sample.num_transitions,
            "update_epochs": hp.update_epochs,
            "minibatch": hp.minibatch_size,
            "threads": threads,
        },
        "iteration_s": med["iteration"],
        "collect_s": med["collect"],
        "update_s": med["update"],
        "iteration_vs_sum": med["iteration"] / halves,  # type: ignore[operator]
        "collect_share": med["collect"] / halves,  # type: ignore[operator]
        "update_share": med["update"] / halves,  # type: ignore[operator]
        "cores_used": cores_used,  # CPU seconds per wall second over the reps (threads at work)
        "contended": any(r.contended for r in res.values()),
        "reps": {name: r.summary() for name, r in res.items()},
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Entry point for ``townlet-bench ppo``."""
    quick = bool(getattr(args, "quick", False))
    _SETUP.clear()
    _SETUP["overrides"] = list(getattr(args, "overrides", None) or [])
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
        {"figure": "collect share", "value": i["collect_share"], "reference": "update share",
         "ref_value": i["update_share"], "ratio": None, "floor": "report", "contended": i["contended"]},
        {"figure": "cores used", "value": i["cores_used"], "reference": "threads",
         "ref_value": u["config"]["threads"], "ratio": None, "floor": "report", "contended": None},
    ]  # fmt: skip
    results["rows"] = rows
    return results


def main(argv: list[str] | None = None) -> int:
    import json

    from townlet_tools.bench.protocol import context_record, format_table

    parser = argparse.ArgumentParser(
        prog="python -m townlet_tools.bench.ppo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "overrides", nargs="*", help="townlet-train overrides: model=conv, device.num_threads=2"
    )
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
