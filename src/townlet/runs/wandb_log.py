"""``logger=wandb``: one Weights & Biases run per job; a multirun's jobs share a group (the sweep dir).

``mode=auto`` syncs only with ``WANDB_API_KEY`` (or ``WANDB_MODE``) set; else the run is written offline
under ``<run dir>/wandb/`` for ``wandb sync`` to upload later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from townlet.config.instantiate import ConfigError
from townlet.dto.metrics import GLOBAL_STEP_KEY
from townlet.runs.sinks import (
    AgentStepAxis,
    LoggerUnavailableError,
    MetricsSink,
    RunInfo,
    error_line,
    final_metrics,
    grouped_scalars,
)

MODES = ("auto", "online", "offline", "disabled")
#: How an unsuccessful run reads in W&B, which knows only exit codes: non-zero is "failed".
EXIT_CODES = {"FINISHED": 0, "FAILED": 1, "KILLED": 130}
_TAG_MAX = 64  # W&B's limit on one tag


def resolve_mode(mode: str, env: Mapping[str, str] | None = None) -> str:
    """``auto``: ``WANDB_MODE`` if set, else ``online`` with ``WANDB_API_KEY`` and ``offline`` without."""
    env = os.environ if env is None else env
    if mode not in MODES:
        raise ConfigError(f"logger.wandb.mode={mode!r} is not one of {', '.join(MODES)}")
    if mode != "auto":
        return mode
    return env.get("WANDB_MODE") or ("online" if env.get("WANDB_API_KEY") else "offline")


class WandbSink(MetricsSink):
    """Only the run's own methods (never ``wandb.log``): jobs in one process keep their own run."""

    name = "wandb"

    def __init__(
        self,
        project: str = "townlet",
        entity: str | None = None,
        mode: str = "auto",
        log_artifacts: bool = True,
        init_timeout_sec: float = 15.0,
        *,
        run: RunInfo,
    ) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise RuntimeError(
                "logger=wandb needs the 'wandb' package: pip install -e \".[wandb]\" "
                "(or choose loggers without it, e.g. logger=[jsonl,csv])"
            ) from exc
        self.mode = resolve_mode(str(mode))
        self.run = run
        self.log_artifacts = bool(log_artifacts)
        self.axis = AgentStepAxis()
        self.records = 0
        self.ended = False
        tags = [run.strategy, run.world, *run.tags]
        try:
            self.wandb_run: Any = wandb.init(
                project=project,
                entity=entity,
                name=run.display_name,
                group=run.sweep_name,
                job_type=run.strategy,
                tags=[tag[:_TAG_MAX] for tag in dict.fromkeys(tags) if tag],
                config=dict(run.config),
                dir=str(run.path),
                mode=self.mode,  # type: ignore[arg-type]  # checked by resolve_mode
                reinit="create_new",
                settings=wandb.Settings(
                    init_timeout=float(init_timeout_sec), console="off", silent=True, x_disable_stats=True
                ),
            )
            self.wandb_run.define_metric(GLOBAL_STEP_KEY)
            self.wandb_run.define_metric("*", step_metric=GLOBAL_STEP_KEY)
        except Exception as exc:
            raise LoggerUnavailableError(f"could not start a run ({error_line(exc)})") from exc

    def write(self, record: Mapping[str, Any]) -> None:
        if self.ended:
            return
        self.records += 1
        values = dict(grouped_scalars(record))
        if values:
            self.wandb_run.log({**values, GLOBAL_STEP_KEY: self.axis.step(record, self.records)})

    def after_result(self, run_dir: Path, result: Mapping[str, Any]) -> None:
        if self.ended:
            return
        import wandb

        self.wandb_run.summary.update(final_metrics(self.run, result))
        checkpoint = result.get("checkpoint")
        files = [("result", "result", run_dir / "result.json")]
        files += [("policy", "model", Path(checkpoint))] if isinstance(checkpoint, str) else []
        for name, kind, path in files if self.log_artifacts else []:
            if path.is_file():
                artifact = wandb.Artifact(f"{name}-{self.wandb_run.id}", type=kind)
                artifact.add_file(str(path), policy="immutable")  # written once: no staging copy
                self.wandb_run.log_artifact(artifact)
        self._end("FINISHED")

    def end(self, status: str, error: BaseException | None) -> None:
        if self.ended:
            return
        if error is not None:
            key = "logging_stopped" if status == "FINISHED" else "error"
            self.wandb_run.summary[key] = error_line(error, limit=1000)
        self._end(status)

    def _end(self, status: str) -> None:
        self.ended = True
        self.wandb_run.summary["status"] = status
        self.wandb_run.finish(exit_code=EXIT_CODES.get(status, 1))
