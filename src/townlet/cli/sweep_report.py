"""``townlet-sweep-report <sweep dir>``: (re)build ``sweep_summary.{json,csv,md}`` and the sweep's plots.

A sweep killed half-way never reaches ``on_multirun_end``; this rebuilds the same summary from disk.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from townlet.cli._common import console
from townlet.sweeps.jobs import SweepReportError
from townlet.sweeps.render import SUMMARY_STEM, render_markdown, write_summary


@console("townlet-sweep-report")
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="townlet-sweep-report",
        description="Summarise a Hydra multirun directory: one row per job, failures, mean ± std over seeds.",
    )
    parser.add_argument("sweep_dir", type=Path, help="the multirun folder (the one holding multirun.yaml)")
    parser.add_argument("--objective", help="dotted key into result.json (default: the runs' `objective`)")
    parser.add_argument("--mode", choices=("max", "min"), help="objective direction (default: from config)")
    parser.add_argument(
        "--metric",
        action="append",
        dest="metrics",
        metavar="KEY",
        help="dotted result key to show as a column (repeatable; default: a standard set)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not print the markdown table")
    parser.add_argument(
        "--no-plots", dest="plots", action="store_false", help="skip the PNGs (objective, learning curves)"
    )
    args = parser.parse_args(argv)
    try:
        summary = write_summary(
            args.sweep_dir, objective=args.objective, mode=args.mode, metrics=args.metrics, plots=args.plots
        )
    except SweepReportError as exc:
        print(f"townlet-sweep-report: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(render_markdown(summary), end="")
    print(f"wrote {Path(summary.sweep_dir) / SUMMARY_STEM}.{{json,csv,md}}", file=sys.stderr)
    for name in summary.plots:
        print(f"wrote {Path(summary.sweep_dir) / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
