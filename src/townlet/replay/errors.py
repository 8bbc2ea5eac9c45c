"""The one exception a dataset problem surfaces as: its message names the file, the problem and the fix."""

from __future__ import annotations

from pathlib import Path


class DatasetError(ValueError):
    """A dataset is missing, malformed, corrupted or does not match what the caller expects."""

    def __init__(self, problem: str, *, file: str | Path | None = None, hint: str | None = None) -> None:
        self.file = str(file) if file is not None else None
        self.problem = problem
        self.hint = hint
        message = f"{self.file}: {problem}" if self.file else problem
        if hint:
            message = f"{message} ({hint})"
        super().__init__(message)
