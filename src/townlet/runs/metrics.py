"""Append-only JSONL metrics: every ``log_frequency``-th call, rotated to ``<name>.1``, ``.2`` ... after
``max_log_entries`` lines so a long run never grows one file without bound."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from townlet.dto.metrics import WALL_KEY
from townlet.runs.atomic import dumps_json, loads_json


class MetricsWriter:
    """Line-buffered JSONL writer; opened lazily so a run that logs nothing leaves no file."""

    def __init__(self, path: str | Path, log_frequency: int = 1, max_log_entries: int | None = None) -> None:
        if log_frequency < 1:
            raise ValueError(f"log_frequency must be >= 1 (got {log_frequency}); use 1 to log every call")
        self.path = Path(path)
        self.log_frequency = int(log_frequency)
        self.max_log_entries = max_log_entries  # None or <= 0: one file, unbounded
        self.calls = 0
        self._lines_in_file = 0
        self._rotation = 0
        self._handle: TextIO | None = None
        self._started = time.monotonic()

    def wall_sec(self) -> float:
        return round(time.monotonic() - self._started, 3)

    def log(self, record: Mapping[str, Any], *, force: bool = False) -> bool:
        self.calls += 1
        if not force and self.calls % self.log_frequency != 0:
            return False
        limit = self.max_log_entries
        if limit is not None and limit > 0 and self._lines_in_file >= limit:
            self.close()
            self._rotation += 1
            self._lines_in_file = 0
        if self._handle is None:
            name = self.path.name if self._rotation == 0 else f"{self.path.name}.{self._rotation}"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.with_name(name).open("a", encoding="utf-8", buffering=1)
        # a record stamped upstream (the fan-out, shared by every logger) keeps its stamp
        self._handle.write(dumps_json({**record, WALL_KEY: record.get(WALL_KEY, self.wall_sec())}) + "\n")
        self._lines_in_file += 1
        return True

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NullMetricsWriter(MetricsWriter):
    """``logger=none``."""

    def __init__(self) -> None:
        super().__init__(Path("/dev/null"))

    def log(self, record: Mapping[str, Any], *, force: bool = False) -> bool:
        self.calls += 1
        return False


def metrics_files(path: str | Path) -> list[Path]:
    """The base file and its rotations in write order (``x``, ``x.1``, ``x.2`` ...)."""
    base = Path(path)
    pattern = re.compile(re.escape(base.name) + r"\.(\d+)$")
    rotated = sorted(
        (int(m.group(1)), p) for p in base.parent.glob(base.name + ".*") if (m := pattern.match(p.name))
    )
    return ([base] if base.exists() else []) + [p for _, p in rotated]


def read_metrics(path: str | Path) -> Iterator[dict[str, Any]]:
    for file in metrics_files(path):
        with file.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield loads_json(line)
