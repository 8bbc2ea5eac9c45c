"""Atomic file writes: a crash or a concurrent reader (a sweep report globbing ``*/result.json``)
sees either the old file or the complete new one, never half of it; and strict JSON for them."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

TMP_SUFFIX = ".tmp"  # RunDir.prepare removes ``.*.tmp`` left by a killed writer
STDOUT = "-"  # a command's output file given as ``out=-``


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Temp file in the same directory + ``os.replace``; on failure ``path`` keeps its old content and
    an ``OSError`` names ``path``. Written through like a shell redirection: ``-`` is stdout, a device
    or FIFO is written in place, a symlink's target gets the content."""
    if os.fspath(path) == STDOUT:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return Path(STDOUT)
    given = Path(path)
    if given.exists() and (not given.is_file() or given.parts[:2] == ("/", "dev")):
        with open(given, "wb") as stream:
            stream.write(data)
        return given
    target = Path(os.path.realpath(given))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent)
    except OSError as exc:
        raise _naming(exc, target) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            _write_all(handle, data, target)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)  # mkstemp creates 0600; match a normal open()
        os.replace(tmp_name, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError):
            raise _naming(exc, target) from exc
        raise
    return target


def _write_all(handle: BinaryIO, data: bytes, target: Path) -> None:
    """A seam: the fault-injection tests replace it to fail the way a full disk does."""
    handle.write(data)
    handle.flush()
    os.fsync(handle.fileno())


def _naming(exc: OSError, target: Path) -> OSError:
    if exc.filename is not None or exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), os.fspath(target))


def link_out_of(root: Path) -> Path | None:
    """The first symbolic link under ``root`` that leads outside it (None when none does).

    The writers above follow links like a shell redirection, which is right for a path the user names
    but not for the files a command keeps inside a run or sweep folder someone else may have made:
    such a link would carry a run's writes into another run or anywhere on disk.
    """
    inside = root.resolve()
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            entry = Path(folder, name)
            if entry.is_symlink() and not entry.resolve().is_relative_to(inside):
                return entry
    return None


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def finite_or_none(value: Any) -> float | None:
    """``value`` as a finite float, else ``None`` (NaN/Inf, bools and non-numbers never pass)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def json_safe(value: Any, default: Callable[[Any], Any] | None = None) -> Any:
    """NaN/Inf floats replaced by ``None`` (recursively); other leaves go through ``default`` if given."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v, default) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v, default) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:
        return json_safe(value.item(), default)  # numpy / torch scalars
    if default is None or value is None or isinstance(value, str | int | bool):
        return value
    return default(value)


def dumps_json(value: Any, *, indent: int | None = None) -> str:
    return json.dumps(json_safe(value), indent=indent, allow_nan=False, default=_default)


def loads_json(text: str | bytes) -> Any:
    """``json.loads`` for files anyone may have written: arrays nested past the interpreter's recursion
    limit are a ``JSONDecodeError`` like any other bad JSON, not a ``RecursionError`` traceback."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", str(text[:64]), 0) from None


def read_json_object(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON object in ``path``, else None: reports meet half-finished jobs and must not fail."""
    try:
        data = loads_json(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def atomic_write_json(path: str | os.PathLike[str], value: Any, *, indent: int | None = 2) -> Path:
    return atomic_write_text(path, dumps_json(value, indent=indent) + "\n")


def _default(obj: Any) -> Any:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    for name in ("tolist", "item"):  # arrays, then numpy / torch scalars
        if hasattr(obj, name):
            return json_safe(getattr(obj, name)())
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serialisable")
