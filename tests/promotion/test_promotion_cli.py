"""``townlet-promote``: verdicts, reasons, exit codes, release moves and error handling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from townlet.cli.promote import main
from townlet.promotion.state import PromotionService


@pytest.fixture(autouse=True)
def _no_state_dir_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOWNLET_STATE_DIR", raising=False)


def make_run(root: Path, name: str, stages: list[dict], status: str) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "checkpoints").mkdir()
    payload = {
        "status": status,
        "stages": stages,
        "final_checkpoint": str(run / "checkpoints" / "last.pt"),
        "state_dir": str(root / "state"),
    }
    (run / "anneal_results.json").write_text(json.dumps(payload))
    return run


PASS_STAGES = [{"cycle": 0, "mode": "bc", "passed": True}, {"cycle": 1, "mode": "ppo"}]
HOLD_STAGES = [
    {"cycle": 0, "mode": "bc", "passed": True},
    {"cycle": 1, "mode": "ppo", "anneal_loss_flag": True, "anneal_intensity_flag": True},
]
FAIL_STAGES = [{"cycle": 0, "mode": "bc", "passed": False, "rolled_back": True}]


def record(tmp_path: Path, run: Path, status: str) -> None:
    """What an anneal run does at its end."""
    PromotionService(tmp_path / "state").record_evaluation(
        status, run_dir=run.resolve(), checkpoint=run / "checkpoints" / "last.pt"
    )


def evaluate(capsys: pytest.CaptureFixture[str], run: Path, *extra: str) -> tuple[int, dict]:
    code = main(["--format", "json", "evaluate", str(run), *extra])
    return code, json.loads(capsys.readouterr().out)


def test_two_pass_runs_promote_and_a_hold_in_between_resets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r1 = make_run(tmp_path, "r1", PASS_STAGES, "PASS")
    record(tmp_path, r1, "PASS")
    code, out = evaluate(capsys, r1)
    assert (code, out["verdict"], out["reasons"]) == (1, "HOLD", ["candidate_not_ready"])

    r2 = make_run(tmp_path, "r2", PASS_STAGES, "PASS")
    record(tmp_path, r2, "PASS")
    code, out = evaluate(capsys, r2)
    assert (code, out["verdict"], out["reasons"], out["pass_streak"]) == (0, "PROMOTE", [], 2)
    # r1 is not the ready candidate (r2 is).
    assert evaluate(capsys, r1)[0] == 1

    r3 = make_run(tmp_path, "r3", HOLD_STAGES, "HOLD")
    record(tmp_path, r3, "HOLD")
    code, out = evaluate(capsys, r3)
    assert (code, out["verdict"]) == (1, "HOLD")
    assert out["reasons"] == ["loss_flag_cycle_1", "intensity_flag_cycle_1"]
    assert out["pass_streak"] == 0

    r4 = make_run(tmp_path, "r4", PASS_STAGES, "PASS")
    record(tmp_path, r4, "PASS")
    assert evaluate(capsys, r4)[1]["reasons"] == ["candidate_not_ready"]


def test_return_flag_holds_with_its_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stages = [
        {"cycle": 0, "mode": "bc", "passed": True, "mean_return": -11.0},
        {"cycle": 1, "mode": "ppo", "mean_return": -10.9, "anneal_return_flag": False},
        {"cycle": 2, "mode": "ppo", "mean_return": -12.0, "anneal_return_flag": True, "rolled_back": True},
    ]
    run = make_run(tmp_path, "r", stages, "HOLD")
    record(tmp_path, run, "HOLD")
    code, out = evaluate(capsys, run)
    assert (code, out["verdict"], out["reasons"]) == (1, "HOLD", ["return_flag_cycle_2"])


def test_fail_exits_2_and_dry_run_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path, "bad", FAIL_STAGES, "FAIL")
    code, out = evaluate(capsys, run)
    assert (code, out["verdict"], out["reasons"]) == (2, "FAIL", ["bc_stage_failed_cycle_0"])
    code, out = evaluate(capsys, run, "--dry-run")
    assert (code, out["verdict"]) == (0, "FAIL")


def test_human_output_and_state_dir_option_after_the_subcommand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(tmp_path, "r", FAIL_STAGES, "FAIL")
    other = tmp_path / "elsewhere"
    assert main(["evaluate", str(run), "--state-dir", str(other)]) == 2
    text = capsys.readouterr().out
    assert text.startswith("FAIL")
    assert "bc_stage_failed_cycle_0" in text
    assert main(["status", "--state-dir", str(other)]) == 0
    assert "pass_streak" in capsys.readouterr().out


def test_promote_rollback_and_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = str(tmp_path / "state")
    r1 = make_run(tmp_path, "r1", PASS_STAGES, "PASS")
    record(tmp_path, r1, "PASS")
    assert main(["--state-dir", state, "promote", str(r1)]) == 3  # not ready yet
    assert "no candidate is ready" in capsys.readouterr().err
    r2 = make_run(tmp_path, "r2", PASS_STAGES, "PASS")
    record(tmp_path, r2, "PASS")
    assert main(["--state-dir", state, "promote", str(r2)]) == 0
    assert "promoted" in capsys.readouterr().out
    assert main(["--state-dir", state, "--format", "json", "status"]) == 0
    snap = json.loads(capsys.readouterr().out)
    assert snap["state"] == "promoted"
    assert snap["current_release"]["checkpoint"] == str(r2 / "checkpoints" / "last.pt")
    assert main(["--state-dir", state, "promote", str(r1), "--force"]) == 0
    assert main(["--state-dir", state, "rollback"]) == 0
    capsys.readouterr()
    assert main(["--state-dir", state, "--format", "json", "status", "--history", "10"]) == 0
    snap = json.loads(capsys.readouterr().out)
    assert snap["current_release"]["run_dir"] == str(r2.resolve())
    assert [e["event"] for e in snap["history"]][-3:] == ["promote", "promote", "rollback"]


def test_errors_are_one_line_with_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tmp_path / "missing")]) == 3
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "notanneal").mkdir()
    assert main(["evaluate", str(tmp_path / "notanneal")]) == 3
    assert "strategy=anneal" in capsys.readouterr().err
    assert main(["--state-dir", str(tmp_path / "s"), "rollback"]) == 3
    assert "nothing to roll back" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 3  # usage errors must not read as FAIL (2)


def test_console_script_exit_code(tmp_path: Path) -> None:
    run = make_run(tmp_path, "bad", FAIL_STAGES, "FAIL")
    proc = subprocess.run(
        [sys.executable, "-m", "townlet.cli.promote", "evaluate", str(run)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "FAIL" in proc.stdout
