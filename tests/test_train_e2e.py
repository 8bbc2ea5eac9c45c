"""End to end: `python -m townlet.train` in a subprocess writes a complete, typed run directory.

Uses the test-only ``echo`` strategy (tests/_support) so the run-dir path is exercised without
training anything; the real strategies have their own end-to-end tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import support_searchpath
from townlet.dto import BCTrainingResultDTO, RunRecord, TrainingResult
from townlet.runs.metrics import read_metrics


def _echo(run_dir: Path, *extra: str) -> list[str]:
    return [support_searchpath(), "strategy=echo", f"hydra.run.dir={run_dir}", "objective=accuracy", *extra]


def test_run_writes_every_artefact(run_cli, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = run_cli(*_echo(run_dir, "seed=7", "world=default"))
    assert proc.returncode == 0, proc.stderr
    for name in (
        "run.json",
        "result.json",
        "train.log",
        "metrics.jsonl",
        ".hydra/config.yaml",
        ".hydra/hydra.yaml",
        ".hydra/overrides.yaml",
        "checkpoints/last.marker",
        "plots/training_curves.png",
    ):
        assert (run_dir / name).exists(), name
    result = TrainingResult.model_validate_json((run_dir / "result.json").read_text()).root
    assert isinstance(result, BCTrainingResultDTO) and result.seed == 7 and result.accuracy == 0.7
    assert result.duration_sec is not None and result.val_loss is None
    record = RunRecord.model_validate_json((run_dir / "run.json").read_text())
    assert record.status == "completed" and record.seed == 7 and record.objective_value == 0.7
    assert record.strategy == "echo" and "seed=7" in record.overrides and record.ended_at is not None
    assert "pydantic" in record.versions and len(record.config_hash) == 16
    rows = list(read_metrics(run_dir / "metrics.jsonl"))
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[0]["nan_metric"] is None
    assert "strategy=echo" in (run_dir / "train.log").read_text()


def test_failed_run_records_error_and_writes_no_result(run_cli, tmp_path: Path) -> None:
    run_dir = tmp_path / "fail"
    proc = run_cli(*_echo(run_dir, "strategy.fail=true"))
    assert proc.returncode == 1
    assert "echo strategy asked to fail" in proc.stderr and "Traceback" not in proc.stderr
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "failed" and "asked to fail" in record["error"]
    assert not (run_dir / "result.json").exists()
    assert "Traceback" in (run_dir / "train.log").read_text()


def test_refuses_to_reuse_a_finished_run_unless_resuming(run_cli, tmp_path: Path) -> None:
    run_dir = tmp_path / "reuse"
    assert run_cli(*_echo(run_dir)).returncode == 0
    first = json.loads((run_dir / "run.json").read_text())
    again = run_cli(*_echo(run_dir))
    assert again.returncode == 1 and "resume=true" in again.stderr
    assert json.loads((run_dir / "run.json").read_text()) == first  # untouched
    resumed = run_cli(*_echo(run_dir, "resume=true"))
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads((run_dir / "run.json").read_text())
    assert record["resumed"] is True and record["parent_run"] == first["run_id"]


def test_two_runs_started_together_get_two_directories(cli_env, tmp_path: Path) -> None:
    root = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "townlet.train",
        support_searchpath(),
        "strategy=echo",
        f"paths.output_root={root}",
        "objective=accuracy",
    ]
    procs = [
        subprocess.Popen(cmd, cwd=tmp_path, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    results = sorted(root.glob("runs/*/*/result.json"))
    assert len(results) == 2 and results[0].parent != results[1].parent


def test_bad_config_at_the_cli_is_one_line(run_cli, tmp_path: Path) -> None:
    proc = run_cli("strategy=sac", f"hydra.run.dir={tmp_path / 'x'}")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "allowed:" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_help_and_schema_flags(run_cli) -> None:
    helped = run_cli("--help")
    assert helped.returncode == 0 and "strategy" in helped.stdout and "anneal" in helped.stdout
    schema = run_cli("--schema")
    assert schema.returncode == 0 and "run_id" in json.loads(schema.stdout)["run"]["properties"]


def test_in_process_run_job(compose_train, tmp_path: Path) -> None:
    from townlet.cli.train import run_job

    cfg = compose_train(["strategy=echo", "seed=3", "objective=accuracy"])
    value = run_job(cfg, run_dir=tmp_path / "inproc")
    assert value == 0.3
    assert json.loads((tmp_path / "inproc" / "run.json").read_text())["status"] == "completed"


# Result fields that measure the machine, not what was learned; and fields naming this run's files.
_TIMING = {"duration_sec", "epoch_duration_sec", "samples_per_sec"}
_PATHS = {"checkpoint", "manifest"}


def _learned(result_json: Path) -> dict[str, object]:
    def strip(node: object) -> object:
        if isinstance(node, dict):
            return {
                k: Path(v).name if k in _PATHS and isinstance(v, str) else strip(v)
                for k, v in node.items()
                if k not in _TIMING
            }
        return [strip(v) for v in node] if isinstance(node, list) else node

    return strip(json.loads(result_json.read_text()))  # type: ignore[return-value]


@pytest.mark.slow
def test_same_seed_reproduces_and_snapshot_reruns(cli_env, tmp_path: Path) -> None:
    """Real BC twice on one seed: once by the console script, once from the first run's saved
    ``.hydra/`` snapshot by ``python -m`` (fresh data dir, so the dataset is captured again)."""
    console = Path(sys.executable).with_name("townlet-train")
    first, second = tmp_path / "a", tmp_path / "b"
    common = [f"paths.state_dir={tmp_path / 'state'}"]

    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=300)

    a = run([str(console), "experiment=smoke", "seed=5", f"hydra.run.dir={first}",
             f"paths.data_dir={tmp_path / 'd1'}", *common])  # fmt: skip
    assert a.returncode == 0, a.stderr
    assert f"run dir     {first}" in a.stdout and "evaluation (trained vs scripted vs random" in a.stdout
    b = run([sys.executable, "-m", "townlet.train", "--config-path", str(first / ".hydra"),
             "--config-name", "config", f"hydra.run.dir={second}", f"paths.data_dir={tmp_path / 'd2'}",
             *common])  # fmt: skip
    assert b.returncode == 0, b.stderr
    assert (tmp_path / "d2").is_dir()  # captured afresh, not read from the first run's cache
    assert _learned(first / "result.json") == _learned(second / "result.json")
    snapshot = json.loads((second / "run.json").read_text())
    assert snapshot["status"] == "completed" and snapshot["seed"] == 5
