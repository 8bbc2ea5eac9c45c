"""``logger=mlflow`` in a multirun: the sweep is one MLflow parent run, the jobs' runs its children.
Jobs may run in other processes, so each finds the parent by its tags. The callback holds only text:
launchers pickle it for their workers. A store that cannot be used is one warning; the sweep goes on."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from townlet.runs.mlflow_log import end_sweep_run, start_sweep_run
from townlet.runs.sinks import RunInfo, error_line

log = logging.getLogger(__name__)


class MlflowSweepCallback(Callback):
    def __init__(self) -> None:
        self.tracking_uri: str | None = None
        self.run_id: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if OmegaConf.select(config, "logger.mlflow") is None:
            return
        try:
            node = config.logger.mlflow
            sweep_dir = Path(str(config.hydra.sweep.dir))
            tags = OmegaConf.select(config, "tags")
            sweep = RunInfo(
                path=sweep_dir,
                config={"tags": OmegaConf.to_container(tags, resolve=True) if tags is not None else []},
                run_name=str(config.run_name),
                output_root=Path(str(config.paths.output_root)),
                sweep_dir=sweep_dir,
                overrides=tuple(str(o) for o in config.hydra.overrides.task),
                source=sys.argv[0] or None,  # as a job's run.json records its command
            )
            uri = str(node.tracking_uri)
            self.run_id = start_sweep_run(
                sweep, uri, node.experiment, int(node.request_timeout_sec), int(node.request_max_retries)
            )
            self.tracking_uri = uri
        except Exception as exc:
            log.warning(
                "logger mlflow: could not start the sweep's parent run (%s); the sweep goes on",
                error_line(exc),
            )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.run_id is None or self.tracking_uri is None:
            return
        error = sys.exc_info()[1]  # Hydra calls this from a ``finally``: the sweep's own error, if any
        status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED" if error else "FINISHED"
        mode = str(OmegaConf.select(config, "objective_mode", default="max"))
        run_id, self.run_id = self.run_id, None
        try:
            end_sweep_run(self.tracking_uri, run_id, status, error, mode)
        except Exception as exc:
            log.warning(
                "logger mlflow: could not end the sweep's parent run %s (%s)", run_id, error_line(exc)
            )
