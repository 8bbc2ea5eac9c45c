"""``townlet-eval``: evaluate a saved policy in a world, next to the scripted and random baselines.

    townlet-eval outputs/2026-11-21/06-00-00              # run dir → checkpoints/best.pt, its own world
    townlet-eval run/checkpoints/last.pt world=queue_conflict episodes=8 seed=3
    townlet-eval RUN world.num_agents=6 greedy=false --json eval.json
    townlet-eval policy.onnx episodes=8                    # an exported policy, via onnxruntime (no torch)
    townlet-eval policy.pt2                                # an exported torch.export program (CPU)

Arguments after the source are ``key=value``: ``world=<name|path.yaml>`` (default: the world the
checkpoint was trained in), ``world.<field>=…`` overrides, ``episodes``, ``seed``, ``device``
(cpu|auto|cuda), ``greedy`` and ``baselines`` (true|false). A bad argument, a missing checkpoint or
one trained for another observation layout is one line on stderr (exit 2), never a traceback.
Torch is imported only after the arguments are checked.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

CONFIG_ERROR_EXIT = 2
KEYS = ("world", "episodes", "seed", "device", "greedy", "baselines")


class EvalArgumentError(ValueError):
    """A ``key=value`` argument that townlet-eval does not understand."""


def _bool(key: str, value: str) -> bool:
    low = value.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off"}:
        return False
    raise EvalArgumentError(f"{key}={value!r} is not a boolean; use {key}=true or {key}=false")


def _int(key: str, value: str, minimum: int) -> int:
    try:
        out = int(value)
    except ValueError:
        raise EvalArgumentError(f"{key}={value!r} is not an integer") from None
    if out < minimum:
        raise EvalArgumentError(f"{key} must be >= {minimum}, got {out}")
    return out


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``key=value`` items → settings dict (``world_overrides`` collects ``world.<field>=…``)."""
    out: dict[str, Any] = {"world": None, "episodes": 2, "seed": 0, "device": "cpu", "greedy": True}
    out.update(baselines=True, world_overrides={})
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise EvalArgumentError(
                f"argument {item!r} is not key=value (known keys: {', '.join(KEYS)}, world.*)"
            )
        if key.startswith("world."):
            import yaml

            out["world_overrides"][key[len("world.") :]] = yaml.safe_load(value)
        elif key == "world":
            out["world"] = value
        elif key == "episodes":
            out["episodes"] = _int(key, value, 1)
        elif key == "seed":
            out["seed"] = _int(key, value, 0)
        elif key == "device":
            if value not in {"cpu", "cuda", "auto"} and not value.startswith("cuda:"):
                raise EvalArgumentError(f"device={value!r}; use device=cpu, device=auto or device=cuda")
            out["device"] = value
        elif key in {"greedy", "baselines"}:
            out[key] = _bool(key, value)
        else:
            raise EvalArgumentError(f"unknown argument {key!r}; known keys: {', '.join(KEYS)}, world.<field>")
    return out


def _world_config(settings: dict[str, Any], stored: Any) -> Any:
    """The ``world=`` choice, else the world stored in the checkpoint, plus ``world.*`` overrides."""
    from omegaconf import OmegaConf

    from townlet.world import load_world_config, to_world_config

    overrides = settings["world_overrides"]
    if settings["world"]:
        return load_world_config(settings["world"], overrides)
    if not stored:
        return load_world_config("default", overrides)
    node = OmegaConf.create(stored)
    for key, value in overrides.items():
        OmegaConf.update(node, key, value, merge=True)
    return to_world_config(OmegaConf.to_container(node))


def evaluate_onnx(source: str, settings: dict[str, Any]) -> Any:
    """An exported ``.onnx`` policy (townlet-export) against the baselines; torch is never imported."""
    from townlet.behaviour.onnx_policy import OnnxPolicy
    from townlet.rollout.evaluation import EvaluationService

    policy = OnnxPolicy(source, greedy=settings["greedy"], seed=settings["seed"])
    world = _world_config(settings, policy.world_config)  # a world of another layout is refused
    return EvaluationService().compare(
        policy, world, settings["episodes"], settings["seed"], baselines=settings["baselines"]
    )


def evaluate_program(source: str, settings: dict[str, Any]) -> Any:
    """An exported ``.pt2`` program (townlet-export format=pt2) against the baselines, on the CPU."""
    from townlet.torch_guard import require_torch

    require_torch("townlet-eval")
    from townlet.behaviour.torch_policy import TorchPolicy
    from townlet.nets.export import load_program
    from townlet.rollout.evaluation import EvaluationService

    net, spec, meta = load_program(source)
    world = _world_config(settings, meta.get("world_config"))
    policy = TorchPolicy(net, spec, "cpu", greedy=settings["greedy"], seed=settings["seed"])
    return EvaluationService().compare(
        policy, world, settings["episodes"], settings["seed"], baselines=settings["baselines"]
    )


def evaluate_source(source: str, settings: dict[str, Any]) -> Any:
    """Load the checkpoint, build its policy and compare it with the baselines → ``EvaluationBlock``."""
    if source.endswith(".onnx"):
        return evaluate_onnx(source, settings)
    if source.endswith(".pt2"):
        return evaluate_program(source, settings)
    from townlet.torch_guard import require_torch

    require_torch("townlet-eval")
    from townlet.behaviour.torch_policy import TorchPolicy
    from townlet.nets.checkpoints import load_checkpoint
    from townlet.rollout.evaluation import EvaluationService
    from townlet.runs.device import resolve_device
    from townlet.world import build_spec

    device = resolve_device(settings["device"])
    first = load_checkpoint(source, None, device)
    world = _world_config(settings, first.extra.get("world_config"))
    ckpt = load_checkpoint(first.path, build_spec(world), device)  # refuses another layout, clearly
    net = ckpt.build_network(device)
    policy = TorchPolicy(net, ckpt.spec, device, greedy=settings["greedy"], seed=settings["seed"])
    return EvaluationService().compare(
        policy, world, settings["episodes"], settings["seed"], baselines=settings["baselines"]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="townlet-eval",
        description="Evaluate a saved policy (run dir or .pt file) next to the scripted and random ones.",
    )
    parser.add_argument("source", help="run directory, its checkpoints/ folder, a .pt or a .onnx file")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="key=value: world, world.<field>, episodes, seed, device, greedy, baselines",
    )
    parser.add_argument(
        "--json", dest="json_path", help="also write the evaluation block as JSON to this file"
    )
    args = parser.parse_args(argv)
    from townlet.nets.checkpoints import CheckpointError
    from townlet.nets.export import PolicyFileError
    from townlet.rollout.evaluation import EvaluationError
    from townlet.runs.device import DeviceUnavailableError
    from townlet.torch_guard import TorchNotAvailableError
    from townlet.world import WorldConfigError

    known = (EvalArgumentError, CheckpointError, EvaluationError, WorldConfigError, DeviceUnavailableError)
    try:
        settings = parse_overrides(args.overrides)
        block = evaluate_source(args.source, settings)
    except (*known, PolicyFileError, TorchNotAvailableError) as exc:
        print(f"townlet-eval: error: {exc}", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    print(format_table(block))
    if args.json_path:
        from townlet.runs.atomic import atomic_write_text

        atomic_write_text(args.json_path, json.dumps(block.model_dump(mode="json"), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
