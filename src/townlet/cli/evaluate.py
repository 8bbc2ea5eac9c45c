"""``townlet-eval``: evaluate a saved policy in a world, next to the scripted and random baselines.

The source is a run (checkpoint and world from :func:`townlet.runs.resolve.resolve_run`; without
overrides it is evaluated exactly as its ``result.json`` was), a ``.pt`` checkpoint, an ``.onnx`` file
(onnxruntime, no torch) or a ``.pt2`` program. Overrides of ``conf/eval.yaml`` follow the source
(examples in docs/training.md); a bad one is one line on stderr (exit 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from townlet.cli._common import compose, console, refuse_run_file, run_command
from townlet.runs.atomic import atomic_write_text


@dataclasses.dataclass
class EvalArgs:
    """Types of ``conf/eval.yaml`` (Hydra refuses ``episodes=zero`` naming the override)."""

    world: Any = None
    episodes: int | None = None
    seed: int | None = None
    greedy: bool | None = None
    baselines: bool | None = None
    device: str = "cpu"


def eval_settings(args: Any, config: dict[str, Any], result: dict[str, Any] | None = None) -> dict[str, Any]:
    """Composed arguments with each null filled from the run: its config, and how its ``result.json``
    evaluated the policy it ended with (an anneal's PPO stages sample, its BC stages take argmax)."""
    from townlet.config.schema.evaluation import EvaluationConfig
    from townlet.config.schema.top import TrainConfig
    from townlet.runs.sinks import dotted_get

    run = {**dataclasses.asdict(EvaluationConfig()), **(config.get("evaluation") or {})}
    run["seed"] = int(config.get("seed", TrainConfig.seed)) + int(run["seed_offset"])
    stochastic = dotted_get(result or {}, "evaluation.policy.stochastic")
    if isinstance(stochastic, bool):
        run["greedy"] = not stochastic
    else:
        run["greedy"] = bool((config.get("strategy") or {}).get("eval_greedy", True))
    keys = ("episodes", "seed", "greedy", "baselines")
    settings = {key: run[key] if args[key] is None else args[key] for key in keys}
    EvaluationConfig(episodes=int(settings["episodes"]))  # the schema's range check
    return settings


def evaluate(source: str, overrides: list[str]) -> Any:
    """The source's policy against the baselines → ``EvaluationBlock``; torch only for a checkpoint."""
    from omegaconf import OmegaConf

    from townlet.rollout.evaluation import EvaluationService
    from townlet.world import build_spec, to_world_config
    from townlet.world.layout import build_layout

    config: dict[str, Any] = {}
    result: dict[str, Any] = {}
    if source.endswith(".onnx"):
        from townlet.behaviour.onnx_policy import OnnxPolicy

        stored = OnnxPolicy(source).world_config
    else:
        from townlet.torch_guard import require_torch

        require_torch("townlet-eval")
        from townlet.behaviour.torch_policy import TorchPolicy
        from townlet.nets.checkpoints import load_checkpoint
        from townlet.nets.export import load_program
        from townlet.runs.device import resolve_device
        from townlet.runs.resolve import resolve_run

        if source.endswith(".pt2"):  # a torch.export program (townlet-export format=pt2), on the CPU
            net, spec, meta = load_program(source)
            stored = meta.get("world_config")
        else:
            files = resolve_run(source)
            ckpt = load_checkpoint(files.checkpoint, None, "cpu")
            stored, config = files.world_config or ckpt.extra.get("world_config"), files.config
            result = files.result
    args = compose("eval", EvalArgs, overrides, world=stored)
    settings = eval_settings(args, config, result)
    world = to_world_config(OmegaConf.to_container(args.world, resolve=True))
    build_layout(world)  # evaluation picks its own town count, so a bad world.* override is checked here
    acting = {"greedy": settings["greedy"], "seed": settings["seed"]}
    if source.endswith(".onnx"):
        policy: Any = OnnxPolicy(source, **acting)
    elif source.endswith(".pt2"):
        policy = TorchPolicy(net, spec, "cpu", **acting)
    else:
        device = resolve_device(str(args.device))
        ckpt = load_checkpoint(ckpt.path, build_spec(world), device)  # refuses another layout, clearly
        policy = TorchPolicy(ckpt.build_network(device), ckpt.spec, device, **acting)
    return EvaluationService().compare(
        policy, world, int(settings["episodes"]), int(settings["seed"]), baselines=settings["baselines"]
    )


def format_table(block: Any) -> str:
    """Three rows (trained, scripted, random) of the headline statistics."""
    cols = ("mean_return", "return_std", "faint_rate", "mean_needs", "conflicts_per_100_agent_ticks")
    head = (
        f"{'policy':<10} {'return':>9} {'std':>7} {'faints/ep':>9} {'needs':>6} {'confl/100':>9} {'agree':>6}"
    )
    lines = [f"world={block.world} seed={block.seed} episodes={block.policy.episodes}", head]
    for row in (block.policy, block.scripted, block.random):
        if row is None:
            continue
        vals = [getattr(row, c) for c in cols]
        agree = "-" if row.scripted_agreement is None else f"{row.scripted_agreement:.3f}"
        lines.append(
            f"{row.policy:<10} {vals[0]:>9.3f} {vals[1]:>7.3f} {vals[2]:>9.3f} {vals[3]:>6.3f} "
            f"{vals[4]:>9.3f} {agree:>6}"
        )
    return "\n".join(lines)


@console("townlet-eval")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="townlet-eval",
        description="Evaluate a saved policy (run dir, .pt, .onnx, .pt2) beside the scripted and random.",
    )
    parser.add_argument("source", help="run directory, its checkpoints/ folder, a .pt, .onnx or .pt2 file")
    parser.add_argument("overrides", nargs="*", help="conf/eval.yaml overrides: world=…, episodes=…, seed=…")
    parser.add_argument("--json", dest="json_path", help="also write the evaluation as JSON to this file")
    args = parser.parse_args(argv)

    def body() -> int:
        if args.json_path:
            refuse_run_file(args.json_path, "--json ")
        block = evaluate(args.source, args.overrides)
        print(format_table(block))
        if args.json_path:
            atomic_write_text(args.json_path, json.dumps(block.model_dump(mode="json"), indent=2) + "\n")
        return 0

    return run_command("townlet-eval", body)


if __name__ == "__main__":
    sys.exit(main())
