"""The run directory: one per run, holding the config snapshot, result, record, log and checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from townlet.runs.atomic import atomic_write_text

RESULT_FILE = "result.json"
RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
CHECKPOINT_DIR = "checkpoints"


class RunDirInUseError(RuntimeError):
    """The directory already holds a finished run; we never overwrite results silently."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"run directory {path} already holds {RESULT_FILE}; pass resume=true to continue that run, "
            "or choose another directory (hydra.run.dir=...)"
        )


class RunDir:
    """Paths and atomic writers for one run's artefacts."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()

    @property
    def result_path(self) -> Path:
        return self.path / RESULT_FILE

    @property
    def record_path(self) -> Path:
        return self.path / RUN_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def log_path(self) -> Path:
        return self.path / LOG_FILE

    @property
    def hydra_dir(self) -> Path:
        return self.path / ".hydra"

    @property
    def checkpoints(self) -> Path:
        """``checkpoints/`` (created on first access so strategies can write into it directly)."""
        folder = self.path / CHECKPOINT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def has_result(self) -> bool:
        return self.result_path.exists()

    def prepare(self, *, resume: bool = False) -> RunDir:
        """Create the directory; refuse one that already holds a result unless resuming."""
        if self.has_result() and not resume:
            raise RunDirInUseError(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        _ = self.checkpoints
        return self

    def write_result(self, dto: BaseModel) -> Path:
        """Write the result DTO atomically (Pydantic's JSON: NaN never appears)."""
        return atomic_write_text(self.result_path, dto.model_dump_json(indent=2) + "\n")

    def read_result(self) -> Any:
        """Parse ``result.json`` into its concrete DTO."""
        from townlet.dto import load_result

        return load_result(self.result_path.read_text(encoding="utf-8"))

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)
