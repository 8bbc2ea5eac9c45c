"""A stop asked for by a signal, honoured at the next safe point of a training loop.

A training loop between two iterations (or epochs) is the one place where stopping loses nothing:
its checkpoint then describes exactly the iterations already logged, so a resumed run continues
as if it had never stopped. Loops open :func:`safe_points` and call :func:`check` after their
checkpoint; a signal arriving inside such a loop only records the request. Anywhere else (capture,
final evaluation) nothing is waiting for a safe point, so the signal raises at once; a second signal
also raises at once, for a user who does not want to wait for the iteration to end.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["TrainingInterrupted", "check", "clear", "deliver", "requested", "safe_points"]


class TrainingInterrupted(KeyboardInterrupt):
    """The run stopped on a signal (a KeyboardInterrupt, so it is never mistaken for a failure)."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.signal_name = signal.Signals(self.signum).name
        super().__init__(f"stopped by {self.signal_name}")


_depth = 0
_requested: int | None = None


def deliver(signum: int) -> None:
    """What a signal handler calls: remember the request inside a loop, else raise now."""
    global _requested
    if _depth > 0 and _requested is None:
        _requested = int(signum)
        return
    raise TrainingInterrupted(signum)


def requested() -> int | None:
    """The signal number waiting to be honoured, if any."""
    return _requested


def clear() -> None:
    global _requested
    _requested = None


@contextmanager
def safe_points() -> Iterator[None]:
    """Mark a training loop: signals inside it wait for the loop's next :func:`check`."""
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
