"""``townlet-dataset import-legacy SRC OUT``: the importer as a subcommand of ``townlet-dataset``.

``townlet`` cannot import this package, so ``townlet-dataset`` finds :func:`register` through the
``townlet.dataset_commands`` entry-point group declared in ``pyproject.toml``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Protocol

from townlet.replay import DatasetError, write_dataset
from townlet.replay.storage import DEFAULT_SHARD_ROWS
from townlet_tools.legacy.importer import import_legacy, import_legacy_groups


class Subparsers(Protocol):
    """What ``ArgumentParser.add_subparsers()`` returns, as far as a subcommand needs it."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


def register(subparsers: Subparsers) -> None:
    """Add the subcommand; its parser's ``run`` default is what ``townlet-dataset`` calls."""
    imp = subparsers.add_parser(
        "import-legacy",
        aliases=["import"],
        help="convert an original per-agent .npz + JSON capture into format v1",
    )
    imp.add_argument("src", help="legacy manifest (.json/.yaml), capture directory or one .npz sample")
    imp.add_argument("out", help="output dataset directory (format v1)")
    imp.add_argument(
        "--ragged",
        choices=("error", "truncate", "largest", "split"),
        default="error",
        help="samples of different lengths: refuse (default), cut all to the shortest, keep the "
        "largest length group, or write one dataset per length under OUT/t<T>",
    )
    imp.add_argument(
        "--spec-policy",
        choices=("strict", "skip"),
        default="strict",
        help="samples whose map/feature layout differs from the first: refuse (default) or skip",
    )
    imp.add_argument("--shard-rows", type=int, default=DEFAULT_SHARD_ROWS, help="transitions per shard")
    imp.add_argument("--compress", action="store_true", help="deflate the shards")
    imp.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    imp.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        _import(args)
    except DatasetError as exc:
        print(f"townlet-dataset: import failed: {exc}", file=sys.stderr)
        return 1
    return 0


def _import(args: argparse.Namespace) -> None:
    if args.ragged == "split":
        groups = import_legacy_groups(args.src, spec_policy=args.spec_policy)
        targets = [(Path(args.out) / f"t{g.num_ticks:05d}", g) for g in groups]
    else:
        targets = [
            (Path(args.out), import_legacy(args.src, spec_policy=args.spec_policy, ragged=args.ragged))
        ]
    for path, data in targets:
        write_dataset(
            data, path, shard_rows=args.shard_rows, compress=args.compress, overwrite=args.overwrite
        )
        skipped = len(data.meta.get("legacy", {}).get("skipped", []))
        print(
            f"imported {data.num_agents} agent sample(s) x {data.num_ticks} ticks = "
            f"{data.num_transitions:,} transitions, {data.spec.num_actions} action id(s), "
            f"map {list(data.spec.map_shape)}, {data.spec.feature_dim} features -> {path}"
            + (f" ({skipped} sample(s) skipped: layout differs)" if skipped else "")
        )
