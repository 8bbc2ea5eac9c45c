"""``townlet-bench <section> [--quick] [--json PATH] [--seeds 0,1] [--runs N] [OVERRIDES]``: run a section.

Sections are the modules of this package (``protocol`` aside) exposing ``run(args) -> dict`` with a
``rows`` list for the table, optionally a ``summary`` mapping; ``consistent: False`` exits 1.
``townlet-bench all`` runs every speed section. Sections measure with the shared protocol in
:mod:`townlet_tools.bench.protocol` (quiet gating, ABAB alternation, median/best of >= 5 reps,
``contended`` marking): speed lives here, never in tests.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Any

from townlet.cli._common import console
from townlet.runs.atomic import atomic_write_json
from townlet.runs.seeding import configure_threads
from townlet_tools.bench.protocol import context_record, format_table

_NOT_SECTIONS = {"protocol"}
# `all` is the speed sections; `learn` and `wall` train whole jobs (minutes), `soak` kills dozens of runs
_NOT_IN_ALL = {"learn", "soak", "wall"}


def available_sections() -> list[str]:
    return sorted(
        m.name
        for m in pkgutil.iter_modules(__path__)
        if not m.name.startswith("_") and m.name not in _NOT_SECTIONS
    )


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated seeds >= 0, e.g. --seeds 0,1,2")
    return seeds


def _positive(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number >= 1")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="townlet-bench", description=__doc__.splitlines()[0])
    parser.add_argument("section", help="a section name, or 'all'; 'list' prints the sections")
    parser.add_argument("--quick", action="store_true", help="fewer reps / smaller sizes (smoke check)")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    parser.add_argument(
        "--seeds",
        type=_seeds,
        help="comma-separated seeds for sections that train (learn); default 0,1,2",
    )
    parser.add_argument("--runs", type=_positive, default=None, help="runs for soak (default 20; --quick 6)")
    parser.add_argument(
        "--baseline", metavar="PYTHON", help="wall: also time another checkout's interpreter, alternating"
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        help="townlet-train overrides for sections that train (learn), e.g. strategy=ppo",
    )
    return parser


@console("townlet-bench")
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_intermixed_args(argv)
    sections = available_sections()
    if args.section == "list":
        print("\n".join(sections))
        return 0
    chosen = [s for s in sections if s not in _NOT_IN_ALL] if args.section == "all" else [args.section]
    unknown = [s for s in chosen if s not in sections]
    if unknown:
        print(
            f"townlet-bench: unknown section {unknown[0]!r}; available: {', '.join(sections)}",
            file=sys.stderr,
        )
        return 2
    configure_threads(1)  # before any section loads NumPy/torch: benches measure one thread
    report: dict[str, Any] = {"context": context_record(), "sections": {}}
    for name in chosen:
        result = importlib.import_module(f"{__name__}.{name}").run(args)
        report["sections"][name] = result
        print(f"== {name}")
        print(format_table(result.get("rows", [])), end="")
        for key, value in (result.get("summary") or {}).items():
            print(f"{key}: {value}")
    if args.json:
        atomic_write_json(args.json, report)
    return 1 if any(r.get("consistent") is False for r in report["sections"].values()) else 0
