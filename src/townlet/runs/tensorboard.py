"""``logger=tensorboard``: every logged record mirrored as TensorBoard scalars.

RL users reach for TensorBoard first, so each record is written as scalars under
``<run dir>/tensorboard/`` (``tensorboard --logdir outputs/runs`` then shows every run and sweep job).
``conf/logger/tensorboard.yaml`` selects ``jsonl`` with it: the JSONL file stays the source of truth
(plots, reports and sweeps read it) and the event files are a view of the same records.

Torch-free on purpose: events are written with TensorBoard's own ``EventFileWriter`` and protobufs,
imported lazily so ``townlet.runs`` still imports without ``tensorboard`` (or torch) installed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from townlet.runs.sinks import MetricsSink, RunInfo, record_step, scalars

TENSORBOARD_DIR = "tensorboard"


class TensorBoardNotAvailableError(RuntimeError):
    """``logger=tensorboard`` without the ``tensorboard`` package installed."""

    def __init__(self) -> None:
        super().__init__(
            "logger=tensorboard needs the 'tensorboard' package: "
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
        try:
            from tensorboard.compat.proto import event_pb2, summary_pb2
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
        except ImportError as exc:
            raise TensorBoardNotAvailableError() from exc
        if logdir is None:
            if run is None:
                raise ValueError("TensorBoardSink needs run= or logdir=")
            logdir = run.path / dirname
        if config_text is None and run is not None and run.config:
            from omegaconf import OmegaConf

            config_text = OmegaConf.to_yaml(OmegaConf.create(dict(run.config)))
        self._event_pb2 = event_pb2
        self._summary_pb2 = summary_pb2
        self.logdir = Path(logdir)
        self.records = 0
        self._events: Any = EventFileWriter(str(self.logdir))
        if config_text is not None:
            self.add_text("config", config_text)

    def write(self, record: Mapping[str, Any]) -> None:
        if self._events is None:
            return
        self.records += 1
        values = [self._summary_pb2.Summary.Value(tag=tag, simple_value=v) for tag, v in scalars(record)]
        if values:
            self._add(self._summary_pb2.Summary(value=values), record_step(record, self.records))
            self._events.flush()  # once per epoch/iteration: curves appear while the run goes on

    def add_text(self, tag: str, text: str, step: int = 0) -> None:
        """Write ``text`` for TensorBoard's Text tab (indented, so Markdown shows it verbatim)."""
        if self._events is None:
            return
        from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2, types_pb2

        body = "\n".join("    " + line for line in text.splitlines())
        tensor = tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING,
            string_val=[body.encode("utf-8")],
            tensor_shape=tensor_shape_pb2.TensorShapeProto(
                dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)]
            ),
        )
        metadata = self._summary_pb2.SummaryMetadata(
            plugin_data=self._summary_pb2.SummaryMetadata.PluginData(plugin_name="text")
        )
        value = self._summary_pb2.Summary.Value(tag=tag, metadata=metadata, tensor=tensor)
        self._add(self._summary_pb2.Summary(value=[value]), step)
        self._events.flush()

    def _add(self, summary: Any, step: int) -> None:
        self._events.add_event(self._event_pb2.Event(wall_time=time.time(), step=step, summary=summary))

    def close(self) -> None:
        """Safe to call twice (the fan-out closes before the end-of-run hook and in ``finally``)."""
        if self._events is not None:
            self._events.close()
            self._events = None
