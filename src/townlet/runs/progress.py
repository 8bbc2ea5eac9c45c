"""How far a run has got: a live bar on a terminal, plain log lines everywhere else.

The display is fed by the metrics records the strategies already log (every call, before the
logging cadence), so no strategy knows about it. Where a record stands is read from its
``iteration``/``epoch`` (plus, in an anneal, the epochs of the stages before its
``anneal_stage_index``); the totals come from the config (:func:`plan_from_config`).

A bar redraws its line with carriage returns, which turn a log file or a pipe into noise, so it is
drawn only when both stdout and stderr are terminals and the process is not a multirun job (whose
output goes to a log or interleaves with its siblings'). Otherwise the same facts go out as one
log line at most every ``every_sec`` seconds (and for the last unit): no ``\\r``, no escape codes.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

log = logging.getLogger("townlet.progress")

# (record key, label, format): the first present loss, then accuracy / returns.
_LOSS_KEYS = ("train_loss", "loss_total")
_SHOWN: tuple[tuple[str, str, str], ...] = (
    ("val_accuracy", "acc", "{:.3f}"),
    ("episode_return_mean", "return", "{:.2f}"),
    ("eval_return_mean", "eval", "{:.2f}"),
)
_RATES: tuple[tuple[str, str], ...] = (("sps", "agent-steps/s"), ("samples_per_sec", "samples/s"))


def _number(value: Any) -> float | None:
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value)):
        return float(value)
    return None


@dataclass(frozen=True)
class ProgressPlan:
    """What a run will do: ``total`` units (None = unknown) and, for an anneal, units per stage."""

    total: int | None
    unit: str = "it"
    stages: tuple[tuple[str, int], ...] = ()

    def position(self, record: Mapping[str, Any]) -> int | None:
        """Units done once ``record`` was logged; None for records that close no epoch/iteration."""
        value = _number(record.get("iteration"))
        value = _number(record.get("epoch")) if value is None else value
        if value is None:
            return None
        index = record.get("anneal_stage_index")
        if self.stages and isinstance(index, int) and 0 <= index < len(self.stages):
            return sum(units for _, units in self.stages[:index]) + int(value)
        return int(value)

    def label(self, record: Mapping[str, Any]) -> str:
        index = record.get("anneal_stage_index")
        if self.stages and isinstance(index, int) and 0 <= index < len(self.stages):
            return f"stage {index + 1}/{len(self.stages)} {self.stages[index][0]}"
        return ""


def plan_from_config(strategy: Mapping[str, Any], world: Mapping[str, Any]) -> ProgressPlan:
    """Totals from the strategy node: an anneal schedule's stage epochs, PPO's planned iterations
    (``total_steps`` over the agent-steps of one iteration, or ``epochs`` on replay), BC's epochs."""
    schedule = strategy.get("schedule")
    if isinstance(schedule, list | tuple) and schedule and "mode" in schedule[0]:
        stages = tuple((str(s["mode"]), int(s["epochs"])) for s in schedule)
        return ProgressPlan(sum(units for _, units in stages), "it", stages)
    if "data_mode" in strategy:
        if str(strategy["data_mode"]) == "replay":
            return ProgressPlan(int(strategy.get("epochs") or 1), "it")
        envs = strategy.get("num_envs") or world.get("num_envs") or 1
        agents = strategy.get("num_agents") or world.get("num_agents") or 1
        rows = int(strategy.get("n_steps") or 1) * int(envs) * int(agents)
        return ProgressPlan(max(1, math.ceil(int(strategy.get("total_steps") or 0) / max(rows, 1))), "it")
    epochs = _number(strategy.get("epochs"))
    return ProgressPlan(int(epochs) if epochs else None, "epoch" if epochs else "it")


def summary(record: Mapping[str, Any]) -> str:
    """The record's headline numbers: loss, accuracy or returns, and the throughput."""
    parts: list[str] = []
    loss = next((v for k in _LOSS_KEYS if (v := _number(record.get(k))) is not None), None)
    if loss is not None:
        parts.append(f"loss {loss:.4f}")
    parts += [
        f"{label} {fmt.format(v)}"
        for key, label, fmt in _SHOWN
        if (v := _number(record.get(key))) is not None
    ]
    rate = next(((v, unit) for k, unit in _RATES if (v := _number(record.get(k))) is not None), None)
    if rate is not None:
        parts.append(f"{rate[0]:,.0f} {rate[1]}")
    return " ".join(parts)


def _clock(seconds: float) -> str:
    from tqdm import tqdm

    return str(tqdm.format_interval(max(0.0, seconds)))


class ProgressDisplay:
    """Shows nothing (``logger.progress=off``); the base of the two real displays."""

    def show(self, record: Mapping[str, Any]) -> None:
        """Take one record (every one a strategy logs, whatever the cadence)."""

    def close(self) -> None:
        """End the display; safe to call twice."""


class LogLines(ProgressDisplay):
    """Plain ``progress:`` log lines: the first unit, then one per ``every_sec``, and the last."""

    def __init__(
        self,
        plan: ProgressPlan,
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
        pos = self.plan.position(record)
        if pos is None:
            return
        now = self._clock()
        if self._start is None:
            self._start = (now, pos - 1)
        final = self.plan.total is not None and pos >= self.plan.total
        if self._last is not None and now - self._last < self.every_sec and not final:
            return
        self._last = now
        self._emit(self.line(record, pos, now))

    def line(self, record: Mapping[str, Any], pos: int, now: float) -> str:
        plan, (t0, p0) = self.plan, self._start or (now, pos - 1)
        fields = [plan.label(record)] if plan.label(record) else []
        if plan.total:
            fields.append(f"{plan.unit} {pos}/{plan.total} ({100 * pos / plan.total:.0f}%)")
        else:
            fields.append(f"{plan.unit} {pos}")
        if text := summary(record):
            fields.append(text)
        elapsed, done = now - t0, pos - p0
        timing = f"elapsed {_clock(elapsed)}"
        if plan.total and done > 0 and elapsed > 0:  # the first unit's own time is not known yet
            timing += f" ETA {_clock(elapsed / done * max(plan.total - pos, 0))}"
        fields.append(timing)
        return "progress: " + " | ".join(fields)


class LiveBar(ProgressDisplay):
    """A tqdm bar on ``stream`` (a terminal); log lines are routed around it while it is open."""

    def __init__(self, plan: ProgressPlan, stream: TextIO | None = None) -> None:
        self.plan = plan
        self.stream = stream or sys.stderr
        self._bar: Any = None
        self._redirect: Any = None

    def show(self, record: Mapping[str, Any]) -> None:
        pos = self.plan.position(record)
        if pos is None:
            return
        if self._bar is None:
            self._open(initial=pos - 1)
        bar = self._bar
        bar.set_description_str(self.plan.label(record), refresh=False)
        bar.set_postfix_str(summary(record), refresh=False)
        if pos > bar.n:
            bar.update(pos - bar.n)
        else:
            bar.refresh()

    def _open(self, initial: int) -> None:
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        self._redirect = logging_redirect_tqdm()
        self._redirect.__enter__()
        self._bar = tqdm(
            total=self.plan.total,
            initial=max(initial, 0),
            unit=self.plan.unit,
            file=self.stream,
            smoothing=0.3,
            **_width(self.stream),
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
            self._redirect = None


def _width(stream: Any) -> dict[str, Any]:
    """Follow the terminal's size; a terminal that reports none (a bare pty, ``script``) gets
    ``$COLUMNS``/``$LINES`` or 80x24: tqdm hides its bar on a zero-sized screen."""
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
    if mode == "bar" or is_terminal(sys.stdout):
        return "bar"
    return "lines"


def make_display(mode: str, plan: ProgressPlan, *, every_sec: float, multirun: bool) -> ProgressDisplay:
    kind = display_kind(mode, multirun=multirun)
    if kind == "bar":
        return LiveBar(plan)
    if kind == "lines":
        return LogLines(plan, every_sec)
    return ProgressDisplay()


class Counter:
    """A count towards ``total`` for commands outside training (``townlet-capture``): a tqdm bar when
    ``stream`` is a terminal, else a plain line per ``every_sec`` and one at the end."""

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
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, unit=unit, desc=desc, file=self.stream, **_width(self.stream))

    def update_to(self, done: int) -> None:
        """``done`` units so far (absolute, as progress callbacks report them)."""
        step, self.done = done - self.done, done
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(step)
            return
        now = time.monotonic()
        if self._last is None or now - self._last >= self.every_sec or done >= self.total:
            self._last = now
            self._line(now)

    def _line(self, now: float) -> None:
        elapsed = now - self._started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        pct = 100 * self.done / self.total if self.total else 100.0
        self.stream.write(
            f"{self.desc}: {self.done:,}/{self.total:,} {self.unit}s ({pct:.0f}%) {rate:,.0f} {self.unit}/s "
            f"elapsed {_clock(elapsed)} ETA {_clock(eta)}\n"
        )
        self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
