"""SIGINT and SIGTERM end a run as *interrupted*, not killed, at the next safe point of its training loop.

SIGTERM's default action skips ``finally``, leaving ``run.json`` at ``running`` for ever. Between two
iterations a checkpoint describes exactly what was logged, so a resumed run continues as if it never
stopped: loops open :func:`safe_points` and call :func:`check`; elsewhere (or on a second signal) the
signal raises at once. Handlers replace only a default disposition, so submitit keeps its own.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from townlet.runs.ownership import resume_command


class TrainingInterrupted(KeyboardInterrupt):
    """The run stopped on a signal (a KeyboardInterrupt, so it is never mistaken for a failure)."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.signal_name = signal.Signals(self.signum).name
        super().__init__(f"stopped by {self.signal_name}")


_depth = 0
_requested: int | None = None


def deliver(signum: int) -> None:
    global _requested
    if _depth > 0 and _requested is None:
        _requested = int(signum)
        return
    raise TrainingInterrupted(signum)


def requested() -> int | None:
    return _requested


def clear() -> None:
    global _requested
    _requested = None


@contextmanager
def safe_points() -> Iterator[None]:
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1


def check(save: Callable[[], None]) -> None:
    """At a safe point: when a stop was asked for, ``save`` (the loop's checkpoint) and raise."""
    signum = _requested
    if signum is None:
        return
    save()
    clear()
    raise TrainingInterrupted(signum)


class RunInterrupted(TrainingInterrupted):
    """A run stopped by a signal, with its directory and whether it holds a checkpoint (for the message)."""

    def __init__(self, signum: int, run_dir: Path | None = None, *, checkpointed: bool = False) -> None:
        super().__init__(signum)
        self.run_dir = run_dir
        self.checkpointed = checkpointed


def interrupt_signum(exc: BaseException) -> int:
    """The signal behind ``exc``: a plain ``KeyboardInterrupt`` is Python's own SIGINT handler."""
    return exc.signum if isinstance(exc, TrainingInterrupted) else int(signal.SIGINT)


def interrupt_signal(exc: BaseException) -> str:
    return signal.Signals(interrupt_signum(exc)).name


def as_run_interrupted(exc: BaseException, run_dir: Path) -> RunInterrupted:
    checkpointed = any((run_dir / "checkpoints").glob("*.pt"))
    return RunInterrupted(interrupt_signum(exc), run_dir, checkpointed=checkpointed)


def interrupt_exit_code(exc: BaseException) -> int:
    """``128 + signal``: 130 for SIGINT, 143 for SIGTERM (what shells and schedulers expect)."""
    return 128 + interrupt_signum(exc)


def interrupt_message(exc: BaseException) -> str:
    name = interrupt_signal(exc)
    if not isinstance(exc, RunInterrupted) or exc.run_dir is None:
        return f"interrupted by {name}"
    kept = "the last checkpoint is kept" if exc.checkpointed else "no checkpoint was written yet"
    return (
        f"interrupted by {name}; run.json says 'interrupted' and {kept} in {exc.run_dir}; "
        f"continue with: {resume_command(exc.run_dir)}"
    )


class StopSignals:
    """:meth:`install` before the run, :meth:`hold` (further signals are no-ops while ``run.json`` is
    written) while recording its end, :meth:`restore` after; safe from any thread."""

    def __init__(self) -> None:
        self._previous: dict[signal.Signals, Any] = {}
        self._held = False

    @property
    def installed(self) -> tuple[signal.Signals, ...]:
        return tuple(self._previous)

    def install(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in (signal.SIGINT, signal.SIGTERM):
            current = signal.getsignal(sig)
            # a console entry's own StopSignals (townlet.cli._common.console) is taken over as well
            if current in (signal.SIG_DFL, signal.default_int_handler) or isinstance(
                getattr(current, "__self__", None), StopSignals
            ):
                self._previous[sig] = current
                signal.signal(sig, self._handle)
        return self

    def hold(self) -> None:
        self._held = True

    def restore(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
        clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._held:
            return
        try:
            deliver(signum)
        except TrainingInterrupted:
            self._held = True
            raise
