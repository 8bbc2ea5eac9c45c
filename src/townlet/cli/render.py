"""``townlet-render``: watch one episode of a policy, as an animated GIF or as text frames.

The source gives the trained policy (acting greedily) and its world; arguments after it are Hydra
overrides of ``conf/render.yaml`` (examples in docs/policies.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from townlet.behaviour.rules import make_behaviour
from townlet.cli._common import check_writable, compose, console, run_command
from townlet.runs.atomic import atomic_write_bytes, atomic_write_text
from townlet.runs.resolve import SNAPSHOT, read_snapshot, run_dir_of
from townlet.world import build_spec, make_town, to_world_config
from townlet.world.render import render_ansi, render_rgb

POLICIES = ("trained", "scripted", "random")
#: (low, high) of the integer arguments.
RANGES = {"seed": (0, 2**31 - 1), "ticks": (1, 100_000), "fps": (1, 60), "tile": (8, 64)}
CHOICES = {"policy": POLICIES, "mode": ("gif", "ansi"), "colour": ("auto", "true", "false")}


@dataclasses.dataclass
class RenderArgs:
    world: Any = None
    policy: str = "trained"
    seed: int = 0
    out: str | None = None
    mode: str | None = None
    ticks: int | None = None
    fps: int = 8
    tile: int = 24
    colour: str = "auto"


def render_settings(args: Any) -> dict[str, Any]:
    out = {k: args[k] for k in ("policy", "seed", "out", "mode", "ticks", "fps", "tile", "colour")}
    for key, (low, high) in RANGES.items():
        if out[key] is not None and not low <= out[key] <= high:
            raise ValueError(f"{key}={out[key]} must lie in [{low}, {high}]")
    for key, options in CHOICES.items():
        if out[key] is not None and out[key] not in options:
            raise ValueError(f"{key}={out[key]!r} is unknown; choose one of {', '.join(options)}")
    if out["mode"] is None:
        out["mode"] = "ansi" if out["out"] == "-" else "gif"
    if out["mode"] == "gif" and out["out"] == "-":
        raise ValueError("mode=gif cannot go to out=-; give a file (out=episode.gif) or use mode=ansi")
    if out["out"] is None and out["mode"] == "gif":
        out["out"] = "episode.gif"
    return out


def build_policy(source: Path, policy: str, overrides: list[str]) -> tuple[Any, Any, dict[str, Any]]:
    trained = None
    if policy == "trained" or source.suffix == ".onnx":
        from townlet.behaviour.trained import load_policy

        trained = load_policy(source, greedy=True)  # the seed below is for the world's episodes
        stored = trained.world_config
    else:
        run_dir = run_dir_of(source)
        stored = read_snapshot(run_dir / SNAPSHOT).get("world") if run_dir is not None else None
    args = compose("render", RenderArgs, overrides, world=stored)
    settings = render_settings(args)
    world = to_world_config(OmegaConf.to_container(args.world, resolve=True))
    if settings["policy"] == "trained" and trained is not None:
        return trained.behaviour, world, settings
    return make_behaviour(settings["policy"], build_spec(world), seed=settings["seed"]), world, settings


def record_episode(
    policy: Any, world: Any, seed: int, ticks: int | None, draw: Any
) -> tuple[list[Any], float]:
    """Frames and mean return of one episode (the town resets itself on its last tick: not drawn)."""
    town = make_town(dataclasses.replace(world, num_envs=1), seed)
    diff = town.spec.describe_mismatch(getattr(policy, "spec", town.spec))
    if diff is not None:
        raise ValueError(
            f"the policy was built for another observation spec than world {world.name!r}: {diff}"
        )
    obs = town.reset()
    frames = [draw(town)]
    total = np.zeros(town.n_agents)
    for _ in range(ticks or int(world.episode_length)):
        result = town.step(policy.act(obs).actions)
        total += result.rewards
        if result.truncated.any():
            break
        frames.append(draw(town))
        obs = result.obs
    return frames, float(total.mean())


def gif_bytes(frames: list[np.ndarray], fps: int) -> bytes:
    from PIL import Image

    images = [Image.fromarray(frame) for frame in frames]
    buf = io.BytesIO()
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0
    )
    return buf.getvalue()


def _show(frames: list[str], fps: int) -> None:
    animate = sys.stdout.isatty()
    for frame in frames:
        if animate:
            sys.stdout.write("\x1b[H\x1b[2J")
        sys.stdout.write(frame + ("" if animate else "\n"))
        sys.stdout.flush()
        if animate:
            time.sleep(1.0 / fps)


def run(source: str, overrides: list[str]) -> tuple[str, dict[str, Any]]:
    path = Path(source).expanduser()
    if not path.exists():
        raise ValueError(f"{source} does not exist; pass a run directory, a .pt checkpoint or a .onnx file")
    chosen = [o.partition("=")[2] for o in overrides if o.startswith("policy=")]
    policy, world, settings = build_policy(path, chosen[-1] if chosen else "trained", overrides)
    out = settings["out"]
    to_stdout = out in (None, "-")
    if not to_stdout:
        check_writable(out, "episode.gif")
    draw: Callable[[Any], Any]
    if settings["mode"] == "gif":
        draw = functools.partial(render_rgb, tile=settings["tile"])
    else:
        auto = settings["colour"] == "auto" and to_stdout
        draw = functools.partial(
            render_ansi, colour=sys.stdout.isatty() if auto else settings["colour"] == "true"
        )
    frames, mean_return = record_episode(policy, world, settings["seed"], settings["ticks"], draw)
    if settings["mode"] == "gif":
        atomic_write_bytes(Path(out).expanduser(), gif_bytes(frames, settings["fps"]))
    elif to_stdout:
        _show(frames, settings["fps"])
    else:
        atomic_write_text(Path(out).expanduser(), "\n".join(frames))
    where = "stdout" if to_stdout else out
    summary = (
        f"townlet-render: {len(frames)} frames of policy={settings['policy']} in world={world.name} "
        f"seed={settings['seed']} (mean return {mean_return:.3f}) → {where}"
    )
    return summary, settings


@console("townlet-render")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="townlet-render", description="Record one episode of a policy as an animated GIF or text frames."
    )
    parser.add_argument("source", help="run directory, a .pt checkpoint or an exported .onnx policy")
    parser.add_argument("overrides", nargs="*", help="conf/render.yaml overrides: policy=…, world=…, out=…")
    args = parser.parse_args(argv)

    def body() -> int:
        summary, settings = run(args.source, args.overrides)
        print(summary, file=sys.stderr if settings["out"] in (None, "-") else sys.stdout)
        return 0

    return run_command("townlet-render", body)


if __name__ == "__main__":
    sys.exit(main())
