"""Temp files of a killed write: left on disk by SIGKILL, removed by the next run in that directory."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import support_searchpath
from townlet.dto import RunRecord
from townlet.runs.atomic import atomic_write_bytes
from townlet.runs.record import is_stale
from townlet.runs.rundir import RunDir, remove_orphaned_temp_files

# A writer that stalls half-way through the payload, so the test can SIGKILL it mid-write.
SLOW_WRITER = """
import sys, time
from pathlib import Path
import townlet.runs.atomic as atomic

def stall(handle, data, target):
    handle.write(data[: len(data) // 2])
    handle.flush()
    time.sleep(60)

atomic._write_all = stall
atomic.atomic_write_bytes(Path(sys.argv[1]), b"x" * 1_000_000)
"""


def test_sigkill_mid_write_leaves_old_file_and_an_orphan_the_next_run_removes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    atomic_write_bytes(ckpt, b"old checkpoint")
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(ckpt)])
    deadline = time.monotonic() + 60
    while not [p for p in ckpt.parent.glob(".last.pt.*.tmp") if p.stat().st_size > 0]:
        assert proc.poll() is None and time.monotonic() < deadline, "the writer never started"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    orphans = list(ckpt.parent.glob(".last.pt.*.tmp"))
    assert len(orphans) == 1 and ckpt.read_bytes() == b"old checkpoint"  # nothing half-written
    with caplog.at_level(logging.WARNING, logger="townlet.runs"):
        RunDir(tmp_path / "run").prepare(resume=True)
    assert not orphans[0].exists() and ckpt.read_bytes() == b"old checkpoint"
    assert "removed 1 temp file" in caplog.text and "checkpoints/.last.pt." in caplog.text


def test_only_dot_tmp_files_are_removed(tmp_path: Path) -> None:
    (tmp_path / "plots").mkdir()
    doomed = [tmp_path / ".run.json.a1b2c3.tmp", tmp_path / "plots" / ".training_curves.png.tmp"]
    kept = [tmp_path / "notes.tmp", tmp_path / "run.json", tmp_path / ".hidden"]
    for path in [*doomed, *kept]:
        path.write_text("x")
    (tmp_path / ".cache.tmp").mkdir()  # a directory is never ours to delete
    assert sorted(remove_orphaned_temp_files(tmp_path)) == sorted(doomed)
    assert all(p.exists() for p in kept) and (tmp_path / ".cache.tmp").is_dir()


def test_failed_atomic_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import townlet.runs.atomic as atomic

    target = tmp_path / "result.json"
    target.write_text("old")

    def interrupted(handle: object, data: bytes, path: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic, "_write_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic.atomic_write_text(target, "new")
    assert target.read_text() == "old" and not list(tmp_path.glob(".*.tmp"))


def _record(**changes: object) -> RunRecord:
    base = {
        "run_id": "r1",
        "status": "running",
        "started_at": datetime.now(UTC),
        "seed": 0,
        "config_hash": "0" * 16,
        "run_dir": "/x",
        "host": os.uname().nodename,
        "pid": os.getpid(),
        "python": "3.11",
    }
    return RunRecord.model_validate({**base, **changes})


def test_running_record_of_a_dead_process_is_stale() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert is_stale(_record(pid=gone.pid))
    assert not is_stale(_record())  # this process is alive
    assert not is_stale(_record(pid=gone.pid, status="interrupted"))
    assert not is_stale(_record(pid=gone.pid, host="another-node"))  # cannot tell from here


def test_next_cli_run_removes_orphans_and_says_so(run_cli, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    orphan = run_dir / "checkpoints" / ".last.pt.k1ll3d.tmp"
    orphan.write_bytes(b"\0" * 4096)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (run_dir / "run.json").write_text(_record(pid=gone.pid, run_dir=str(run_dir)).model_dump_json())

    proc = run_cli(
        support_searchpath(), "strategy=echo", f"hydra.run.dir={run_dir}", "objective=accuracy", "resume=true"
    )
    assert proc.returncode == 0, proc.stderr
    assert not orphan.exists() and not list(run_dir.rglob("*.tmp"))
    log = (run_dir / "train.log").read_text()
    assert "was killed" in log and "removed 1 temp file" in log
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
