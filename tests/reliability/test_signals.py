"""SIGINT and SIGTERM to a real ``townlet-train`` mid-training: the run ends *interrupted*, resumably.

Each case starts a tiny BC or PPO run in a subprocess, waits for its first ``checkpoints/last.pt``
(so training is under way), sends the signal and checks what the user and a scheduler see: exit
status 128 + signal, one line on stderr, ``run.json`` saying ``interrupted`` with the signal, the
checkpoint in place, no temp files; then ``resume=true`` finishes the run.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.torch

# Tiny runs that still train for a few seconds after their first checkpoint.
BC = ["experiment=smoke", "strategy.epochs=40", "strategy.early_stopping_patience=0"]
PPO = [
    "experiment=smoke",
    "strategy=ppo",
    "objective=loss_total",
    "strategy.n_steps=16",
    "strategy.total_steps=2560",
]
ARGS = {"bc": BC, "ppo": PPO}


def _default_sigint() -> None:
    # a test runner may ignore SIGINT in its workers; children inherit that, a user's shell does not
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_run(env: dict[str, str], run_dir: Path, args: list[str]) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "townlet.train", f"hydra.run.dir={run_dir}", *args]
    return subprocess.Popen(
        cmd,
        cwd=run_dir.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def wait_for_checkpoint(proc: subprocess.Popen[str], run_dir: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (run_dir / "checkpoints" / "last.pt").is_file():
        assert proc.poll() is None, f"run ended before its first checkpoint: {proc.communicate()}"
        assert time.monotonic() < deadline, "no checkpoint within the timeout"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("strategy", "sig", "resume"),
    [
        ("bc", signal.SIGTERM, True),
        ("ppo", signal.SIGINT, True),
        ("bc", signal.SIGINT, False),  # resuming twice per strategy adds time, not coverage
        ("ppo", signal.SIGTERM, False),
    ],
    ids=["bc-SIGTERM", "ppo-SIGINT", "bc-SIGINT", "ppo-SIGTERM"],
)
def test_signal_interrupts_then_resume_completes(
    cli_env: dict[str, str], tmp_path: Path, strategy: str, sig: signal.Signals, resume: bool
) -> None:
    run_dir = tmp_path / "run"
    args = [*ARGS[strategy], f"paths.data_dir={tmp_path / 'data'}", f"paths.state_dir={tmp_path / 'state'}"]
    proc = start_run(cli_env, run_dir, args)
    wait_for_checkpoint(proc, run_dir)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)

    assert proc.returncode == 128 + int(sig), stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert f"interrupted by {sig.name}" in lines[0] and "resume=true" in lines[0]
    assert "the last checkpoint is kept" in lines[0] and str(run_dir) in lines[0]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "interrupted" and record["signal"] == sig.name
    assert record["ended_at"] is not None and not (run_dir / "result.json").exists()
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    assert not list(run_dir.rglob("*.tmp"))
    if not resume:
        return

    resumed = subprocess.run(
        [sys.executable, "-m", "townlet.train", f"hydra.run.dir={run_dir}", *args, "resume=true"],
        cwd=tmp_path,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    final = json.loads((run_dir / "run.json").read_text())
    assert final["status"] == "completed" and final["resumed"] is True
    assert final["parent_run"] == record["run_id"] and final["signal"] is None
    result = json.loads((run_dir / "result.json").read_text())
    if strategy == "bc":
        assert result["epochs_run"] == 40  # the resumed run finished the planned epochs
    assert "resuming" in resumed.stdout


def test_handlers_only_in_the_main_thread_and_restored() -> None:
    """Worker threads (joblib's threading backend, a notebook's executor) cannot take signals."""
    import threading

    from townlet.runs.interrupt import StopSignals

    before = signal.getsignal(signal.SIGTERM)
    seen: list[tuple[signal.Signals, ...]] = []
    worker = threading.Thread(target=lambda: seen.append(StopSignals().install().installed))
    worker.start()
    worker.join()
    assert seen == [()] and signal.getsignal(signal.SIGTERM) is before

    if before is not signal.SIG_DFL:
        pytest.skip("the test runner handles SIGTERM itself")
    guard = StopSignals().install()
    try:
        assert signal.SIGTERM in guard.installed and signal.getsignal(signal.SIGTERM) is not before
    finally:
        guard.restore()
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_launcher_s_own_handler_is_left_alone() -> None:
    """submitit handles SIGTERM itself (requeue on preemption): a run must not take it over."""
    from townlet.runs.interrupt import StopSignals

    def launcher_handler(signum: int, frame: object) -> None:
        return None

    previous = signal.signal(signal.SIGTERM, launcher_handler)
    try:
        guard = StopSignals().install()
        assert signal.SIGTERM not in guard.installed
        assert signal.getsignal(signal.SIGTERM) is launcher_handler
        guard.restore()
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_sigterm_in_process_raises_interrupt_and_names_the_signal() -> None:
    import os

    from townlet.runs.interrupt import StopSignals, interrupt_exit_code, interrupt_signal

    guard = StopSignals().install()
    if signal.SIGTERM not in guard.installed:  # never send SIGTERM to a runner that handles it itself
        guard.restore()
        pytest.skip("the test runner handles SIGTERM itself")
    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs at the next bytecode; never reached
        os.kill(os.getpid(), signal.SIGTERM)  # a second signal while recording: ignored
    finally:
        guard.restore()
    assert interrupt_signal(caught.value) == "SIGTERM" and interrupt_exit_code(caught.value) == 143


def test_message_says_when_there_is_no_checkpoint_yet(tmp_path: Path) -> None:
    from townlet.runs.interrupt import (
        TrainingInterrupted,
        as_run_interrupted,
        interrupt_exit_code,
        interrupt_message,
    )

    early = as_run_interrupted(TrainingInterrupted(signal.SIGTERM), tmp_path)
    assert interrupt_exit_code(early) == 143 and "no checkpoint was written yet" in interrupt_message(early)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"x")
    late = as_run_interrupted(KeyboardInterrupt(), tmp_path)  # Python's own Ctrl-C
    assert interrupt_exit_code(late) == 130 and "the last checkpoint is kept" in interrupt_message(late)
    assert interrupt_message(KeyboardInterrupt()) == "interrupted by SIGINT"
