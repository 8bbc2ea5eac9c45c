"""``townlet-promote``: judge anneal runs and move the live release (torch-free).

``evaluate`` exits with its verdict (PROMOTE 0, HOLD 1, FAIL 2; docs/anneal.md), so an error is one line
and exit 3. A corrupt state or baseline file is never overwritten: ``--reset-state`` moves it aside.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from townlet.cli._common import console
from townlet.promotion.baselines import BaselineStore
from townlet.promotion.files import BaselineFile, PromotionStateFile, is_valid, move_aside
from townlet.promotion.rules import promotion_decision
from townlet.promotion.state import PromotionError, PromotionService, PromotionStateError
from townlet.runs.atomic import loads_json

RESULTS_FILE = "anneal_results.json"
ERROR_EXIT = 3
STATE_DIR_ENV = "TOWNLET_STATE_DIR"
DEFAULT_STATE_DIR = "state"


class PromoteCLIError(RuntimeError): ...


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors, which would read as FAIL; use the error code instead."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ERROR_EXIT, f"{self.prog}: error: {message}\n")


def load_run_results(run_dir: Path) -> dict[str, Any]:
    """``anneal_results.json``: an object with ``stages``, or a bare list of stages."""
    if not run_dir.is_dir():
        raise PromoteCLIError(f"run directory {run_dir} does not exist")
    path = run_dir / RESULTS_FILE
    if not path.is_file():
        raise PromoteCLIError(
            f"{path} not found: is {run_dir} the directory of a finished anneal run (strategy=anneal)?"
        )
    try:
        data = loads_json(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PromoteCLIError(f"{path} is not valid JSON ({exc})") from exc
    if isinstance(data, list):
        data = {"stages": data}
    if not isinstance(data, dict) or not isinstance(data.get("stages"), list):
        raise PromoteCLIError(f"{path} must be a JSON object with a 'stages' list")
    return data


def _state_dir(args: argparse.Namespace, results: dict[str, Any] | None = None) -> Path:
    if args.state_dir:
        return Path(args.state_dir)
    if os.environ.get(STATE_DIR_ENV):
        return Path(os.environ[STATE_DIR_ENV])
    if results and results.get("state_dir"):
        return Path(results["state_dir"])
    from townlet.config.schema import repo_root  # the default paths.state_dir is <root>/state

    return repo_root() / DEFAULT_STATE_DIR


def _print(obj: dict[str, Any], fmt: str, human: str) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True) if fmt == "json" else human)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    results = load_run_results(run_dir)
    service = PromotionService(_state_dir(args, results))
    snap = service.snapshot()
    candidate = (snap.get("candidate") or {}).get("run_dir")
    same = candidate is not None and Path(candidate).expanduser().resolve() == run_dir.expanduser().resolve()
    ready = bool(snap.get("candidate_ready")) and same  # the ready candidate is this very run
    try:
        decision = promotion_decision(results["stages"], candidate_ready=ready)
    except ValueError as exc:
        raise PromoteCLIError(f"{run_dir / RESULTS_FILE}: {exc}") from exc
    out = {
        "verdict": decision.verdict.value,
        "status": decision.status.value,
        "reasons": list(decision.reasons),
        "exit_code": decision.exit_code,
        "run_dir": str(run_dir),
        "pass_streak": snap.get("pass_streak"),
        "required_passes": snap.get("required_passes"),
        "candidate_ready": snap.get("candidate_ready"),
        "state_dir": str(service.state_dir),
    }
    reasons = ", ".join(decision.reasons) or "-"
    human = (
        f"{decision.verdict.value}  (run status {decision.status.value}; pass streak "
        f"{snap.get('pass_streak')}/{snap.get('required_passes')})\nreasons: {reasons}"
    )
    _print(out, args.format, human)
    return 0 if args.dry_run else decision.exit_code


def _cmd_promote(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    results = load_run_results(run_dir)
    checkpoint = results.get("final_checkpoint")
    if not checkpoint:
        raise PromoteCLIError(f"{run_dir / RESULTS_FILE} names no final_checkpoint; nothing to promote")
    service = PromotionService(_state_dir(args, results))
    snap = service.promote(run_dir=run_dir.resolve(), checkpoint=checkpoint, force=args.force)
    release = snap["current_release"]
    _print(snap, args.format, f"promoted {release['run_dir']} (checkpoint {release['checkpoint']})")
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    snap = PromotionService(_state_dir(args)).rollback()
    release = snap["current_release"]
    human = "rolled back; current release: " + (
        f"{release['run_dir']} (checkpoint {release['checkpoint']})" if release else "none"
    )
    _print(snap, args.format, human)
    return 0


def format_status(snap: dict[str, Any]) -> str:
    release = snap.get("current_release") or {}
    cand = snap.get("candidate") or {}
    rows = [
        ("state", snap.get("state")),
        ("pass_streak", f"{snap.get('pass_streak')}/{snap.get('required_passes')}"),
        ("candidate_ready", snap.get("candidate_ready")),
        ("last_result", snap.get("last_result")),
        ("evaluations", snap.get("evaluations")),
        ("candidate", cand.get("run_dir") or "-"),
        ("current_release", release.get("run_dir") or "-"),
        ("release_checkpoint", release.get("checkpoint") or "-"),
        ("previous_releases", len(snap.get("previous_releases") or [])),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _cmd_status(args: argparse.Namespace) -> int:
    service = PromotionService(_state_dir(args))
    snap = service.snapshot()
    human = f"state dir: {service.state_dir}\n{format_status(snap)}"
    if args.history:
        snap = {**snap, "history": service.history(args.history)}
        for ev in snap["history"]:
            human += f"\n  {ev.get('event'):<10} {ev.get('status') or '':<5} {ev.get('run_dir') or ''}"
    _print(snap, args.format, human)
    return 0


def build_parser() -> argparse.ArgumentParser:
    # The shared options are accepted before or after the sub-command. Sub-parsers get their own
    # copies with SUPPRESS defaults, so a value given before the sub-command is not overwritten.
    def common(defaults: bool) -> _Parser:
        opts = _Parser(add_help=False)
        opts.add_argument(
            "--state-dir",
            default=None if defaults else argparse.SUPPRESS,
            help=f"promotion state dir (default: ${STATE_DIR_ENV}, the run's recorded one, or <root>/state)",
        )
        opts.add_argument(
            "--format", choices=("human", "json"), default="human" if defaults else argparse.SUPPRESS
        )
        opts.add_argument(
            "--reset-state",
            action="store_true",
            default=False if defaults else argparse.SUPPRESS,
            help="move an unreadable state or baseline file aside (<name>.corrupt-<UTC time>) first",
        )
        return opts

    parser = _Parser(
        prog="townlet-promote", description=(__doc__ or "").split("\n\n")[0], parents=[common(True)]
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name: str, help_: str, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_, parents=[common(False)])
        command.set_defaults(func=func)
        return command

    ev = add("evaluate", "PROMOTE / HOLD / FAIL for a finished anneal run (exit 0/1/2)", _cmd_evaluate)
    ev.add_argument("run_dir")
    ev.add_argument("--dry-run", action="store_true", help="print the verdict but always exit 0")
    pr = add("promote", "make the run's checkpoint the current release", _cmd_promote)
    pr.add_argument("run_dir")
    pr.add_argument("--force", action="store_true", help="promote even if the run is not the ready candidate")
    add("rollback", "return to the previous release", _cmd_rollback)
    st = add("status", "show the promotion state", _cmd_status)
    st.add_argument("--history", type=int, default=0, metavar="N", help="also show the last N events")
    return parser


def _reset_requested(args: argparse.Namespace) -> None:
    """Move the unreadable state files aside (a valid one never: its records are the point of state)."""
    run_dir = getattr(args, "run_dir", None)
    results = None
    if run_dir is not None and (Path(run_dir) / RESULTS_FILE).is_file():
        results = load_run_results(Path(run_dir))
    state_dir = _state_dir(args, results)
    files = (
        (PromotionService(state_dir).state_path, PromotionStateFile),
        (BaselineStore(state_dir).path, BaselineFile),
    )
    moved = [(path, move_aside(path)) for path, model in files if not is_valid(path, model)]
    for old, new in moved:
        print(
            f"townlet-promote: moved unreadable {old} aside to {new.name}; starting afresh", file=sys.stderr
        )
    if not moved:
        print(f"townlet-promote: the state files in {state_dir} are valid; nothing moved", file=sys.stderr)


@console("townlet-promote")
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.reset_state:
            _reset_requested(args)
        return int(args.func(args))
    except (PromoteCLIError, PromotionError, PromotionStateError, ValueError) as exc:
        print(f"townlet-promote: error: {exc}", file=sys.stderr)
        return ERROR_EXIT
    except OSError as exc:  # a state file that cannot be read or written (full, read-only)
        if exc.filename is None:  # not about a file (a closed pipe on stdout): not ours to explain
            raise
        print(f"townlet-promote: error: {exc.filename}: {exc.strerror}; check --state-dir", file=sys.stderr)
        return ERROR_EXIT


if __name__ == "__main__":
    raise SystemExit(main())
