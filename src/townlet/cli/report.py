"""``townlet-report RUN_DIR|SWEEP_DIR [--json]``, and the summary ``townlet-train`` prints when a run ends.

A run found on disk weeks later should say what it was, how it did and where its files are, without
opening ``result.json``; ``--json`` gives scripts the same content.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from townlet.cli._common import console
from townlet.cli.promote import RESULTS_FILE, format_status
from townlet.dto import AnnealSummaryDTO, ResultDTO, load_result
from townlet.dto.base import SCHEMA_VERSION, newer_schema
from townlet.runs.atomic import read_json_object
from townlet.runs.metrics import metrics_files
from townlet.runs.resolve import SNAPSHOT, RunFilesError, read_snapshot, resolve_run
from townlet.runs.sinks import dotted_get
from townlet.sweeps.jobs import SweepReportError, discover_job_dirs, read_yaml
from townlet.sweeps.render import render_text, sweep_report

# The headline figures per result kind, in display order; absent (None) ones are skipped.
KEY_FIGURES: dict[str, tuple[str, ...]] = {
    "bc": (
        "accuracy", "val_accuracy", "loss", "val_loss", "epochs_run", "best_epoch", "early_stopped",
        "samples_per_sec",
    ),
    "ppo": (
        "iterations", "env_steps", "episode_return_mean", "loss_total", "kl_divergence", "clip_fraction",
        "explained_variance", "best_iteration", "samples_per_sec",
    ),
    "anneal": (
        "status", "dataset_label", "promotion_state", "promotion_pass_streak", "promotion_candidate_ready",
    ),
}  # fmt: skip
WIDTH = 100


def format_run_summary(
    result: ResultDTO,
    run_dir: str | Path,
    *,
    objective: str | None = None,
    objective_value: float | None = None,
) -> str:
    run_dir = Path(run_dir)
    took = "" if result.duration_sec is None else f" in {result.duration_sec:.1f} s"
    lines = [f"townlet-train: {result.kind} run completed{took}", f"  run dir     {run_dir}"]
    lines += result_lines(result, run_dir, objective=objective, objective_value=objective_value)
    return "\n".join(lines) + "\n"


def result_lines(
    result: ResultDTO, run_dir: Path, *, objective: str | None, objective_value: float | None
) -> list[str]:
    lines = []
    if result.checkpoint:
        lines.append(f"  checkpoint  {result.checkpoint}")
    if objective:
        lines.append(f"  objective   {objective} = {_fmt(objective_value)}")
    figures = [f"{k}={_fmt(v)}" for k in KEY_FIGURES[result.kind] if (v := getattr(result, k)) is not None]
    lines += textwrap.wrap("  ".join(figures), WIDTH, initial_indent="  ", subsequent_indent="  ")
    if result.evaluation is not None:
        from townlet.cli.evaluate import format_table

        lines += ["evaluation (trained vs scripted vs random; faints per agent-episode):"]
        lines += [f"  {line}" for line in format_table(result.evaluation).splitlines()]
    if isinstance(result, AnnealSummaryDTO):
        lines += _anneal_lines(result, run_dir)
    return lines


def _anneal_lines(result: AnnealSummaryDTO, run_dir: Path) -> list[str]:
    saved = read_json_object(run_dir / RESULTS_FILE) or {}
    reasons = ", ".join(saved.get("reasons") or [])
    lines = [f"anneal: {result.status}" + (f" ({reasons})" if reasons else "")]
    for index, stage in enumerate(result.stages, 1):
        if stage.mode == "bc":
            detail = f"accuracy={_fmt(stage.accuracy)} threshold={_fmt(stage.threshold)}"
            detail += "" if stage.passed is None else (" passed" if stage.passed else " FAILED")
        else:
            flags = {
                "loss": stage.anneal_loss_flag,
                "queue": stage.anneal_queue_flag,
                "intensity": stage.anneal_intensity_flag,
            }
            raised = [name for name, flag in flags.items() if flag]
            detail = f"loss_total={_fmt(stage.loss_total)} flags={','.join(raised) or 'none'}"
        lines.append(f"  stage {index}  cycle {_fmt(stage.cycle)}  {stage.mode:<3}  {detail}")
    snapshot = saved.get("promotion")
    if isinstance(snapshot, dict):
        lines.append(f"promotion (state dir {saved.get('state_dir') or '?'}):")
        lines += [f"  {line}" for line in format_status(snapshot).splitlines()]
    elif result.promotion_state is None:
        lines.append("promotion: not recorded (no paths.state_dir, or strategy.promotion.record=false)")
    return lines


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.0f}" if value.is_integer() and abs(value) >= 1000 else f"{value:.4g}"
    return "-" if value is None else str(value)


# ------------------------------------------------------------------------------ townlet-report

# The hyper-parameters worth a glance per strategy (dotted keys under ``strategy`` in the saved config).
KEY_HPARAMS: dict[str, tuple[str, ...]] = {
    "bc": ("lr", "batch_size", "epochs", "weight_decay", "early_stopping_patience"),
    "ppo": (
        "data_mode", "total_steps", "n_steps", "lr", "lr_schedule", "gamma", "gae_lambda", "clip_param",
        "entropy_coef", "update_epochs", "minibatch_size", "bc_coef",
    ),
    "anneal": ("accuracy_threshold", "bc.lr", "ppo.lr", "ppo.gamma", "ppo.entropy_coef", "ppo.n_steps"),
}  # fmt: skip
USAGE_HINT = "pass a run dir (outputs/runs/<date>/<run>) or a sweep dir (outputs/multiruns/<date>/<sweep>)"


class ReportError(ValueError): ...


def build_report(path: str | Path) -> dict[str, Any]:
    root = Path(path)
    if not root.is_dir():
        raise ReportError(f"{root} is not a directory; {USAGE_HINT}")
    if (root / "result.json").is_file() or (root / "run.json").is_file():
        return run_report(root)
    is_sweep = (root / "multirun.yaml").is_file() or (root / "sweep_summary.json").is_file()
    if is_sweep and discover_job_dirs(root):
        return sweep_report(root)
    what = "no job sub-directories" if is_sweep else "no run.json, result.json or multirun.yaml"
    raise ReportError(f"{root} holds {what}; {USAGE_HINT}")


def run_report(run_dir: Path) -> dict[str, Any]:
    record = read_json_object(run_dir / "run.json") or {}
    try:
        config = read_snapshot(run_dir / SNAPSHOT)
    except RunFilesError as exc:
        raise ReportError(str(exc)) from None
    choices = dotted_get(read_yaml(run_dir / ".hydra" / "hydra.yaml"), "hydra.runtime.choices") or {}
    result = _load_result(run_dir)
    strategy = str(record.get("strategy") or choices.get("strategy") or (result.kind if result else "?"))
    world: dict[str, Any] = config["world"] if isinstance(config.get("world"), dict) else {}
    promotion = (read_json_object(run_dir / RESULTS_FILE) or {}) if strategy == "anneal" else {}
    return {
        "kind": "run",
        "run_dir": str(run_dir.resolve()),
        "status": record.get("status") or ("completed" if result is not None else "unknown"),
        "run_name": record.get("run_name") or config.get("run_name"),
        "run_id": record.get("run_id"),
        "started_at": record.get("started_at"),
        "duration_sec": record.get("duration_sec"),
        "error": record.get("error"),
        "config": {
            "strategy": strategy,
            "experiment": choices.get("experiment"),
            "world": choices.get("world") or world.get("name"),
            "world_size": {k: world.get(k) for k in ("num_envs", "num_agents", "episode_length")},
            "model": choices.get("model") or dotted_get(config, "model.kind"),
            "dataset": choices.get("dataset"),
            "device": record.get("device") or dotted_get(config, "device.type"),
            "seed": record.get("seed", config.get("seed")),
            "hyperparameters": _hparams(strategy, config.get("strategy")),
            "overrides": record.get("overrides") or [],
        },
        "objective": {
            "key": record.get("objective") or config.get("objective"),
            "mode": config.get("objective_mode"),
            "value": record.get("objective_value"),
        },
        "result": None if result is None else result.model_dump(mode="json"),
        "promotion": {k: promotion.get(k) for k in ("status", "reasons", "state_dir", "promotion")}
        if promotion
        else None,
        "paths": _run_paths(run_dir, config),
    }


def _load_result(run_dir: Path) -> ResultDTO | None:
    path = run_dir / "result.json"
    if not path.is_file():
        return None
    try:
        return load_result(path.read_bytes())
    except (OSError, ValidationError) as exc:
        newer = newer_schema(read_json_object(path))
        if newer is not None:
            raise ReportError(
                f"{path} was written by a newer townlet-train (schema {newer}; this one reads "
                f"{SCHEMA_VERSION}); report it with that version"
            ) from None
        first = str(exc).splitlines()[0]
        raise ReportError(f"{path} is not a readable result ({first}); re-run or restore the file") from None


def _hparams(strategy: str, node: Any) -> dict[str, Any]:
    if not isinstance(node, dict):
        return {}
    shown = {k: v for k in KEY_HPARAMS.get(strategy, ()) if (v := dotted_get(node, k)) is not None}
    schedule = node.get("schedule")
    if strategy == "anneal" and isinstance(schedule, list):
        stages = [f"{s.get('mode')}:{s.get('epochs')}" for s in schedule if isinstance(s, dict)]
        shown["schedule"] = " -> ".join(stages)
    return shown


def _run_paths(run_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
    metrics_name = (config.get("logger") or {}).get("filename") or "metrics.jsonl"
    candidates: dict[str, Any] = {
        "result": run_dir / "result.json",
        "run_record": run_dir / "run.json",
        "log": run_dir / "train.log",
        "config": run_dir / ".hydra" / "config.yaml",
        "tensorboard": run_dir / "tensorboard",
    }
    paths: dict[str, Any] = {k: str(p) for k, p in candidates.items() if p.exists()}
    try:
        paths["checkpoint"] = str(resolve_run(run_dir).checkpoint)
    except RunFilesError:  # a run that failed before its first checkpoint, or one without a network
        paths["checkpoint"] = None
    paths["metrics"] = [str(p) for p in metrics_files(run_dir / str(metrics_name))]
    paths["plots"] = [str(p) for p in sorted((run_dir / "plots").glob("*.png"))]
    return paths


def format_report(report: dict[str, Any]) -> str:
    return render_text(report) if report["kind"] == "sweep" else "\n".join(_run_text(report)) + "\n"


def _run_text(report: dict[str, Any]) -> list[str]:
    cfg, paths = report["config"], report["paths"]
    took = "" if report["duration_sec"] is None else f" in {report['duration_sec']:.1f} s"
    lines = [f"townlet-report: run {report['run_dir']}", f"  status      {report['status']}{took}"]
    if report["error"]:
        lines.append(f"  error       {report['error']}")
    size = cfg["world_size"]
    world = f"{cfg['world']} ({size['num_envs']} towns x {size['num_agents']} agents, "
    world += f"{size['episode_length']} ticks/episode)"
    lines += [
        f"  strategy    {cfg['strategy']}"
        + (f" (experiment={cfg['experiment']})" if cfg["experiment"] else ""),
        f"  world       {world}",
        f"  model       {cfg['model']}   dataset {cfg['dataset']}   device {cfg['device']}",
        f"  seed        {cfg['seed']}",
    ]
    hparams = "  ".join(f"{k}={_fmt(v)}" for k, v in cfg["hyperparameters"].items())
    lines += textwrap.wrap(hparams, WIDTH, initial_indent="  hparams     ", subsequent_indent=" " * 14)
    overrides = " ".join(cfg["overrides"])
    lines += textwrap.wrap(
        overrides, WIDTH, initial_indent="  overrides   ", subsequent_indent=" " * 14, break_long_words=False
    )
    run_dir = Path(report["run_dir"])
    result = _load_result(run_dir) if "result" in paths else None
    if result is None:
        lines.append("result: none yet (the run is still going, or it stopped before writing result.json)")
    else:
        objective = report["objective"]
        lines += result_lines(result, run_dir, objective=objective["key"], objective_value=objective["value"])
    lines.append("paths:")
    files = ("checkpoint", "result", "run_record", "config", "log", "tensorboard")
    lines += [f"  {key:<11} {paths[key]}" for key in files if paths.get(key)]
    lines += [f"  {key:<11} {path}" for key in ("metrics", "plots") for path in paths[key]]
    return lines


@console("townlet-report")
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="townlet-report",
        description="Summarise a run directory (config, result, evaluation, promotion, files) or a sweep.",
    )
    parser.add_argument("path", type=Path, help="a run dir (holding run.json/result.json) or a multirun dir")
    parser.add_argument("--json", action="store_true", help="print the same report as JSON")
    args = parser.parse_args(argv)

    try:
        report = build_report(args.path)
        text = json.dumps(report, indent=2) + "\n" if args.json else format_report(report)
    except (ReportError, SweepReportError) as exc:
        print(f"townlet-report: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
