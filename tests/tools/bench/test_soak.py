"""``townlet-bench soak``: the consistency checks catch lying run dirs, and a tiny soak passes them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from townlet.dto import RunRecord
from townlet_tools.bench import soak


def write_record(run_dir: Path, status: str, *, pid: int | None = None, signal: str | None = None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    record = RunRecord(
        run_id="r",
        status=status,  # type: ignore[arg-type]
        started_at=datetime.now(UTC),
        seed=0,
        config_hash="0" * 16,
        run_dir=str(run_dir),
        host=os.uname().nodename,
        pid=pid if pid is not None else os.getpid(),
        python="3.11",
        signal=signal,
    )
    (run_dir / "run.json").write_text(record.model_dump_json())


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_interrupted_run_must_say_so_with_its_signal(tmp_path: Path) -> None:
    write_record(tmp_path, "interrupted", signal="SIGTERM")
    assert soak.check_first("SIGTERM", 143, "townlet-train: interrupted by SIGTERM\n", tmp_path) == (
        "interrupted",
        [],
    )
    write_record(tmp_path, "running")  # the bug this guards against: SIGTERM left 'running'
    outcome, problems = soak.check_first("SIGTERM", 143, "x\n", tmp_path)
    assert outcome == "interrupted" and problems == ["run.json 'running'/None"]
    write_record(tmp_path, "interrupted", signal="SIGINT")
    _, problems = soak.check_first("SIGINT", 130, "Traceback (most recent call last):\n  ...\n", tmp_path)
    assert problems == ["2 stderr lines"]
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n')  # trained, yet nothing to resume from
    _, problems = soak.check_first("SIGINT", 130, "one line\n", tmp_path)
    assert problems == ["trained (metrics.jsonl has lines) but no checkpoint to resume from"]
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"x")
    assert soak.check_first("SIGINT", 130, "one line\n", tmp_path) == ("interrupted", [])


def test_killed_run_must_be_stale_and_leftovers_are_reported(tmp_path: Path) -> None:
    write_record(tmp_path, "running", pid=dead_pid())
    assert soak.check_first("SIGKILL", -9, "", tmp_path) == ("killed", [])
    write_record(tmp_path, "running")  # this (live) process: not stale
    assert soak.check_first("SIGKILL", -9, "", tmp_path)[1] != []
    (tmp_path / ".last.pt.x.tmp").write_text("x")
    assert "temp files left: .last.pt.x.tmp" in soak.check_follow_up(0, "", tmp_path)


def test_completed_needs_a_valid_result(tmp_path: Path) -> None:
    write_record(tmp_path, "completed")
    (tmp_path / "result.json").write_text('{"kind": "bc"}')
    outcome, problems = soak.check_first("none", 0, "", tmp_path)
    assert outcome == "completed" and "result.json is not a valid result" in problems[0]


def test_plan_alternates_strategies_and_mixes_signals() -> None:
    plan = soak.plan_runs(20, seed=3)
    assert [p.strategy for p in plan[:4]] == ["bc", "ppo", "bc", "ppo"]
    assert sorted(p.action for p in plan) == sorted(soak.ACTIONS * 5)
    assert {p.action for p in soak.plan_runs(3, seed=0)} == {"SIGKILL", "SIGTERM", "none"}


@pytest.mark.torch
@pytest.mark.slow
def test_tiny_soak_is_consistent(tmp_path: Path) -> None:
    """Three real runs (a SIGKILL, a SIGTERM, one left alone) and their resumes: 0 inconsistencies."""
    from townlet_tools.bench import main

    out = tmp_path / "soak.json"
    assert main(["soak", "--runs", "3", "--json", str(out)]) == 0
    section = json.loads(out.read_text())["sections"]["soak"]
    summary = section["summary"]
    assert section["consistent"] is True and summary["inconsistencies"] == 0 and summary["runs"] == 3
    assert {r["signal"] for r in section["rows"]} == {"SIGKILL", "SIGTERM", "none"}
    assert all(r["child_peak_rss_mb"] > 0 for r in section["rows"])
    assert summary["parent_rss_growth_mb"] is not None


def test_soak_is_not_part_of_all() -> None:
    import townlet_tools.bench as bench

    assert "soak" in bench.available_sections() and "soak" in bench._NOT_IN_ALL
    assert bench._parser().parse_args(["soak", "--runs", "7"]).runs == 7
