"""File-system faults: a file where the run dir should be, a read-only output dir, a full disk.

Each ends in one line on stderr naming the path and what to do (exit 1), ``run.json`` says
``failed`` wherever it can still be written, and nothing is left half-written. The full disk is
simulated portably (a write that fails with ENOSPC) and, where this process may mount, for real on
a 2 MiB tmpfs.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import support_searchpath
from townlet.runs.rundir import describe_os_error, io_fault_message

ECHO = [support_searchpath(), "strategy=echo", "objective=accuracy"]

# Runs ``townlet-train`` with writes of result.json failing as on a full disk.
FULL_DISK_DRIVER = """
import errno, sys
import townlet.runs.atomic as atomic
from townlet.cli.train import main

real = atomic._write_all

def full(handle, data, target):
    if target.name == "result.json":
        raise OSError(errno.ENOSPC, "No space left on device")
    real(handle, data, target)

atomic._write_all = full
sys.argv = ["townlet-train", *sys.argv[1:]]
main()
"""


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_run_dir_under_a_regular_file(run_cli, tmp_path: Path) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    proc = run_cli(*ECHO, f"hydra.run.dir={blocker / 'run'}")
    assert proc.returncode == 1
    line = _one_line(proc.stderr)
    assert str(blocker / "run") in line and "regular file" in line and "hydra.run.dir=" in line
    assert blocker.read_text() == "not a folder"


@contextlib.contextmanager
def read_only_dir(path: Path) -> Iterator[Path]:
    """``path`` unwritable: by its mode, or (as root, whom modes do not stop) a read-only tmpfs."""
    path.mkdir()
    path.chmod(0o555)
    try:
        if not os.access(path, os.W_OK):
            yield path
            return
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)], check=False
        )
        if mounted.returncode != 0:
            pytest.skip("cannot make a directory read-only here (root without mount rights)")
        try:
            yield path
        finally:
            subprocess.run(["umount", str(path)], check=False)
    finally:
        path.chmod(0o755)


def test_read_only_output_dir(run_cli, tmp_path: Path) -> None:
    with read_only_dir(tmp_path / "ro") as ro:
        proc = run_cli(*ECHO, f"hydra.run.dir={ro / 'run'}")
        assert proc.returncode == 1
        line = _one_line(proc.stderr)
        assert str(ro / "run") in line and ("read-only" in line or "not writable" in line)
        assert "hydra.run.dir=" in line and not (ro / "run").exists()


def test_full_disk_fails_the_run_with_one_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", FULL_DISK_DRIVER, *ECHO, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    line = _one_line(proc.stderr)
    assert "no space left" in line and str(run_dir / "result.json") in line
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "failed" and "No space left" in record["error"]
    assert not (run_dir / "result.json").exists() and not list(run_dir.rglob("*.tmp"))


def test_full_disk_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import townlet.runs.atomic as atomic

    target = tmp_path / "state.json"
    target.write_text('{"old": true}')

    def full(handle: object, data: bytes, path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "_write_all", full)
    with pytest.raises(OSError) as caught:
        atomic.atomic_write_json(target, {"new": True})
    assert caught.value.filename == str(target)  # the write names the file it could not write
    assert target.read_text() == '{"old": true}' and not list(tmp_path.glob(".*.tmp"))


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], check=False
    )
    if mounted.returncode != 0:
        pytest.skip("mount -t tmpfs is not permitted here")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


@pytest.mark.torch
def test_real_full_disk_at_the_first_checkpoint(run_cli, tiny_tmpfs: Path, tmp_path: Path) -> None:
    """A BC checkpoint (~5 MB) does not fit on 2 MiB: the run fails at its first checkpoint."""
    run_dir = tiny_tmpfs / "run"
    proc = run_cli(
        "experiment=smoke",
        f"hydra.run.dir={run_dir}",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.state_dir={tmp_path / 'state'}",
    )
    assert proc.returncode == 1
    line = _one_line(proc.stderr)
    assert "no space left" in line and str(run_dir / "checkpoints") in line
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert not list(run_dir.rglob("*.tmp")) and not list((run_dir / "checkpoints").iterdir())


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.ENOSPC, "no space left on the device holding /out/x"),
        (errno.EROFS, "/out/x is on a read-only file system"),
        (errno.EACCES, "/out/x is not writable"),
        (errno.ENOTDIR, "one of its parents is a regular file"),
        (errno.EEXIST, "a file of that name exists"),
    ],
)
def test_messages_name_the_path_and_the_fix(code: int, expected: str) -> None:
    exc = OSError(code, os.strerror(code), "/out/x")
    assert expected in describe_os_error(exc) and "hydra.run.dir=" in describe_os_error(exc)
    wrapped = RuntimeError("while saving")
    wrapped.__cause__ = exc
    assert io_fault_message(wrapped) == describe_os_error(exc)


def test_other_os_errors_keep_their_traceback() -> None:
    assert io_fault_message(OSError(errno.EIO, "Input/output error", "/dev/sda")) is None
    assert io_fault_message(ValueError("bad")) is None
