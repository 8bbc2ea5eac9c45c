"""A run directory belongs to one run: claimed by a lock while the run lives, continued only by
``resume=true`` with the run's own overrides, and never written outside of.

A lock as well as ``run.json``: ``running`` cannot tell a live run from one killed a second ago on
another node, but the kernel releases an ``flock`` on ``RUN/.lock`` when its process dies. The claim is
taken in Hydra's ``on_run_start``, before Hydra rewrites ``.hydra/``, and again when the job starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from townlet.config.instantiate import ConfigError
from townlet.config.snapshot import load_untrusted_yaml
from townlet.dto.base import SCHEMA_VERSION, newer_schema
from townlet.runs.atomic import link_out_of, read_json_object
from townlet.runs.sinks import flatten

LOCK_FILE = ".lock"
_HELD: dict[Path, int] = {}  # run dir -> descriptor of its lock file, for this process's runs
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class RunDirOwned(ConfigError):
    """The directory belongs to another run (live, interrupted, finished) or to other overrides;
    a clash, not a bad value, so its own exit code."""

    exit_code = 1


# ------------------------------------------------------------------------------------------- claim


def claim_run_dir(
    run_dir: str | Path,
    *,
    resume: bool,
    overrides: Sequence[str] | None = None,
    config: Any = None,
    hold: bool = True,
) -> None:
    """Refuse a directory another run owns, then hold its lock until :func:`release_run_dir` or exit.

    ``overrides`` (the task overrides of this run, when known) must equal the saved ones on resume, and
    ``config`` (its composed task config as plain containers, when known) the saved config;
    ``hold=False`` only checks (a sweep's job dirs, claimed by each job when it starts).
    """
    path = Path(run_dir).expanduser().resolve()
    if path in _HELD:
        return
    fd = _probe_lock(path)
    try:
        _check_owner(path, resume=resume, overrides=overrides, config=config)
        if not hold:
            if fd is not None:
                os.close(fd)
            return
        if fd is None:
            try:
                path.mkdir(parents=True, exist_ok=True)
                fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                return  # a file-system fault: the run reports it when it creates the dir (rundir.py)
            _probe_lock(path, fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except BaseException:
        if fd is not None:
            with contextlib.suppress(OSError):  # already closed by a refusing _probe_lock
                os.close(fd)
        raise
    _HELD[path] = fd


def release_run_dir(run_dir: str | Path) -> None:
    """Drop this process's lock on ``run_dir`` (the file stays: removing it would race a new claim)."""
    fd = _HELD.pop(Path(run_dir).expanduser().resolve(), None)
    if fd is not None:
        os.close(fd)


def _probe_lock(path: Path, fd: int | None = None) -> int | None:
    """The lock taken (its descriptor), None when there is no lock file yet; a live holder is refused."""
    if fd is None:
        try:
            fd = os.open(path / LOCK_FILE, os.O_RDWR)
        except OSError:  # none yet, or a file-system fault the run reports when it creates the dir
            return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise RunDirOwned(
            f"run directory {path} is in use by a live run (pid {holder}); wait for it to end, "
            "or choose another directory (hydra.run.dir=...)"
        ) from None
    return fd


def _check_owner(path: Path, *, resume: bool, overrides: Sequence[str] | None, config: Any = None) -> None:
    link = link_out_of(path)
    if link is not None:
        raise RunDirOwned(
            f"{link} is a symbolic link to {link.resolve()}, outside the run directory, and a run writes "
            "only its own files; remove the link or choose another directory (hydra.run.dir=...)"
        )
    if (path / "result.json").exists() and not resume:
        raise RunDirOwned(
            f"run directory {path} already holds result.json; pass resume=true to continue that run, "
            "or choose another directory (hydra.run.dir=...)"
        )
    record = path / "run.json"
    if record.exists() and not resume:
        found = read_json_object(record)
        status = "unreadable" if found is None else str(found.get("status"))
        raise RunDirOwned(
            f"run directory {path} holds a run whose run.json says {status!r}; continue it with: "
            f"{resume_command(path)}, or choose another directory (hydra.run.dir=...)"
        )
    for name in ("run.json", "result.json") if resume else ():
        newer = newer_schema(read_json_object(path / name))
        if newer is not None:
            raise RunDirOwned(
                f"{path / name} was written by a newer townlet-train (schema {newer}; this one writes "
                f"{SCHEMA_VERSION}) and resuming would drop what it cannot read; resume it with that version"
            )
    if resume and overrides is not None:
        check_resume_overrides(path, overrides)
    if resume and config is not None:
        check_resume_config(path, config)


# ------------------------------------------------------------------------------------------ resume


def saved_overrides(run_dir: Path, *, strict: bool = False) -> list[str] | None:
    """The run's own task overrides from ``.hydra/overrides.yaml`` (``resume=...`` left out), if any;
    an unreadable file is None, or its one-line refusal when ``strict``."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    try:
        saved = load_untrusted_yaml(path)
    except ConfigError:
        if strict:
            raise
        return None
    if not isinstance(saved, list):
        return None
    return [str(o) for o in saved if _key(str(o)) != "resume"]


def check_resume_overrides(run_dir: Path, overrides: Sequence[str]) -> None:
    """``resume=true`` continues the run's own config: the overrides must be the saved ones."""
    saved = saved_overrides(run_dir, strict=True)
    if saved is None:
        return
    ours, theirs = _as_dict(o for o in overrides if _key(o) != "resume"), _as_dict(saved)
    differ = [k for k in dict.fromkeys([*theirs, *ours]) if ours.get(k) != theirs.get(k)]
    if differ:
        shown = ", ".join(f"{k} (run: {theirs.get(k, '-')}, given: {ours.get(k, '-')})" for k in differ)
        raise RunDirOwned(
            f"resume=true continues {run_dir} with its own overrides, and these differ: {shown}; "
            f"continue it with: {resume_command(run_dir)}, or start a new run in another directory"
        )


def check_resume_config(run_dir: Path, config: Mapping[str, Any]) -> None:
    """``resume=true`` continues the config the run saved, not only its overrides: the package's defaults
    or the primary config may have changed since. Keys only one side has are let through, so a run made
    by a version whose schema had fewer (or other) keys still resumes."""
    saved_file = run_dir / ".hydra" / "config.yaml"
    if not saved_file.is_file():
        return
    found = load_untrusted_yaml(saved_file)
    saved = dict(flatten(found if isinstance(found, Mapping) else {}, sep="."))
    now = dict(flatten(config, sep="."))
    differ = [k for k in saved if k in now and k != "resume" and str(saved[k]) != str(now[k])]
    if differ:
        shown = ", ".join(f"{k} (run: {saved[k]}, now: {now[k]})" for k in differ[:6])
        more = f" and {len(differ) - 6} more" if len(differ) > 6 else ""
        raise RunDirOwned(
            f"resume=true continues {run_dir} with the config it saved, and this composition differs: "
            f"{shown}{more}; resume it with the code and config that made it, or start a new run elsewhere"
        )


def resume_command(run_dir: Path) -> str:
    """A pasteable command that continues the run in ``run_dir`` with its own overrides."""
    words = ["townlet-train", f"hydra.run.dir={run_dir}", *(saved_overrides(run_dir) or []), "resume=true"]
    return shlex.join(words)  # quotes only what a shell would split or expand


def _key(override: str) -> str:
    return override.partition("=")[0].lstrip("+~")


def _as_dict(overrides: Any) -> dict[str, str]:
    return {_key(o): o.partition("=")[2] for o in overrides}


# ------------------------------------------------------------------------------------------- paths


def check_run_paths(cfg: Mapping[str, Any]) -> None:
    """``run_name`` and every logger file or folder name stay inside the run dir (no ``/``-escape, no
    ``..``)."""
    name = str(cfg.get("run_name", ""))
    if not _PLAIN.fullmatch(name) or ".." in name:
        raise ConfigError(f"run_name={name!r} must be a plain name (letters, digits, _ . - ; no '/' or '..')")
    loggers = cfg.get("logger") or {}
    for kind, node in loggers.items() if isinstance(loggers, Mapping) else ():
        for key in ("filename", "dirname"):
            inside = node.get(key) if isinstance(node, Mapping) else None
            if inside is not None and _escapes(str(inside)):
                raise ConfigError(
                    f"logger.{kind}.{key}={inside!r} must be a path inside the run dir (relative, no '..')"
                )


def check_hydra_paths(hydra: Any) -> None:
    """Hydra's own outputs stay inside the run dir: ``output_subdir`` and file log handlers."""
    if not isinstance(hydra, Mapping):
        return
    subdir = hydra.get("output_subdir")
    if subdir is not None and _escapes(str(subdir)):
        raise ConfigError(f"hydra.output_subdir={subdir!r} must be a folder inside the run dir (e.g. .hydra)")
    run_dir = str((hydra.get("run") or {}).get("dir") or "")
    for key in ("hydra_logging", "job_logging"):
        handlers = (hydra.get(key) or {}).get("handlers") or {}
        for name, handler in handlers.items():
            filename = handler.get("filename") if isinstance(handler, Mapping) else None
            if filename is None:
                continue
            inside = str(filename).removeprefix("${hydra.runtime.output_dir}/")
            if inside == str(filename) and run_dir and str(filename).startswith(run_dir.rstrip("/") + "/"):
                inside = str(filename)[len(run_dir.rstrip("/")) + 1 :]
            if inside == str(filename) or _escapes(inside):
                raise ConfigError(
                    f"hydra.{key}.handlers.{name}.filename={filename!r} must be inside the run dir "
                    "(${hydra.runtime.output_dir}/<name>)"
                )


def _escapes(relative: str) -> bool:
    return not relative or os.path.isabs(relative) or ".." in re.split(r"[/\\]", relative)
