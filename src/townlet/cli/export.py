"""``townlet-export``: a trained policy as one standalone file, for use without this package.

    townlet-export outputs/runs/<date>/<run>                      # → ./policy.onnx (best.pt)
    townlet-export RUN format=pt2 out=policy.pt2                  # a torch.export program
    townlet-export RUN/checkpoints/last.pt out=/srv/policies/town.onnx

Arguments after the source are ``key=value``: ``format`` (onnx | pt2; default from the ``out``
suffix, else onnx), ``out`` (default ``policy.onnx`` / ``policy.pt2`` in the current directory)
and ``which`` (best | last, for a run dir). The file holds the masked logits and value of the
network with its input normalisation folded in, plus its observation spec and world as metadata
(docs/policies.md). A bad argument, a missing run or an unwritable ``out`` is one line on stderr
(exit 2) and nothing is written. Torch is imported only after the arguments are checked.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

CONFIG_ERROR_EXIT = 2
KEYS = ("format", "out", "which")
DEFAULT_OUT = {"onnx": "policy.onnx", "pt2": "policy.pt2"}


class ExportArgumentError(ValueError):
    """A ``key=value`` argument that townlet-export does not understand."""


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``key=value`` items → ``{"format", "out", "which"}`` with defaults filled in and checked."""
    raw: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in KEYS:
            raise ExportArgumentError(f"argument {item!r} is not one of {', '.join(k + '=…' for k in KEYS)}")
        raw[key] = value
    out = raw.get("out")
    fmt = raw.get("format") or ("pt2" if out is not None and out.endswith(".pt2") else "onnx")
    if fmt == "torchscript":
        raise ExportArgumentError("format=torchscript is not written (torch deprecates it); use format=pt2")
    if fmt not in DEFAULT_OUT:
        raise ExportArgumentError(f"format={fmt!r} is unknown; use format=onnx or format=pt2")
    if fmt == "pt2" and out is not None and out.endswith(".onnx"):
        raise ExportArgumentError(f"out={out} ends in .onnx but format=pt2; name it e.g. policy.pt2")
    which = raw.get("which", "best")
    if which not in {"best", "last"}:
        raise ExportArgumentError(f"which={which!r}; use which=best or which=last")
    return {"format": fmt, "out": Path(out or DEFAULT_OUT[fmt]).expanduser(), "which": which}


def check_writable(out: Path) -> None:
    """Refuse, before any work, an ``out`` that cannot become a file."""
    if out.is_dir():
        raise ExportArgumentError(
            f"out={out} is a directory; give a file name, e.g. out={out / 'policy.onnx'}"
        )
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ExportArgumentError(
            f"out={out}: folder {parent} does not exist; create it or choose another out="
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportArgumentError(f"out={out}: folder {parent} is not writable; choose another out=")


def export_source(source: str, settings: dict[str, Any]) -> Path:
    """Load the checkpoint and write its policy; returns the written path."""
    from townlet.torch_guard import require_torch

    require_torch("townlet-export")
    from townlet.nets.checkpoints import load_checkpoint
    from townlet.nets.export import export_policy, stored_world_config

    ckpt = load_checkpoint(source, None, "cpu", which=settings["which"])
    world = stored_world_config(ckpt.path, ckpt.extra)
    return export_policy(ckpt, settings["format"], settings["out"], world)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="townlet-export",
        description="Write a trained policy (run dir or .pt file) as ONNX or a torch.export program.",
    )
    parser.add_argument("source", help="run directory, its checkpoints/ folder, or a .pt checkpoint")
    parser.add_argument("overrides", nargs="*", help="key=value: format=onnx|pt2, out=PATH, which=best|last")
    args = parser.parse_args(argv)
    from townlet.nets.checkpoints import CheckpointError
    from townlet.nets.export import PolicyFileError
    from townlet.torch_guard import TorchNotAvailableError

    try:
        settings = parse_overrides(args.overrides)
        check_writable(settings["out"])
        path = export_source(args.source, settings)
    except (ExportArgumentError, CheckpointError, PolicyFileError, TorchNotAvailableError) as exc:
        print(f"townlet-export: error: {exc}", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    except OSError as exc:  # the folder vanished or filled up between the check and the write
        print(
            f"townlet-export: error: cannot write {settings['out']}: {exc.strerror or exc}", file=sys.stderr
        )
        return CONFIG_ERROR_EXIT
    size_kib = path.stat().st_size / 1024
    print(f"townlet-export: wrote {path} ({settings['format']}, {size_kib:.0f} KiB)")
    if settings["format"] == "onnx":
        print(f"  evaluate it without torch: townlet-eval {path} episodes=4")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
