"""``townlet-bench learn``: figures read from real run dirs, and the section end to end (quick)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from townlet_tools.bench.learn import run_figures, summarise


def _write_metrics(run_dir: Path, records: list[dict[str, object]]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_time_to_teacher_is_the_first_evaluation_at_or_above_it(tmp_path: Path) -> None:
    _write_metrics(
        tmp_path,
        [
            {"stage_index": 0, "epoch": 1, "wall_sec": 1.0},
            {"stage_index": 1, "env_steps": 100, "eval_return_mean": -12.0, "wall_sec": 2.0},
            {"stage_index": 1, "env_steps": 200, "eval_return_mean": -9.0, "wall_sec": 3.0},
            {"stage_index": 2, "env_steps": 100, "eval_return_mean": 0.5, "wall_sec": 4.0},
            {"stage_index": 2, "env_steps": 200, "episode_return_mean": 5.0, "wall_sec": 5.0},
        ],
    )
    result = {"evaluation": {"policy": {"mean_return": 1.0}, "scripted": {"mean_return": -10.0}}}
    figures = run_figures(tmp_path, result)
    assert figures["source"] == "eval"
    assert (figures["steps_to_teacher"], figures["wall_to_teacher"]) == (200.0, 3.0)
    assert (figures["steps_to_teacher_plus_10"], figures["wall_to_teacher_plus_10"]) == (300.0, 4.0)
    assert figures["policy"] == 1.0 and figures["random"] is None


def test_summary_counts_seeds_that_beat_the_teacher() -> None:
    runs: list[dict[str, Any]] = [
        {"seed": 0, "policy": 2.0, "scripted": -10.0, "random": -27.0, "wall_sec": 10.0, "agent_steps": 100},
        {
            "seed": 1,
            "policy": -11.0,
            "scripted": -10.0,
            "random": -27.0,
            "wall_sec": 30.0,
            "agent_steps": 300,
        },
        {"seed": 2, "wall_sec": 1.0, "error": "boom"},
    ]
    summary = summarise(runs)
    assert summary["finished"] == 2 and summary["beat_teacher"] == 1
    assert summary["policy"]["mean"] == pytest.approx(-4.5) and summary["policy"]["max"] == 2.0
    assert summary["policy_minus_teacher"]["median"] == pytest.approx(5.5)
    assert summary["agent_steps_per_sec"] == pytest.approx(10.0)


@pytest.mark.slow
def test_quick_section_trains_and_reports_the_baselines_of_the_same_run(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "learn.json"
    proc = subprocess.run(
        [sys.executable, "-m", "townlet_tools.bench", "learn", "--quick", "--json", str(out)],
        env={**os.environ, "TOWNLET_ROOT": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    section = json.loads(out.read_text())["sections"]["learn"]
    (only,) = section["runs"]
    assert "error" not in only, only
    assert all(isinstance(only[k], float) for k in ("policy", "scripted", "random"))
    assert Path(only["run_dir"]).is_relative_to(tmp_path / "outputs" / "bench_learn")
    assert (Path(only["run_dir"]) / "plots" / "training_curves.png").is_file()
    assert section["summary"]["finished"] == 1 and "trained-teacher" in proc.stdout


def test_overrides_may_follow_the_options() -> None:
    from townlet_tools.bench import _parser

    args = _parser().parse_intermixed_args(["learn", "--seeds", "0,3", "--json", "x.json", "strategy=ppo"])
    assert (args.section, args.seeds, args.json, args.overrides) == (
        "learn",
        [0, 3],
        "x.json",
        ["strategy=ppo"],
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["learn", "--seeds", ""],
        ["learn", "--seeds", "1,x"],
        ["soak", "--runs", "0"],
        ["soak", "--runs", "-3"],
    ],
)
def test_bad_seeds_and_run_counts_are_refused_by_the_parser(argv: list[str]) -> None:
    from townlet_tools.bench import _parser

    with pytest.raises(SystemExit) as refused:
        _parser().parse_intermixed_args(argv)
    assert refused.value.code == 2


def test_learn_fails_when_every_seed_failed(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "townlet_tools.bench", "learn", "--seeds", "0", "strategy=nonexistent"],
        env={**os.environ, "TOWNLET_ROOT": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_the_report_names_the_instruction_set_it_ran_under(monkeypatch: pytest.MonkeyPatch) -> None:
    from townlet_tools.bench.protocol import context_record

    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.delenv("MKL_ENABLE_INSTRUCTIONS", raising=False)
    isa = context_record()["isa"]
    assert isa["ATEN_CPU_CAPABILITY"] == "avx2"
    assert isa["MKL_ENABLE_INSTRUCTIONS"] is None
