"""``townlet-train`` / ``python -m townlet.train``: compose the config, run one strategy, write the run dir.

``--help`` and ``--cfg job`` must stay well under a second: DTOs, NumPy and the strategies load inside
``run_job``, torch only inside a strategy's ``run()``.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from townlet.cli._common import RUN_ERROR_EXIT, console, error_exit, hydra_raises, user_wants_trace
from townlet.packaged import CONF_DIR

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from townlet.config.schema.evaluation import EvaluationConfig
    from townlet.config.schema.top import StopConfig

log = logging.getLogger("townlet.train")

_TRACE_HINT = "(full traceback in the run directory's train.log, or rerun with HYDRA_FULL_ERROR=1)"


def _hydra_context() -> Any:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def run_job(cfg: DictConfig, run_dir: str | Path | None = None) -> float:
    """Run one training job; returns the objective for sweepers (``run_dir``: Hydra's output dir)."""
    from omegaconf import OmegaConf

    from townlet.cli.export import policy_for_loggers
    from townlet.cli.preflight import check_job
    from townlet.config.instantiate import build
    from townlet.facade import PolicyTrainingOrchestrator, RunSettings
    from townlet.runs.interrupt import StopSignals, as_run_interrupted, interrupt_signal
    from townlet.runs.loggers import MetricsFanout, build_metrics
    from townlet.runs.objective import objective_value
    from townlet.runs.ownership import claim_run_dir, release_run_dir
    from townlet.runs.record import RunRecorder, is_multirun, strategy_name
    from townlet.runs.rundir import RunDir, recorded_run_id

    cfg = check_job(cfg)  # again here for a sweeper's trials (objective included); nothing written before
    hc = _hydra_context()
    if run_dir is None:
        if hc is None:
            raise ValueError("run_job needs run_dir= when called outside a Hydra application")
        run_dir = hc.runtime.output_dir
    rd = RunDir(run_dir)
    claim_run_dir(rd.path, resume=bool(cfg.resume))  # held since Hydra's on_run_start for a single run
    previous = recorded_run_id(rd.path) if cfg.resume else None
    rd.prepare(resume=bool(cfg.resume))
    file_handler = None if hc is not None else _attach_file_log(rd.log_path)
    multirun = is_multirun(hc)
    recorder = RunRecorder.start(
        rd.path,
        seed=int(cfg.seed),
        config=OmegaConf.to_container(cfg, resolve=True),
        overrides=list(hc.overrides.task) if hc is not None else [],
        run_name=str(cfg.run_name),
        strategy=strategy_name(cfg, hc),
        device=str(cfg.device.type),
        resumed=bool(cfg.resume),
        parent_run=previous,
        job_num=int(hc.job.num) if multirun else None,
    )
    metrics = MetricsFanout()
    stop_signals = StopSignals().install()  # SIGINT/SIGTERM → interrupted (main thread only)
    try:
        strategy = build(cfg.strategy)
        plan = strategy.plan(OmegaConf.to_object(cfg.world)) if hasattr(strategy, "plan") else None
        metrics = build_metrics(cfg, rd.path, hc, config_hash=recorder.record.config_hash, plan=plan)
        services = build(cfg.services)
        settings = RunSettings(
            seed=int(cfg.seed),
            world=OmegaConf.to_object(cfg.world),
            dataset=OmegaConf.to_object(cfg.dataset),
            model=OmegaConf.to_object(cfg.model),
            device=OmegaConf.to_object(cfg.device),
            run_dir=rd,
            metrics=metrics,
            init_from=cfg.init_from,
            resume=bool(cfg.resume),
            evaluation=cast("EvaluationConfig", OmegaConf.to_object(cfg.evaluation)),
            stop=cast("StopConfig", OmegaConf.to_object(cfg.stop)),
            metadata={
                "data_dir": cfg.paths.data_dir,
                "state_dir": cfg.paths.state_dir,
                "config_hash": recorder.record.config_hash,  # stamped into checkpoints
            },
        )
        result = PolicyTrainingOrchestrator(strategy, services, log).run(settings)
        value = objective_value(result, str(cfg.objective), str(cfg.objective_mode))
        rd.write_result(result)
        policy_for_loggers(metrics, rd.path, result.model_dump(mode="json"))  # MLflow's logged model
        metrics.after_result(rd.path, result.model_dump(mode="json"))  # plots, MLflow artefacts
        recorder.finish(
            "completed",
            result_kind=result.kind,
            objective=str(cfg.objective),
            objective_value=value,
            stop_reason=result.stop_reason,
            device=str(getattr(result, "device", None) or cfg.device.type),
        )
        log.info("result: %s  %s=%s", rd.result_path, cfg.objective, value)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGINT/SIGTERM turned into TrainingInterrupted
        stop_signals.hold()
        recorder.finish("interrupted", error=exc, signal=interrupt_signal(exc))
        log.warning("run interrupted by %s; checkpoints kept in %s", interrupt_signal(exc), rd.checkpoints)
        raise as_run_interrupted(exc, rd.path) from exc
    except BaseException as exc:
        recorder.finish("failed", error=exc)
        _log_failure(exc, console=multirun)
        raise
    finally:
        stop_signals.restore()
        release_run_dir(rd.path)
        metrics.close()
        if file_handler is not None:
            logging.getLogger().removeHandler(file_handler)
            file_handler.close()
    if not multirun:  # sweeps get sweep_summary.* instead of one report per job
        from townlet.cli.report import format_run_summary

        sys.stdout.write(
            format_run_summary(result, rd.path, objective=str(cfg.objective), objective_value=value)
        )
        sys.stdout.flush()
    return value


def _log_failure(exc: BaseException, *, console: bool) -> None:
    """The traceback in train.log; a console line only for a sweep's job, whose error no one else prints."""
    if console:
        log.error("run failed: %s: %s", type(exc).__name__, exc)
    record = log.makeRecord(
        log.name, logging.ERROR, __file__, 0, "traceback", (), (type(exc), exc, exc.__traceback__)
    )
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _attach_file_log(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return handler


def hydra_task(cfg: DictConfig) -> float:
    """Module level, so launchers pickle it by reference. A single run's error ends here (Hydra's job
    runner would echo the overrides); a sweep's job re-raises so the launcher records it as failed."""
    from townlet.runs.record import is_multirun

    try:
        return run_job(cfg)
    except Exception as exc:  # a stop signal passes on: submitit's requeue needs it, main reports it
        if is_multirun(_hydra_context()):
            raise
        raise SystemExit(exit_for(exc)) from None


@console("townlet-train")
def main() -> None:
    """``@hydra.main`` behind the snapshot gate, with one-line errors."""
    args = sys.argv[1:]
    if "--schema" in args:
        from townlet.dto.schema import export_json_schema

        sys.stdout.write(json.dumps(export_json_schema(), indent=2) + "\n")
        return
    if "--help" in args or "-h" in args:
        from townlet.cli.train_help import render_help

        sys.stdout.write(render_help(CONF_DIR))
        return
    import hydra  # here, so that ``--help`` and ``--schema`` never import Hydra
    from hydra.utils import execution_whitelist

    from townlet.cli.preflight import check_outside_config, refuse
    from townlet.config.instantiate import HYDRA_TARGETS, ConfigError
    from townlet.config.schema import conf_dir, register_configs
    from townlet.config.snapshot import check_train_args

    try:  # what Hydra would read from outside the package: one line, exit 2, before Hydra starts
        check_train_args(args)
        check_outside_config(args)
    except ConfigError as exc:
        refuse(exc)
    try:
        register_configs()
        task = hydra.main(config_path=str(conf_dir()), config_name="train")(hydra_task)
        with hydra_raises(), execution_whitelist(list(HYDRA_TARGETS)):
            task()
    except (Exception, KeyboardInterrupt) as exc:
        raise SystemExit(exit_for(exc)) from None


def exit_for(exc: BaseException) -> int:
    """One stderr line and the exit code for a stop signal or a full/read-only disk (never a bug), bad
    config or bad input; a bug (or the user's ``HYDRA_FULL_ERROR=1``) re-raises."""
    from townlet.runs.interrupt import interrupt_exit_code, interrupt_message
    from townlet.runs.rundir import io_fault_message

    if isinstance(exc, KeyboardInterrupt):
        sys.stderr.write(f"townlet-train: {interrupt_message(exc)}\n")
        return interrupt_exit_code(exc)
    fault = None if user_wants_trace() else io_fault_message(exc)
    if fault is not None:
        sys.stderr.write(f"townlet-train: error: {fault}\n")
        return RUN_ERROR_EXIT
    # bad input (ValueError, file errors, our own RuntimeErrors) is one line; bugs keep their traceback
    ours = isinstance(exc, RuntimeError | TypeError) and type(exc).__module__.startswith("townlet")
    bad_input = ours or isinstance(exc, ValueError | FileNotFoundError | PermissionError)
    return error_exit("townlet-train", exc, bad_input=bad_input, hint=f" {_TRACE_HINT}")


if __name__ == "__main__":
    main()
