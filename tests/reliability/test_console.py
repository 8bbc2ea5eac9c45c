"""Every ``townlet-*`` entry (``townlet.cli._common.console``): signals and closed pipes end quietly.

SIGINT/SIGTERM → one stderr line and 130/143; a reader that closed stdout → exit 141 and no
``BrokenPipeError`` text; output files are written through symlinks, devices and ``-``.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from townlet.cli._common import PIPE_CLOSED_EXIT, console, run_command
from townlet.runs.atomic import atomic_write_bytes

BIN = Path(sys.executable).parent


def _closed_pipe_run(*cmd: str) -> subprocess.CompletedProcess[str]:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes its first byte
    try:
        return subprocess.run(cmd, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)


CHATTY = [["townlet-train", "--schema"], ["townlet-train", "--help"], ["townlet-bench", "list"]]


@pytest.mark.parametrize("args", CHATTY)
def test_closed_pipe_is_quiet(args: list[str]) -> None:
    proc = _closed_pipe_run(str(BIN / args[0]), *args[1:])
    assert proc.returncode == PIPE_CLOSED_EXIT
    assert proc.stderr == ""


def test_broken_pipe_is_not_reported_as_a_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    def body() -> int:
        raise BrokenPipeError(32, "Broken pipe")

    entry = console("townlet-x")(lambda: run_command("townlet-x", body))
    assert entry() == PIPE_CLOSED_EXIT
    assert "error" not in capsys.readouterr().err


SCRIPTS = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_console_script_goes_through_console(name: str) -> None:
    module, attr = SCRIPTS[name].split(":")
    entry = getattr(importlib.import_module(module), attr)
    wrapper = console("townlet-x")(lambda: 0)
    assert entry.__code__ is wrapper.__code__  # so the rows below hold for every command


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_gives_one_line_and_128_plus_signal(sig: signal.Signals, code: int) -> None:
    script = (
        "import os, signal, sys, time\n"
        "from townlet.cli._common import console\n"
        "from townlet.runs.atomic import atomic_write_text\n"
        "@console('townlet-x')\n"
        "def main():\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
        "    atomic_write_text(sys.argv[1], 'done')\n"
        "sys.exit(main())\n"
    )
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"console-{os.getpid()}-{sig.name}.txt"
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert err == f"townlet-x: interrupted by {sig.name}\n"
    assert not out.exists()


def test_output_written_through_symlink(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to("real.txt")
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and (tmp_path / "real.txt").read_bytes() == b"new"


def test_output_to_a_fifo_and_to_dash(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    atomic_write_bytes(fifo, b"through")
    assert reader.communicate(timeout=30)[0] == b"through"
    assert fifo.exists() and not fifo.is_file()  # still the FIFO, not replaced by a file
    atomic_write_bytes("-", b"to stdout")
    assert capfd.readouterr().out == "to stdout"


def _capture(monkeypatch: pytest.MonkeyPatch, *args: str) -> object:
    """``townlet-capture ARGS`` in-process; its exit code."""
    from townlet.cli import capture

    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    monkeypatch.setattr(sys, "argv", ["townlet-capture", *args])
    with pytest.raises(SystemExit) as info:
        capture.main()
    return info.value.code


def test_capture_refuses_a_dataset_dir_before_simulating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    assert _capture(monkeypatch, f"out={out}", "ticks=2", "progress=false") == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"townlet-capture: error: out={out} already exists and holds files; "
        "choose another out= or pass overwrite=true"
    ]
    assert (
        sorted(p.name for p in tmp_path.iterdir()) == ["ds"] and (out / "manifest.json").read_text() == "{}"
    )


def test_capture_overwrite_replaces_only_a_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``overwrite=true`` on a run dir (or any folder without a manifest) would delete it whole."""
    from townlet.replay.storage import DatasetWriter
    from townlet.world.spec import ObservationSpec

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "result.json").write_text("precious")
    assert _capture(monkeypatch, f"out={run}", "ticks=2", "overwrite=true") == 1
    assert capsys.readouterr().err.splitlines() == [
        f"townlet-capture: error: {run}: holds files but no manifest.json, and overwriting replaces only "
        "a dataset (choose another path)"
    ]
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "result.json"]
    with pytest.raises(ValueError, match="replaces only a dataset"):
        DatasetWriter(run, ObservationSpec(("a",), 3, ("f",)), overwrite=True)  # the writer refuses too
    assert (run / "result.json").read_text() == "precious"


class _ClosedPipe:
    """A stdout whose reader has gone: every write fails as a closed pipe does."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        pass


def test_dataset_inspect_into_a_closed_pipe_is_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from townlet.cli.dataset import main as dataset_main
    from townlet.rollout.collect import RolloutCaptureService
    from townlet.world import load_world_config

    world = load_world_config("default", {"num_envs": 1, "num_agents": 2, "episode_length": 10})
    RolloutCaptureService().capture(world, ticks=2, output_dir=tmp_path / "ds")
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert dataset_main(["inspect", str(tmp_path / "ds")]) == PIPE_CLOSED_EXIT
    assert capsys.readouterr().err == ""
