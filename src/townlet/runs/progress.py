"""How far a run has got: a live bar on a terminal, plain log lines everywhere else.

Fed by the records strategies already log, so no strategy knows about it. A bar's carriage returns
turn a log file or a pipe into noise: outside a terminal the same facts go out as log lines.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from townlet.config.plan import RunPlan
from townlet.dto.metrics import (
    EVAL_RETURN_KEY,
    LOSS_TOTAL_KEY,
    SAMPLES_PER_SEC_KEY,
    SPS_KEY,
    TRAIN_LOSS_KEY,
    TRAIN_RETURN_KEY,
    VAL_ACCURACY_KEY,
)
from townlet.runs.sinks import number, record_step, stage_index

log = logging.getLogger("townlet.progress")

# What a progress line shows, in order: from each group, its first key the record holds.
_SHOWN: tuple[tuple[tuple[str, str], ...], ...] = (
    ((TRAIN_LOSS_KEY, "loss {:.4f}"), (LOSS_TOTAL_KEY, "loss {:.4f}")),
    ((VAL_ACCURACY_KEY, "acc {:.3f}"),),
    ((TRAIN_RETURN_KEY, "return {:.2f}"),),
    ((EVAL_RETURN_KEY, "eval {:.2f}"),),
    ((SPS_KEY, "{:,.0f} agent-steps/s"), (SAMPLES_PER_SEC_KEY, "{:,.0f} samples/s")),
)


def _stage(plan: RunPlan, record: Mapping[str, Any]) -> int | None:
    index = stage_index(record)
    return index if index is not None and 0 <= index < len(plan.stages) else None


def position(plan: RunPlan, record: Mapping[str, Any]) -> int | None:
    """Units done once ``record`` was logged (earlier stages included); None if it closes no unit."""
    step, index = record_step(record, None), _stage(plan, record)
    if step is None or index is None:
        return step
    return step + sum(units for _, units in plan.stages[:index])


def label(plan: RunPlan, record: Mapping[str, Any]) -> str:
    index = _stage(plan, record)
    return "" if index is None else f"stage {index + 1}/{len(plan.stages)} {plan.stages[index][0]}"


def summary(record: Mapping[str, Any]) -> str:
    shown = (
        next((fmt.format(v) for key, fmt in group if (v := number(record.get(key))) is not None), None)
        for group in _SHOWN
    )
    return " ".join(text for text in shown if text is not None)


def _clock(seconds: float) -> str:
    return str(tqdm.format_interval(max(0.0, seconds)))


class ProgressDisplay:
    """Shows nothing (``logger.progress=off``); the base of the two real displays."""

    def show(self, record: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class LogLines(ProgressDisplay):
    """Plain ``progress:`` log lines: the first unit, then one per ``every_sec``, and the last."""

    def __init__(
        self,
        plan: RunPlan,
        every_sec: float = 30.0,
        *,
        emit: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plan = plan
        self.every_sec = float(every_sec)
        self._emit = emit or log.info
        self._clock = clock
        self._start: tuple[float, int] | None = None
        self._last: float | None = None

    def show(self, record: Mapping[str, Any]) -> None:
        pos = position(self.plan, record)
        if pos is None:
            return
        now = self._clock()
        if self._start is None:
            self._start = (now, pos - 1)
        total = self.plan.units
        final = total is not None and pos >= total
        if self._last is not None and now - self._last < self.every_sec and not final:
            return
        self._last = now
        self._emit(self.line(record, pos, now))

    def line(self, record: Mapping[str, Any], pos: int, now: float) -> str:
        (t0, p0), total, unit = self._start or (now, pos - 1), self.plan.units, self.plan.unit
        fields = [text] if (text := label(self.plan, record)) else []
        fields.append(f"{unit} {pos}/{total} ({100 * pos / total:.0f}%)" if total else f"{unit} {pos}")
        if text := summary(record):
            fields.append(text)
        elapsed, done = now - t0, pos - p0
        timing = f"elapsed {_clock(elapsed)}"
        if total and done > 0 and elapsed > 0:  # the first unit's own time is not known yet
            timing += f" ETA {_clock(elapsed / done * max(total - pos, 0))}"
        return "progress: " + " | ".join([*fields, timing])


class LiveBar(ProgressDisplay):
    def __init__(self, plan: RunPlan) -> None:
        self.plan = plan
        self.stream = sys.stderr
        self._bar: Any = None
        self._open = contextlib.ExitStack()

    def show(self, record: Mapping[str, Any]) -> None:
        pos = position(self.plan, record)
        if pos is None:
            return
        if self._bar is None:
            self._open.enter_context(logging_redirect_tqdm())
            bar = tqdm(
                total=self.plan.units,
                initial=max(pos - 1, 0),
                unit=self.plan.unit,
                file=self.stream,
                smoothing=0.3,
                **_width(self.stream),
            )
            self._bar = self._open.enter_context(bar)
        self._bar.set_description_str(label(self.plan, record), refresh=False)
        self._bar.set_postfix_str(summary(record), refresh=False)
        if pos > self._bar.n:
            self._bar.update(pos - self._bar.n)
        else:
            self._bar.refresh()

    def close(self) -> None:
        self._open.close()  # the bar, then the log redirection
        self._bar = None


def _width(stream: Any) -> dict[str, Any]:
    """The terminal's size, else ``$COLUMNS``/``$LINES`` (tqdm hides its bar on a bare pty's 0x0)."""
    try:
        size = os.get_terminal_size(stream.fileno())
        if size.columns > 0 and size.lines > 0:
            return {"dynamic_ncols": True}
    except (AttributeError, OSError, ValueError):
        pass
    fallback = shutil.get_terminal_size()
    return {"ncols": fallback.columns, "nrows": fallback.lines}


def is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty()) and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def display_kind(mode: str, *, multirun: bool) -> str:
    """``bar``, ``lines`` or ``off`` for ``logger.progress=mode`` in this process."""
    mode = str(mode)
    if mode in ("off", "lines"):
        return mode
    if multirun or not is_terminal(sys.stderr):
        return "lines"
    return "bar" if mode == "bar" or is_terminal(sys.stdout) else "lines"


def make_display(mode: str, plan: RunPlan, *, every_sec: float, multirun: bool) -> ProgressDisplay:
    kind = display_kind(mode, multirun=multirun)
    if kind == "bar":
        return LiveBar(plan)
    return LogLines(plan, every_sec) if kind == "lines" else ProgressDisplay()


class Counter:
    """A count towards ``total`` outside training (``townlet-capture``): a bar or plain lines."""

    def __init__(
        self,
        total: int,
        unit: str,
        desc: str,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        every_sec: float = 10.0,
    ) -> None:
        self.total, self.unit, self.desc = int(total), unit, desc
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.every_sec = every_sec
        self.done = 0
        self._bar: Any = None
        self._started = time.monotonic()
        self._last: float | None = None
        if enabled and is_terminal(self.stream):
            self._bar = tqdm(total=self.total, unit=unit, desc=desc, file=self.stream, **_width(self.stream))

    def update_to(self, done: int) -> None:
        step, self.done = done - self.done, done
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(step)
            return
        now = time.monotonic()
        if self._last is None or now - self._last >= self.every_sec or done >= self.total:
            self._last = now
            elapsed = now - self._started
            rate = self.done / elapsed if elapsed > 0 else 0.0
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            pct = 100 * self.done / self.total if self.total else 100.0
            self.stream.write(
                f"{self.desc}: {self.done:,}/{self.total:,} {self.unit}s ({pct:.0f}%) {rate:,.0f} "
                f"{self.unit}/s elapsed {_clock(elapsed)} ETA {_clock(eta)}\n"
            )
            self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
