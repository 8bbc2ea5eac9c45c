"""``logger=csv``: ``<run dir>/metrics.csv``, :data:`LEADING` columns first, then the rest sorted.

A record with a new key rewrites the file atomically under the widened header: a reader never sees a
row that does not match its header.
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
from collections.abc import Mapping
from typing import Any, TextIO

from townlet.dto.metrics import (
    AGENT_STEPS_KEY,
    STAGE_INDEX_KEY,
    STAGE_KEY,
    STEP_KEYS,
    STEPS_KEY,
    STRATEGY_KEY,
    WALL_KEY,
)
from townlet.runs.atomic import atomic_write_text, json_safe
from townlet.runs.sinks import MetricsSink, RunInfo, flatten

LEADING = (STAGE_INDEX_KEY, STAGE_KEY, STRATEGY_KEY, *STEP_KEYS, STEPS_KEY, AGENT_STEPS_KEY, WALL_KEY)


def cell(value: Any) -> str:
    """Lists as JSON text, NaN/Inf and None as empty cells, booleans ``true``/``false``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value)) if math.isfinite(value) else ""
    if isinstance(value, list | tuple):
        return json.dumps(json_safe(list(value), default=str))
    return str(value)


class CsvSink(MetricsSink):
    name = "csv"

    def __init__(self, filename: str = "metrics.csv", *, run: RunInfo) -> None:
        self.path = run.path / filename
        self.columns = list(LEADING)
        self._handle: TextIO | None = None
        if self.path.is_file():  # a resumed run appends under its header
            with self.path.open(encoding="utf-8", newline="") as handle:
                self.columns = next(csv.reader(handle), []) or self.columns

    def write(self, record: Mapping[str, Any]) -> None:
        row = {key: cell(value) for key, value in flatten(record)}
        if not set(self.columns).issuperset(row):
            self._widen([*LEADING, *sorted(set(self.columns).union(row) - set(LEADING))])
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not self.path.is_file() or self.path.stat().st_size == 0
            self._handle = self.path.open("a", encoding="utf-8", newline="", buffering=1)
            if fresh:
                csv.writer(self._handle, lineterminator="\n").writerow(self.columns)
        csv.DictWriter(self._handle, self.columns, restval="", lineterminator="\n").writerow(row)

    def _widen(self, columns: list[str]) -> None:
        self.close()
        if self.path.is_file() and self.path.stat().st_size > 0:
            with self.path.open(encoding="utf-8", newline="") as handle:
                rows = list(csv.DictReader(handle))
            text = io.StringIO()
            writer = csv.DictWriter(text, columns, restval="", lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            atomic_write_text(self.path, text.getvalue())
        self.columns = columns

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
