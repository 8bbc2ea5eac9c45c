"""``townlet-export``: a trained policy as one standalone file, for use without this package.

The file holds the masked logits and value of the run's network with its input normalisation folded in,
plus its observation spec and world as metadata (docs/policies.md). Overrides of ``conf/export.yaml``
follow the source (``format`` defaults from the ``out`` suffix, else onnx); a bad one, a missing run or
an unwritable ``out`` is one line on stderr (exit 2) and nothing is written.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from townlet.cli._common import check_writable, compose, console, run_command

if TYPE_CHECKING:
    from townlet.runs.loggers import MetricsFanout

DEFAULT_OUT = {"onnx": "policy.onnx", "pt2": "policy.pt2"}
#: Where a training run writes its policy for the loggers that take it (MLflow's logged model).
RUN_EXPORT = Path("export") / "policy.onnx"


@dataclass
class ExportArgs:
    format: str | None = None
    out: str | None = None
    which: str | None = None


def export_settings(overrides: list[str]) -> dict[str, Any]:
    """Composed ``conf/export.yaml`` → ``{"format", "out", "which"}`` with defaults filled in and checked."""
    args = compose("export", ExportArgs, overrides)
    out = args.out
    fmt = args.format or ("pt2" if out is not None and str(out).endswith(".pt2") else "onnx")
    if fmt == "torchscript":
        raise ValueError("format=torchscript is not written (torch deprecates it); use format=pt2")
    if fmt not in DEFAULT_OUT:
        raise ValueError(f"format={fmt!r} is unknown; use format=onnx or format=pt2")
    if fmt == "pt2" and out is not None and str(out).endswith(".onnx"):
        raise ValueError(f"out={out} ends in .onnx but format=pt2; name it e.g. policy.pt2")
    return {"format": fmt, "out": Path(out or DEFAULT_OUT[fmt]).expanduser(), "which": args.which}


def export_source(source: str, settings: dict[str, Any]) -> Path:
    """Load the run's checkpoint and write its policy with the run's world; returns the written path."""
    from townlet.runs.resolve import resolve_run
    from townlet.torch_guard import require_torch

    files = resolve_run(source, settings["which"])
    require_torch("townlet-export")
    from townlet.nets.checkpoints import load_checkpoint
    from townlet.nets.export import export_policy

    ckpt = load_checkpoint(files.checkpoint, None, "cpu")
    world = files.world_config or ckpt.extra.get("world_config")
    return export_policy(ckpt, settings["format"], settings["out"], world)


def policy_for_loggers(metrics: MetricsFanout, run_dir: Path, result: Mapping[str, Any]) -> None:
    """Export a finished run's policy to ``<run dir>/export/policy.onnx`` for the loggers that take
    it, only when one does and the run has a checkpoint. A failed export is one warning: the loggers
    then end their runs without the policy, and the run itself is unaffected."""
    if not result.get("checkpoint") or not metrics.wants_policy():
        return
    for name in ("onnxscript", "onnx_ir"):  # the exporter's INFO lines would fill the run's log
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        (run_dir / RUN_EXPORT).parent.mkdir(exist_ok=True)
        path = export_source(str(run_dir), {"format": "onnx", "out": run_dir / RUN_EXPORT, "which": None})
    except Exception as exc:
        from townlet.runs.sinks import error_line

        logging.getLogger("townlet.train").warning(
            "could not export the policy for the loggers (%s); they end their runs without it "
            "(logger.mlflow.log_model=false skips the export)",
            error_line(exc),
        )
        return
    metrics.attach_policy(path)


@console("townlet-export")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="townlet-export",
        description="Write a trained policy (run dir or .pt file) as ONNX or a torch.export program.",
    )
    parser.add_argument("source", help="run directory, its checkpoints/ folder, or a .pt checkpoint")
    parser.add_argument(
        "overrides", nargs="*", help="conf/export.yaml overrides: format=onnx|pt2, out=…, which=…"
    )
    args = parser.parse_args(argv)

    def body() -> int:
        settings = export_settings(args.overrides)
        check_writable(settings["out"], "policy.onnx")
        path = export_source(args.source, settings)
        if not path.is_file():  # out=- or a device: the bytes went to the reader, nothing to point at
            return 0
        size_kib = path.stat().st_size / 1024
        print(f"townlet-export: wrote {path} ({settings['format']}, {size_kib:.0f} KiB)", file=sys.stderr)
        if settings["format"] == "onnx":
            print(f"  evaluate it without torch: townlet-eval {path} episodes=4", file=sys.stderr)
        return 0

    return run_command("townlet-export", body)


if __name__ == "__main__":
    sys.exit(main())
