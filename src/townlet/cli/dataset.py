"""``townlet-dataset inspect|validate PATH``: look into a format v1 dataset without writing code.

Plug-ins add subcommands through the ``townlet.dataset_commands`` entry-point group (a function that
adds its sub-parser with a ``run(args) -> exit code`` default). Exit 0 fine, 1 invalid, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any

from townlet.cli._common import console
from townlet.replay import DatasetError, read_manifest, validate_dataset
from townlet.replay.streaming import StreamingDataset
from townlet.replay.to_minari import register as add_export_minari

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
COMMAND_GROUP = "townlet.dataset_commands"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="townlet-dataset", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    ins = sub.add_parser("inspect", help="print what the manifest says (no shard is read)")
    ins.add_argument("path", help="dataset directory (or its manifest.json)")
    ins.add_argument("--json", action="store_true", help="machine-readable output")
    val = sub.add_parser("validate", help="check every shard: checksum, schema, shapes, finiteness")
    val.add_argument("path", help="dataset directory (or its manifest.json)")
    val.add_argument("--world", help="also require the observation spec of this world scenario")
    add_export_minari(sub)
    for command in entry_points(group=COMMAND_GROUP):
        try:
            command.load()(sub)
        except ImportError as exc:  # a broken plug-in must not take inspect/validate down with it
            print(f"townlet-dataset: subcommand {command.name!r} unavailable: {exc}", file=sys.stderr)
    return p


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_summary(path: str, summary: dict[str, Any], raw: dict[str, Any]) -> None:
    world, behaviour = raw.get("world") or {}, raw.get("behaviour") or {}
    reward, hist = summary.get("reward", {}), summary.get("action_histogram", {})
    total = max(sum(hist.values()), 1)
    rows = {
        "dataset": path,
        "format": f"v{raw.get('format_version')}  created {raw.get('created_at')}",
        "world": f"{world.get('name')}  (config hash {world.get('hash')})",
        "behaviour": f"{behaviour.get('name')}  epsilon={behaviour.get('epsilon')}  seed={raw.get('seed')}",
        "size": f"{summary['transitions']:,} transitions = {summary['ticks']} ticks x "
        f"{summary['agents']} agents, {summary['shards']} shard(s)",
        "observation": f"map {summary['map_shape']}, {summary['feature_dim']} features",
        "reward": f"mean {_fmt(reward.get('mean'))}  std {_fmt(reward.get('std'))}  "
        f"[{_fmt(reward.get('min'))}, {_fmt(reward.get('max'))}]",
        "teacher": f"agreement {_fmt(summary.get('teacher_agreement'))}",
        "actions": "  ".join(f"{k}={100 * v / total:.1f}%" for k, v in hist.items()),
        "events": "  ".join(f"{k}={_fmt(v)}" for k, v in summary.get("events", {}).items() if v),
        "episodes": "  ".join(f"{k}={_fmt(v)}" for k, v in summary.get("episodes", {}).items()),
    }
    print("\n".join(f"{label:<12} {text}" for label, text in rows.items()))


@console("townlet-dataset")
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if "run" in args:  # a plug-in subcommand
        return int(args.run(args))
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
    except BrokenPipeError:  # a reader that closed stdout: the console wrapper ends quietly
        raise
    except (OSError, ValueError) as exc:  # e.g. an unknown --world name
        print(f"townlet-dataset: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
