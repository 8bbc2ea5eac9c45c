"""``logger=tensorboard``: every record as scalars in ``<run dir>/tensorboard/``, and the HParams tab.

``conf/logger/tensorboard.yaml`` selects ``jsonl`` with it: the JSONL file stays the source of truth.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from townlet.runs.sinks import AgentStepAxis, MetricsSink, RunInfo, final_metrics, grouped_scalars, hparams


class TensorBoardNotAvailableError(RuntimeError):
    """``logger=tensorboard`` without the ``tensorboardX`` package installed."""


class TensorBoardSink(MetricsSink):
    name = "tensorboard"

    def __init__(self, dirname: str = "tensorboard", *, run: RunInfo) -> None:
        try:  # an optional extra, imported only when selected (it loads torch too when installed)
            from tensorboardX import SummaryWriter
        except ImportError as exc:
            raise TensorBoardNotAvailableError(
                "logger=tensorboard needs the 'tensorboardX' package: "
                'pip install -e ".[tensorboard]" (or use logger=jsonl, which needs nothing extra)'
            ) from exc
        self.logdir = run.path / dirname
        self.run = run
        self.records = 0
        self.axis = AgentStepAxis()
        self.last_step = 0
        self._writer: Any = SummaryWriter(str(self.logdir))
        if run.config:  # indented, so the Text tab's Markdown shows it verbatim
            text = OmegaConf.to_yaml(OmegaConf.create(dict(run.config)))
            self._writer.add_text("config", "\n".join("    " + line for line in text.splitlines()), 0)
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
        from tensorboardX import SummaryWriter
        from tensorboardX.summary import hparams as hparams_summaries

        metrics = final_metrics(self.run, result)
        with SummaryWriter(str(self.logdir / "hparams")) as writer:
            for summary in hparams_summaries(hparams(self.run), metrics):
                writer.file_writer.add_summary(summary)
            for tag, value in metrics.items():
                writer.add_scalar(tag, value, self.last_step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
