"""``townlet-render``: watch one episode of a policy, as an animated GIF or as text frames.

    townlet-render outputs/runs/<date>/<run>                        # trained policy → episode.gif
    townlet-render RUN policy=scripted world=queue_conflict seed=3 out=teacher.gif
    townlet-render policy.onnx out=-                                # text frames in the terminal
    townlet-render RUN mode=ansi ticks=50 out=frames.txt

The source is a run dir, a ``.pt`` checkpoint or an exported ``.onnx`` file; it gives the trained
policy and the world it was trained in. Arguments after it are ``key=value``: ``policy``
(trained | scripted | random), ``world=<name|path.yaml>``, ``world.<field>=…``, ``seed``, ``out``
(a ``.gif`` file, a text file with ``mode=ansi``, or ``-`` for stdout), ``mode`` (gif | ansi),
``ticks`` (default: one whole episode), ``fps``, ``tile`` (pixels per cell) and ``colour``
(auto | true | false, text only). The trained policy acts greedily, as in ``townlet-eval``.
A bad argument, a missing run or an unwritable ``out`` is one line on stderr (exit 2), nothing written.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

CONFIG_ERROR_EXIT = 2
POLICIES = ("trained", "scripted", "random")
KEYS = ("policy", "world", "seed", "out", "mode", "ticks", "fps", "tile", "colour")


class RenderArgumentError(ValueError):
    """A ``key=value`` argument or source that townlet-render cannot use."""


def _number(key: str, value: str, low: int, high: int) -> int:
    try:
        out = int(value)
    except ValueError:
        raise RenderArgumentError(f"{key}={value!r} is not an integer") from None
    if not low <= out <= high:
        raise RenderArgumentError(f"{key}={out} must lie in [{low}, {high}]")
    return out


def _choice(key: str, value: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise RenderArgumentError(f"{key}={value!r} is unknown; choose one of {', '.join(options)}")
    return value


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``key=value`` items → settings (``world_overrides`` collects ``world.<field>=…``)."""
    out: dict[str, Any] = {"policy": "trained", "world": None, "world_overrides": {}, "seed": 0, "out": None}
    out.update(mode=None, ticks=None, fps=8, tile=24, colour="auto")
    for item in items:
        key, sep, value = item.partition("=")
        if key.startswith("world.") and sep:
            import yaml

            out["world_overrides"][key[len("world.") :]] = yaml.safe_load(value)
        elif not sep or key not in KEYS:
            raise RenderArgumentError(
                f"argument {item!r} is not key=value with a key in {', '.join(KEYS)}, world.*"
            )
        elif key in {"seed", "ticks", "fps", "tile"}:
            low, high = {"seed": (0, 2**31 - 1), "ticks": (1, 100_000), "fps": (1, 60), "tile": (8, 64)}[key]
            out[key] = _number(key, value, low, high)
        else:
            options = {"policy": POLICIES, "mode": ("gif", "ansi"), "colour": ("auto", "true", "false")}
            out[key] = _choice(key, value, options[key]) if key in options else value
    if out["mode"] is None:
        out["mode"] = "ansi" if out["out"] == "-" else "gif"
    if out["mode"] == "gif" and out["out"] == "-":
        raise RenderArgumentError(
            "mode=gif cannot go to out=-; give a file (out=episode.gif) or use mode=ansi"
        )
    if out["out"] is None and out["mode"] == "gif":
        out["out"] = "episode.gif"
    return out


def check_writable(out: str | None) -> None:
    """Refuse, before the episode runs, an ``out`` that cannot become a file."""
    if out is None or out == "-":
        return
    path = Path(out).expanduser()
    parent = path.parent
    if path.is_dir():
        raise RenderArgumentError(
            f"out={out} is a directory; give a file name, e.g. out={path / 'episode.gif'}"
        )
    if not parent.is_dir():
        raise RenderArgumentError(
            f"out={out}: folder {parent} does not exist; create it or choose another out="
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RenderArgumentError(f"out={out}: folder {parent} is not writable; choose another out=")


def build_policy(source: Path, settings: dict[str, Any]) -> tuple[Any, Any]:
    """(behaviour policy, world config) for the request; the world is the source's unless ``world=``."""
    from townlet.behaviour.rules import make_behaviour
    from townlet.cli.evaluate import _world_config
    from townlet.nets.export import stored_world_config

    trained = None
    if settings["policy"] == "trained" or source.suffix == ".onnx":
        from townlet.behaviour.trained import load_policy

        trained = load_policy(source, greedy=True, seed=settings["seed"])
    stored = trained.world_config if trained is not None else stored_world_config(source)
    world = _world_config(settings, stored)
    if settings["policy"] == "trained" and trained is not None:
        return trained.behaviour, world
    from townlet.world import build_spec

    return make_behaviour(settings["policy"], build_spec(world), seed=settings["seed"]), world


def record_episode(
    policy: Any, world: Any, seed: int, ticks: int | None, draw: Any
) -> tuple[list[Any], float]:
    """Frames of one episode of a one-town world (start state, then after every tick) and its mean return.

    Stops at the episode's end: the town resets itself on its last tick, so that state is not drawn.
    """
    from townlet.world import make_town

    town = make_town(dataclasses.replace(world, num_envs=1), seed)
    diff = town.spec.describe_mismatch(getattr(policy, "spec", town.spec))
    if diff is not None:
        raise RenderArgumentError(
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
    """An endlessly looping animated GIF (Pillow, which matplotlib already depends on)."""
    from PIL import Image

    images = [Image.fromarray(frame) for frame in frames]
    buf = io.BytesIO()
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0
    )
    return buf.getvalue()


def _show(frames: list[str], fps: int) -> None:
    """Text frames to stdout: animated in place on a terminal, one after another otherwise."""
    animate = sys.stdout.isatty()
    for frame in frames:
        if animate:
            sys.stdout.write("\x1b[H\x1b[2J")
        sys.stdout.write(frame + ("" if animate else "\n"))
        sys.stdout.flush()
        if animate:
            time.sleep(1.0 / fps)


def run(source: str, settings: dict[str, Any]) -> str:
    """Render the episode and write it; returns the summary line."""
    from townlet.runs.atomic import atomic_write_bytes, atomic_write_text
    from townlet.world.render import render_ansi, render_rgb

    path = Path(source).expanduser()
    if not path.exists():
        raise RenderArgumentError(
            f"{source} does not exist; pass a run directory, a .pt checkpoint or a .onnx file"
        )
    check_writable(settings["out"])
    policy, world = build_policy(path, settings)
    out = settings["out"]
    if settings["mode"] == "gif":
        frames, mean_return = record_episode(
            policy, world, settings["seed"], settings["ticks"], lambda t: render_rgb(t, tile=settings["tile"])
        )
        atomic_write_bytes(Path(out).expanduser(), gif_bytes(frames, settings["fps"]))
    else:
        to_stdout = out in (None, "-")
        colour = (
            sys.stdout.isatty()
            if settings["colour"] == "auto" and to_stdout
            else settings["colour"] == "true"
        )
        frames, mean_return = record_episode(
            policy, world, settings["seed"], settings["ticks"], lambda t: render_ansi(t, colour=colour)
        )
        if to_stdout:
            _show(frames, settings["fps"])
        else:
            atomic_write_text(Path(out).expanduser(), "\n".join(frames))
    where = "stdout" if out in (None, "-") else out
    return (
        f"townlet-render: {len(frames)} frames of policy={settings['policy']} in world={world.name} "
        f"seed={settings['seed']} (mean return {mean_return:.3f}) → {where}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="townlet-render", description="Record one episode of a policy as an animated GIF or text frames."
    )
    parser.add_argument("source", help="run directory, a .pt checkpoint or an exported .onnx policy")
    parser.add_argument("overrides", nargs="*", help=f"key=value: {', '.join(KEYS)}, world.<field>")
    args = parser.parse_args(argv)
    from townlet.nets.checkpoints import CheckpointError
    from townlet.nets.export import PolicyFileError
    from townlet.torch_guard import TorchNotAvailableError
    from townlet.world import WorldConfigError

    known = (RenderArgumentError, CheckpointError, PolicyFileError, TorchNotAvailableError, WorldConfigError)
    try:
        settings = parse_overrides(args.overrides)
        summary = run(args.source, settings)
    except known as exc:
        print(f"townlet-render: error: {exc}", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    except OSError as exc:
        print(f"townlet-render: error: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    print(summary, file=sys.stderr if settings["out"] in (None, "-") else sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
