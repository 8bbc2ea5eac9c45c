"""``logger=tensorboard``: ``metrics.jsonl`` exactly as ``logger=jsonl``, plus TensorBoard event files.

RL users reach for TensorBoard first, so every record a strategy logs is mirrored as scalars under
``<run dir>/tensorboard/`` (``tensorboard --logdir outputs/runs`` then shows every run and sweep job).
The JSONL file stays the source of truth (plots, reports and sweeps read it); the event files are a
view of it, written on the same cadence.

Torch-free on purpose: events are written with TensorBoard's own ``EventFileWriter`` and protobufs,
imported lazily so ``townlet.runs`` still imports without ``tensorboard`` (or torch) installed.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from townlet.runs.metrics import MetricsWriter

TENSORBOARD_DIR = "tensorboard"
STEP_KEYS: tuple[str, ...] = ("iteration", "epoch")
STAGE_INDEX_KEY = "anneal_stage_index"
STAGE_NAME_KEY = "anneal_stage"
# Tags that label a record rather than measure anything: they choose the step and the prefix.
_LABEL_KEYS = frozenset({*STEP_KEYS, STAGE_INDEX_KEY, "anneal_cycle"})


class TensorBoardNotAvailableError(RuntimeError):
    """``logger=tensorboard`` without the ``tensorboard`` package installed."""

    def __init__(self) -> None:
        super().__init__(
            "logger=tensorboard needs the 'tensorboard' package: "
            'pip install -e ".[tensorboard]" (or use logger=jsonl, which needs nothing extra)'
        )


def scalar_leaves(record: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """``(tag, value)`` for every finite real number in ``record``, nested keys joined with ``/``.

    Booleans, strings, lists (e.g. a confusion matrix), None and NaN/Inf are skipped: a scalar
    chart of them would be meaningless or would break TensorBoard's smoothing.
    """
    for key, value in record.items():
        tag = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from scalar_leaves(value, tag + "/")
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            number = float(value)
            if math.isfinite(number):
                yield tag, number


def record_step(record: Mapping[str, Any], fallback: int) -> int:
    """The record's ``iteration``, else its ``epoch``, else ``fallback`` (a running count)."""
    for key in STEP_KEYS:
        value = record.get(key)
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value)):
            return int(float(value))
    return fallback


def stage_prefix(record: Mapping[str, Any]) -> str:
    """``stage<k>_<name>/`` for anneal stage records so stages never overwrite each other's curves."""
    index = record.get(STAGE_INDEX_KEY)
    if index is None or isinstance(index, bool):
        return ""
    name = record.get(STAGE_NAME_KEY)
    return f"stage{index}_{name}/" if isinstance(name, str) and name else f"stage{index}/"


class TensorBoardMetricsWriter(MetricsWriter):
    """A :class:`MetricsWriter` that also mirrors each written record as TensorBoard scalars.

    ``config_text`` (the run's resolved YAML) is written once as a text summary so the
    TensorBoard "Text" tab shows what produced the curves.
    """

    def __init__(
        self,
        path: str | Path,
        log_frequency: int = 1,
        max_log_entries: int | None = None,
        *,
        logdir: str | Path,
        config_text: str | None = None,
    ) -> None:
        super().__init__(path, log_frequency, max_log_entries)
        try:
            from tensorboard.compat.proto import event_pb2, summary_pb2
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
        except ImportError as exc:
            raise TensorBoardNotAvailableError() from exc
        self._event_pb2 = event_pb2
        self._summary_pb2 = summary_pb2
        self.logdir = Path(logdir)
        self._events: Any = EventFileWriter(str(self.logdir))
        if config_text is not None:
            self.add_text("config", config_text)

    def log(self, record: Mapping[str, Any], *, force: bool = False) -> bool:
        written = super().log(record, force=force)
        if written and self._events is not None:
            step = record_step(record, self.lines_written)
            prefix = stage_prefix(record)
            values = [
                self._summary_pb2.Summary.Value(tag=prefix + tag, simple_value=value)
                for tag, value in scalar_leaves({k: v for k, v in record.items() if k not in _LABEL_KEYS})
            ]
            if values:
                self._add(self._summary_pb2.Summary(value=values), step)
                self._events.flush()  # once per epoch/iteration: curves appear while the run goes on
        return written

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
        """Close both files; safe to call twice (train.py closes in ``finally`` as well)."""
        super().close()
        if self._events is not None:
            self._events.close()
            self._events = None
