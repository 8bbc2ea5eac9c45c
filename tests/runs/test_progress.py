"""The progress display: totals from the run's plan, plain lines off a terminal, a live bar on one.

The live bar is checked on a real pseudo-terminal (``pty``); the same run piped must leave no
carriage return or escape code in stdout, stderr or train.log.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import support_searchpath
from townlet.config.plan import RunPlan, ppo_plan
from townlet.runs.loggers import MetricsFanout
from townlet.runs.progress import Counter, LogLines, ProgressDisplay, display_kind, label, position, summary
from townlet.runs.sinks import MetricsSink

CONTROL = ("\r", "\x1b")


def test_positions_count_units_across_the_plans_stages() -> None:
    ppo = {"n_steps": 16, "total_steps": 1000, "num_agents": 4}
    assert ppo_plan(**ppo, num_envs=2).units == 8  # ceil(1000 / (16 * 2 * 4))
    assert ppo_plan(**ppo, num_envs=1).units == 16
    assert ppo_plan(**ppo, num_envs=2, replay_epochs=3).units == 3
    plan = RunPlan(units=7, stages=(("bc", 2), ("ppo", 5)))
    assert position(plan, {"stage_index": 1, "stage": "ppo", "iteration": 3, "epoch": 3}) == 5
    assert label(plan, {"stage_index": 1}) == "stage 2/2 ppo"
    assert position(plan, {"anneal_status": "PASS"}) is None  # closes no epoch: not counted
    assert position(RunPlan(units=None), {"epoch": 4}) == 4 and label(RunPlan(units=None), {"epoch": 4}) == ""


def test_summary_shows_loss_accuracy_return_and_rate() -> None:
    bc = {"train_loss": 0.5, "val_accuracy": 0.0, "samples_per_sec": 12345.6}
    assert summary(bc) == "loss 0.5000 acc 0.000 12,346 samples/s"
    ppo = {"loss_total": float("nan"), "episode_return_mean": -1.5, "sps": 4096.0, "eval_return_mean": None}
    assert summary(ppo) == "return -1.50 4,096 agent-steps/s"


def test_plain_lines_are_periodic_and_end_with_the_last_unit() -> None:
    now = [0.0]
    lines: list[str] = []
    display = LogLines(RunPlan(4, "epoch"), every_sec=10, emit=lines.append, clock=lambda: now[0])
    for epoch, t in ((1, 1.0), (2, 2.0), (3, 12.0), (4, 13.0)):
        now[0] = t
        display.show({"epoch": epoch, "train_loss": 1.0 / epoch})
    assert [line.split(" | ")[0] for line in lines] == [
        "progress: epoch 1/4 (25%)",
        "progress: epoch 3/4 (75%)",  # 2 came within every_sec of 1
        "progress: epoch 4/4 (100%)",  # the last unit always
    ]
    assert "ETA" not in lines[0] and "ETA 00:03" in lines[1] and "loss 0.3333" in lines[1]
    assert not any(c in line for line in lines for c in CONTROL)


class _Seen(MetricsSink):
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def write(self, record: Any) -> None:
        self.records.append(dict(record))


class _Shown(ProgressDisplay):
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def show(self, record: Any) -> None:
        self.records.append(dict(record))


def test_the_display_sees_every_record_the_loggers_only_the_cadence() -> None:
    sink, shown = _Seen(), _Shown()
    fanout = MetricsFanout([sink], log_frequency=2, display=shown)
    for epoch in range(1, 5):
        fanout.log({"epoch": epoch})
    fanout.close()
    assert [r["epoch"] for r in shown.records] == [1, 2, 3, 4]
    assert [r["epoch"] for r in sink.records] == [2, 4]
    assert sink.records[0]["wall_sec"] == shown.records[1]["wall_sec"]  # one stamp for all


def test_display_kind_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert display_kind("auto", multirun=False) == "lines"
    assert display_kind("bar", multirun=False) == "lines"
    assert display_kind("off", multirun=False) == "off"
    assert display_kind("auto", multirun=True) == "lines"


def test_capture_counter_writes_plain_lines_into_a_pipe() -> None:
    stream = io.StringIO()
    counter = Counter(100, "tick", "capture", stream=stream, every_sec=3600)
    for done in range(10, 101, 10):
        counter.update_to(done)
    counter.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("capture: 10/100 ticks (10%)")
    assert lines[-1].startswith("capture: 100/100 ticks (100%)")
    assert not any(c in stream.getvalue() for c in CONTROL)


def _echo_args(run_dir: Path) -> list[str]:
    return [support_searchpath(), "strategy=echo", "objective=accuracy", f"hydra.run.dir={run_dir}"]


def test_a_terminal_gets_a_live_bar(cli_env: dict[str, str], tmp_path: Path) -> None:
    pty = pytest.importorskip("pty")
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # rows, columns
    env = {**cli_env, "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "townlet.train", *_echo_args(tmp_path / "run")],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=tmp_path,
        env=env,
    )
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO once the child has closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=120) == 0
    screen = b"".join(chunks).decode(errors="replace")
    redraws = screen.replace("\r\n", "\n")  # the terminal itself turns each newline into CR LF
    assert "\r" in redraws and "3/3" in redraws and "loss 0.3333" in redraws
    assert "progress: epoch" not in screen  # the bar replaces the plain lines
    log = (tmp_path / "run" / "train.log").read_text()
    assert not any(c in log for c in CONTROL)


def test_a_piped_run_has_plain_lines_only(run_cli: Any, tmp_path: Path) -> None:
    proc = run_cli(*_echo_args(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (tmp_path / "run" / "train.log").read_text()
    for text in (proc.stdout, proc.stderr, log):
        assert not any(c in text for c in CONTROL)
    assert "progress: epoch 1/3 (33%)" in log and "progress: epoch 3/3 (100%)" in log
    assert "progress: epoch 3/3 (100%)" in proc.stdout


def test_capture_into_a_pipe_has_no_carriage_returns(run_cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "data"
    proc = run_cli(
        f"out={out}", "ticks=50", "world.num_envs=1", "world.num_agents=2", module="townlet.cli.capture"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "capture: 50/50 ticks (100%)" in proc.stderr
    assert not any(c in proc.stdout + proc.stderr for c in CONTROL)
