"""``townlet-dataset inspect|validate PATH``: look into a format v1 dataset without writing code.

``townlet-dataset import-legacy SRC OUT`` converts an original per-agent ``.npz`` + JSON capture
(manifest, capture directory or single sample) into format v1.

Exit codes: 0 = fine, 1 = the dataset is invalid (one line on stderr naming the file and the
problem), 2 = bad command line. Torch is never imported.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from townlet.replay import DatasetError, read_manifest, validate_dataset, write_dataset
from townlet.replay.storage import DEFAULT_SHARD_ROWS
from townlet.replay.streaming import StreamingDataset

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="townlet-dataset", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    ins = sub.add_parser("inspect", help="print what the manifest says (no shard is read)")
    ins.add_argument("path", help="dataset directory (or its manifest.json)")
    ins.add_argument("--json", action="store_true", help="machine-readable output")
    val = sub.add_parser("validate", help="check every shard: checksum, schema, shapes, finiteness")
    val.add_argument("path", help="dataset directory (or its manifest.json)")
    val.add_argument("--world", help="also require the observation spec of this world scenario")
    imp = sub.add_parser(
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
    return p


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_summary(path: str, summary: dict[str, Any], raw: dict[str, Any]) -> None:
    world, behaviour = raw.get("world") or {}, raw.get("behaviour") or {}
    reward = summary.get("reward", {})
    print(f"dataset      {path}")
    print(f"format       v{raw.get('format_version')}  created {raw.get('created_at')}")
    print(f"world        {world.get('name')}  (config hash {world.get('hash')})")
    print(f"behaviour    {behaviour.get('name')}  epsilon={behaviour.get('epsilon')}  seed={raw.get('seed')}")
    print(
        f"size         {summary['transitions']:,} transitions = {summary['ticks']} ticks x "
        f"{summary['agents']} agents, {summary['shards']} shard(s)"
    )
    print(f"observation  map {summary['map_shape']}, {summary['feature_dim']} features")
    print(
        f"reward       mean {_fmt(reward.get('mean'))}  std {_fmt(reward.get('std'))}  "
        f"[{_fmt(reward.get('min'))}, {_fmt(reward.get('max'))}]"
    )
    print(f"teacher      agreement {_fmt(summary.get('teacher_agreement'))}")
    hist = summary.get("action_histogram", {})
    total = max(sum(hist.values()), 1)
    print("actions      " + "  ".join(f"{k}={100 * v / total:.1f}%" for k, v in hist.items()))
    events = summary.get("events", {})
    print("events       " + "  ".join(f"{k}={_fmt(v)}" for k, v in events.items() if v))
    episodes = summary.get("episodes", {})
    print("episodes     " + "  ".join(f"{k}={_fmt(v)}" for k, v in episodes.items()))


def _import_legacy(args: argparse.Namespace) -> int:
    from pathlib import Path

    from townlet.replay.legacy import import_legacy, import_legacy_groups

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
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("import-legacy", "import"):
        try:
            return _import_legacy(args)
        except DatasetError as exc:
            print(f"townlet-dataset: import failed: {exc}", file=sys.stderr)
            return EXIT_INVALID
    try:
        if args.command == "inspect":
            manifest = read_manifest(args.path)
            summary = StreamingDataset(manifest).summarise()
            if args.json:
                print(json.dumps({"manifest": str(manifest.path), **summary}, indent=1))
            else:
                _print_summary(args.path, summary, manifest.raw)
            return EXIT_OK
        expect = None
        if args.world:
            from townlet.world import load_world_config, make_town

            expect = make_town(load_world_config(args.world), 0).spec
        manifest = validate_dataset(args.path, expect_spec=expect)
        print(
            f"OK: {manifest.transitions:,} transitions in {len(manifest.shards)} shard(s); "
            "checksums, schema, shapes and finiteness verified"
        )
        return EXIT_OK
    except DatasetError as exc:
        print(f"townlet-dataset: invalid dataset: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except (OSError, ValueError) as exc:  # e.g. an unknown --world name
        print(f"townlet-dataset: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
