"""``logger=tensorboard``: every logged record mirrored as TensorBoard scalars.

RL users reach for TensorBoard first, so each record is written as scalars under
``<run dir>/tensorboard/`` (``tensorboard --logdir outputs/runs`` then shows every run and sweep job),
laid out as RL dashboards usually are: ``losses/``, ``charts/`` and ``eval/`` groups, against
agent-steps continuous across a composite run's stages (the epoch for BC). When the run ends, the
HParams tab gets the run's settings with the final evaluation and the objective.
``conf/logger/tensorboard.yaml`` selects ``jsonl`` with it: the JSONL file stays the source of truth
(plots, reports and sweeps read it) and the event files are a view of the same records.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from townlet.runs.sinks import AgentStepAxis, MetricsSink, RunInfo, final_metrics, grouped_scalars, hparams

TENSORBOARD_DIR = "tensorboard"
HPARAMS_DIR = "hparams"  # the HParams session: a sub-run of the run's event files


class TensorBoardNotAvailableError(RuntimeError):
    """``logger=tensorboard`` without the ``tensorboardX`` package installed."""

    def __init__(self) -> None:
        super().__init__(
            "logger=tensorboard needs the 'tensorboardX' package: "
            'pip install -e ".[tensorboard]" (or use logger=jsonl, which needs nothing extra)'
        )


class TensorBoardSink(MetricsSink):
    """Event files in ``logdir``; ``config_text`` (the run's resolved YAML) goes to the Text tab once."""

    name = "tensorboard"

    def __init__(
        self,
        dirname: str = TENSORBOARD_DIR,
        *,
        run: RunInfo | None = None,
        logdir: str | Path | None = None,
        config_text: str | None = None,
    ) -> None:
        try:  # an optional extra, imported only when selected (it loads torch too when installed)
            from tensorboardX import SummaryWriter
        except ImportError as exc:
            raise TensorBoardNotAvailableError() from exc
        if logdir is None:
            if run is None:
                raise ValueError("TensorBoardSink needs run= or logdir=")
            logdir = run.path / dirname
        if config_text is None and run is not None and run.config:
            config_text = OmegaConf.to_yaml(OmegaConf.create(dict(run.config)))
        self.logdir = Path(logdir)
        self.run = run
        self.records = 0
        self.axis = AgentStepAxis()
        self.last_step = 0
        self._writer: Any = SummaryWriter(str(self.logdir))
        if config_text is not None:  # indented, so the Text tab's Markdown shows it verbatim
            self._writer.add_text("config", "\n".join("    " + line for line in config_text.splitlines()), 0)
            self._writer.flush()

    def write(self, record: Mapping[str, Any]) -> None:
        if self._writer is None:
            return
        self.records += 1
        self.last_step = step = self.axis.step(record, self.records)
        values = list(grouped_scalars(record))
        for tag, value in values:
            self._writer.add_scalar(tag, value, step)
        if values:
            self._writer.flush()  # once per epoch/iteration: curves appear while the run goes on

    def after_result(self, run_dir: Path, result: Mapping[str, Any]) -> None:
        """The HParams session: the run's settings against its final evaluation and objective."""
        if self.run is None:
            return
        from tensorboardX import SummaryWriter
        from tensorboardX.summary import hparams as hparams_summaries

        metrics = final_metrics(self.run, result)
        with SummaryWriter(str(self.logdir / HPARAMS_DIR)) as writer:
            for summary in hparams_summaries(hparams(self.run), metrics):
                writer.file_writer.add_summary(summary)
            for tag, value in metrics.items():
                writer.add_scalar(tag, value, self.last_step)

    def close(self) -> None:
        """Safe to call twice (the fan-out closes before the end-of-run hook and in ``finally``)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
