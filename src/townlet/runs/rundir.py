"""The run directory: config snapshot, result, record, log and checkpoints of one run."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

from pydantic import BaseModel

from townlet.dto import RunRecord
from townlet.runs.atomic import TMP_SUFFIX, atomic_write_text, read_json_object
from townlet.runs.record import is_stale

RESULT_FILE = "result.json"
RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
CHECKPOINT_DIR = "checkpoints"

log = logging.getLogger("townlet.runs")


def recorded_run_id(run_dir: Path) -> str | None:
    """The ``run_id`` in ``<run_dir>/run.json``, None when there is none to read."""
    record = read_json_object(run_dir / RUN_FILE) or {}
    return str(record["run_id"]) if "run_id" in record else None


def run_dir_holding(path: str | Path) -> Path | None:
    """The run directory ``path`` lies in (links followed): the nearest folder at or above it holding
    a ``run.json``; None outside every run dir."""
    where = Path(os.path.realpath(Path(path).expanduser()))
    return next((p for p in (where, *where.parents) if (p / RUN_FILE).is_file()), None)


class RunDirError(RuntimeError):
    """The message names the path and the fix."""


class RunDirInUseError(RuntimeError):
    """The directory already holds a finished run; we never overwrite results silently."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"run directory {path} already holds {RESULT_FILE}; pass resume=true to continue that run, "
            "or choose another directory (hydra.run.dir=...)"
        )


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()
        self.result_path = self.path / RESULT_FILE
        self.record_path = self.path / RUN_FILE
        self.metrics_path = self.path / METRICS_FILE
        self.log_path = self.path / LOG_FILE

    @property
    def checkpoints(self) -> Path:
        """Created on first access so strategies can write into it directly."""
        folder = self.path / CHECKPOINT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def prepare(self, *, resume: bool = False) -> RunDir:
        """Create the directory (a finished one only to resume); sweep a killed run's temp files."""
        if self.result_path.exists() and not resume:
            raise RunDirInUseError(self.path)
        try:
            _ = self.checkpoints
        except OSError as exc:
            raise RunDirError(describe_os_error(exc, self.path)) from exc
        _note_killed_run(self.record_path)
        if removed := remove_orphaned_temp_files(self.path):
            names = ", ".join(str(p.relative_to(self.path)) for p in removed)
            log.warning(
                "run dir: removed %d temp file(s) left by an interrupted write: %s", len(removed), names
            )
        return self

    def write_result(self, dto: BaseModel) -> Path:
        return atomic_write_text(self.result_path, dto.model_dump_json(indent=2) + "\n")

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)


def _note_killed_run(record_path: Path) -> None:
    try:
        record = RunRecord.model_validate_json(record_path.read_bytes())
    except (OSError, ValueError):
        return
    if is_stale(record):
        log.warning(
            "run dir: the previous run here (%s, pid %d) was killed; its run.json still said 'running'",
            record.run_id,
            record.pid,
        )


def remove_orphaned_temp_files(root: Path) -> list[Path]:
    """Delete ``.*.tmp`` files (writes that died before their rename) before this run writes any."""
    removed: list[Path] = []
    for path in sorted(root.rglob(f".*{TMP_SUFFIX}")):
        try:
            if path.is_file() and not path.is_symlink():
                path.unlink()
                removed.append(path)
        except OSError:  # vanished or not ours to delete: the run goes on, the next one retries
            continue
    return removed


#: The file-system faults a user fixes on their side, by errno (``{}``: the path), each followed by
#: "write the run elsewhere".
_FAULTS = {
    **dict.fromkeys(
        (errno.ENOSPC, errno.EDQUOT), "no space left on the device holding {}; free some space or"
    ),
    errno.EROFS: "{} is on a read-only file system;",
    **dict.fromkeys(
        (errno.EACCES, errno.EPERM), "{} is not writable (permission denied); fix its permissions or"
    ),
    errno.ENOTDIR: "cannot create {}: one of its parents is a regular file; move it or",
    errno.EEXIST: "cannot create the directory {}: a file of that name exists; move it or",
}


def describe_os_error(exc: OSError, fallback: Path | None = None) -> str:
    """One line for a file-system fault: the path, what is wrong with it, and what to do."""
    path = exc.filename if exc.filename is not None else fallback
    where = os.fspath(path) if path is not None else "the output directory"
    fault = _FAULTS.get(exc.errno or 0)
    head = fault.format(where) if fault else f"cannot write {where} ({exc.strerror or exc});"
    return f"{head} write the run elsewhere (hydra.run.dir=<dir> or paths.output_root=<dir>)"


def io_fault_message(exc: BaseException) -> str | None:
    """The :func:`describe_os_error` line for a user-fixable ``OSError`` in ``exc``'s chain, else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, RunDirError):
            return str(current)
        if isinstance(current, OSError) and current.errno in _FAULTS:
            return describe_os_error(current)
        current = current.__cause__ or current.__context__
    return None
