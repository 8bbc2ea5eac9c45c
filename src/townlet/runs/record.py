"""``run.json`` (``RunRecord``): written as ``running`` before training starts and rewritten
atomically when the run completes, fails or is interrupted, so a crashed run is always recognisable.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata as md
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from townlet.dto import RunRecord, RunStatus
from townlet.runs.atomic import atomic_write_text


def config_hash(config: Any) -> str:
    """sha256 (16 hex chars) of a resolved config as canonical JSON; stable across key order."""
    text = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def package_versions() -> dict[str, str]:
    """From package metadata: nothing is imported, torch included."""
    versions = {"python": platform.python_version()}
    for name in ("townlet-train", "torch", "numpy", "hydra-core", "omegaconf", "pydantic"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[name] = md.version(name)
    return versions


#: Hooks and the file-system monitor run programs named in git's config; a provenance probe needs neither.
_GIT_SAFE_FLAGS = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null")
_GIT_ENV_KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


def git_env() -> dict[str, str]:
    """No ``GIT_*`` variables (a snapshot's ``hydra.job.env_set`` may set ones that make ``git status``
    run a program), no prompts, no system config."""
    env = {key: os.environ[key] for key in _GIT_ENV_KEEP if key in os.environ}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1")
    return env


def git_info(path: str | Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the repository containing ``path``; (None, None) outside a repo or before
    its first commit. One ``git status`` answers both (its ``# branch.oid`` header is the commit)."""
    command = ["git", *_GIT_SAFE_FLAGS, "status", "--porcelain=v2", "--branch", "--untracked-files=no"]
    try:
        run = subprocess.run(command, cwd=path, env=git_env(), capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None, None
    lines = run.stdout.splitlines()
    commit = next((line.split()[-1] for line in lines if line.startswith("# branch.oid ")), "(initial)")
    if run.returncode != 0 or commit == "(initial)":
        return None, None
    return commit, any(not line.startswith("#") for line in lines)


def slurm_ids(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The SLURM job, array and node (empty outside SLURM): a sweep's rows match ``sacct`` and its logs."""
    env = dict(os.environ) if env is None else env
    if not env.get("SLURM_JOB_ID"):
        return {}
    task = env.get("SLURM_ARRAY_TASK_ID", "")
    return {
        "slurm_job_id": env["SLURM_JOB_ID"],
        "slurm_array_job_id": env.get("SLURM_ARRAY_JOB_ID") or None,
        "slurm_array_task_id": int(task) if task.isdigit() else None,
        "node": env.get("SLURMD_NODENAME") or None,
    }


def is_multirun(hydra: Any) -> bool:
    return hydra is not None and str(hydra.mode) == "RunMode.MULTIRUN"


def strategy_name(cfg: Any, hydra: Any) -> str:
    """The strategy as the user chose it (``strategy=ppo``), else its class name (a snapshot's config)."""
    choices = dict(hydra.runtime.choices) if hydra is not None else {}
    return str(choices.get("strategy") or str(cfg.strategy.get("_target_", "?")).rsplit(".", 1)[-1])


class RunRecorder:
    def __init__(self, path: str | Path, record: RunRecord) -> None:
        self.path = Path(path)
        self.record = record

    @classmethod
    def start(cls, run_dir: str | Path, *, config: Any, **fields: Any) -> RunRecorder:
        """Write the record with status ``running``: the provenance found here plus ``fields``."""
        commit, dirty = git_info(Path(__file__).resolve().parents[3])
        now = datetime.now(UTC)
        record = RunRecord(
            run_id=f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}",  # sortable and collision-free
            status="running",
            started_at=now,
            config_hash=config_hash(config),
            run_dir=str(Path(run_dir).resolve()),
            host=socket.gethostname(),
            pid=os.getpid(),
            python=sys.version.split()[0],
            versions=package_versions(),
            git_commit=commit,
            git_dirty=dirty,
            command=list(sys.argv),
            **slurm_ids(),
            **fields,
        )
        recorder = cls(Path(run_dir) / "run.json", record)
        recorder.write()
        return recorder

    def write(self) -> None:
        atomic_write_text(self.path, self.record.model_dump_json(indent=2) + "\n")

    def update(self, **changes: Any) -> None:
        """Rewrite with ``changes`` (re-validated, so a bad value fails loudly)."""
        self.record = RunRecord.model_validate({**self.record.model_dump(), **changes})
        self.write()

    def finish(self, status: RunStatus, *, error: BaseException | None = None, **changes: Any) -> None:
        ended = datetime.now(UTC)
        if error is not None:
            changes.setdefault("error", str(error) or type(error).__name__)
            changes.setdefault("error_type", f"{type(error).__module__}.{type(error).__qualname__}")
        duration = max(0.0, (ended - self.record.started_at).total_seconds())
        try:
            self.update(status=status, ended_at=ended, duration_sec=duration, **changes)
        except OSError as exc:  # a full or read-only disk: the run's own error is the one to report
            logging.getLogger("townlet.runs").warning(
                "could not record status %r in %s (%s); it still says %r", status, self.path, exc, "running"
            )


def is_stale(record: RunRecord) -> bool:
    """A ``running`` record whose process is gone (SIGKILL, OOM); False on any other host."""
    if record.status != "running" or record.host != socket.gethostname():
        return False
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by someone else
        pass
    return False
