"""Loggers fail soft: JSONL first, a failing sink switched off with one warning, bounded MLflow waits,
and the tracker's run status true to the run's outcome."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from fake_mlflow_server import FakeTrackingServer

from conftest import support_searchpath
from townlet.config.schema.logger import MlflowLoggerConfig
from townlet.runs.loggers import MetricsFanout
from townlet.runs.metrics import read_metrics
from townlet.runs.sinks import JsonlSink, LoggerUnavailableError, MetricsSink, RunInfo

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.*")


class Flaky(MetricsSink):
    """Fails its ``fail_on``-th write; checks on every write that metrics.jsonl already has the record."""

    name = "flaky"

    def __init__(self, jsonl: Path, fail_on: int) -> None:
        self.jsonl, self.fail_on = jsonl, fail_on
        self.writes = 0
        self.ended: list[tuple[str, BaseException | None]] = []
        self.seen_first: list[bool] = []

    def write(self, record: Mapping[str, Any]) -> None:
        self.writes += 1
        self.seen_first.append(any(r["epoch"] == record["epoch"] for r in read_metrics(self.jsonl)))
        if self.writes == self.fail_on:
            raise ConnectionError("tracker went away")

    def end(self, status: str, error: BaseException | None) -> None:
        self.ended.append((status, error))


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_failing_sink_is_switched_off_once_and_the_run_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = RunInfo(path=tmp_path)
    flaky = Flaky(tmp_path / "metrics.jsonl", fail_on=2)
    fanout = MetricsFanout([flaky, JsonlSink(run=run)])  # listed first, still written after JSONL
    for epoch in range(1, 5):
        assert fanout.log({"epoch": epoch, "loss": 1.0 / epoch})
    fanout.after_result(tmp_path, {"kind": "bc"})
    fanout.close()
    assert [r["epoch"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3, 4]
    assert flaky.writes == 2 and flaky.seen_first == [True, True]  # never called once switched off
    (line,) = _warnings(caplog)
    assert "logger flaky" in line and "ConnectionError: tracker went away" in line and "goes on" in line
    ((status, error),) = flaky.ended  # one try to mark its run with the run's own outcome
    assert status == "FINISHED" and isinstance(error, ConnectionError)


def test_a_switched_off_sink_ends_killed_on_an_interrupt(tmp_path: Path) -> None:
    flaky = Flaky(tmp_path / "metrics.jsonl", fail_on=1)
    fanout = MetricsFanout([JsonlSink(run=RunInfo(path=tmp_path)), flaky])
    with pytest.raises(KeyboardInterrupt):
        try:
            fanout.log({"epoch": 1})
            raise KeyboardInterrupt
        finally:
            fanout.close()
    assert [status for status, _ in flaky.ended] == ["KILLED"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_mlflow_waits_are_bounded_by_its_own_settings(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    from townlet.runs.mlflow_log import MlflowSink

    defaults = MlflowLoggerConfig()
    with pytest.raises(LoggerUnavailableError, match="could not start a run"):
        MlflowSink(f"http://127.0.0.1:{_closed_port()}", run=RunInfo(path=tmp_path))
    timeout, retries = MLFLOW_HTTP_REQUEST_TIMEOUT.get(), MLFLOW_HTTP_REQUEST_MAX_RETRIES.get()
    assert (timeout, retries) == (defaults.request_timeout_sec, defaults.request_max_retries)
    backoff = MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get()
    # urllib3: no sleep before the first retry, factor * 2**(n-1) before the n-th; up to 1 s jitter each
    sleeps = sum(backoff * 2 ** (n - 1) + 1 for n in range(2, retries + 1))
    assert (retries + 1) * timeout + sleeps <= 15


def test_a_rejected_batch_switches_mlflow_off_and_the_run_still_ends_finished(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("mlflow")
    from townlet.runs.mlflow_log import MlflowSink

    server = FakeTrackingServer(reject=2)
    try:
        run = RunInfo(path=tmp_path, config={"seed": 3})
        fanout = MetricsFanout([MlflowSink(server.uri, run=run), JsonlSink(run=run)])
        for epoch in range(1, 4):
            fanout.log({"epoch": epoch, "loss": float(epoch)})
        fanout.after_result(tmp_path, {})
        fanout.close()
    finally:
        server.stop()
    assert len(list(read_metrics(tmp_path / "metrics.jsonl"))) == 3
    assert server.metric_batches == 2  # the third record never went out
    (line,) = _warnings(caplog)
    assert line.startswith("logger mlflow: failed writing a record") and "rejected by test" in line
    tags = {b["key"]: b["value"] for e, b in server.calls if e == "runs/set-tag"}
    assert "rejected by test" in tags["logging_stopped"]
    assert [b["status"] for e, b in server.calls if e == "runs/update"] == ["FINISHED"]


def _echo_with_mlflow(run_cli: Any, run_dir: Path, uri: str) -> Any:
    overrides = [f"hydra.run.dir={run_dir}", "logger=[jsonl,mlflow]", f"logger.mlflow.tracking_uri={uri}"]
    return run_cli(support_searchpath(), "strategy=echo", "objective=accuracy", *overrides, timeout=180)


def _tracker_lines(proc: Any) -> list[str]:
    """The console lines about MLflow (Hydra's console log handler writes to stdout)."""
    return [line for line in (proc.stdout + proc.stderr).splitlines() if "mlflow" in line.lower()]


@pytest.mark.slow
def test_an_unreachable_server_at_start_refuses_the_run_before_it_trains(
    run_cli: Any, tmp_path: Path
) -> None:
    pytest.importorskip("mlflow")
    proc = _echo_with_mlflow(run_cli, tmp_path / "run", f"http://127.0.0.1:{_closed_port()}")
    assert proc.returncode == 1, proc.stderr[-3000:]
    (line,) = proc.stderr.strip().splitlines()
    assert (
        line.startswith("townlet-train: error: logger mlflow: could not start a run")
        and "drop mlflow" in line
    )
    assert (
        not (tmp_path / "run" / "metrics.jsonl").exists() and not (tmp_path / "run" / "result.json").exists()
    )
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "failed"


@pytest.mark.slow
def test_a_server_dying_mid_run_costs_one_warning(run_cli: Any, tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    server = FakeTrackingServer(die_after=1)
    try:
        proc = _echo_with_mlflow(run_cli, tmp_path / "run", server.uri)
    finally:
        if not server.stopped.is_set():
            server.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert server.stopped.is_set() and server.metric_batches == 1
    assert [r["epoch"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [1, 2, 3]
    (line,) = _tracker_lines(proc)
    assert "logger mlflow: failed writing a record" in line and "switched off" in line
    assert "Traceback" not in proc.stderr and (tmp_path / "run" / "result.json").is_file()


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite store for this module's MLflow runs (creating its tables takes seconds)."""
    return tmp_path_factory.mktemp("store") / "mlflow.db"


def _mlflow_fanout(tmp_path: Path, db: Path, *, log_model: bool = True) -> tuple[MetricsFanout, Any]:
    from townlet.runs.mlflow_log import MlflowSink

    sink = MlflowSink(f"sqlite:///{db}", log_model=log_model, run=RunInfo(path=tmp_path))
    return MetricsFanout([sink, JsonlSink(run=RunInfo(path=tmp_path))]), sink


def test_a_failed_policy_export_is_one_warning_and_the_run_ends_finished(
    tmp_path: Path, mlflow_db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("mlflow")
    pytest.importorskip("torch")
    from mlflow.tracking import MlflowClient

    from townlet.cli.export import policy_for_loggers

    db = mlflow_db
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    result = {"kind": "bc", "checkpoint": str(run_dir / "checkpoints" / "last.pt")}
    (run_dir / "result.json").write_text("{}")
    fanout, sink = _mlflow_fanout(run_dir, db)
    fanout.log({"epoch": 1, "loss": 1.0})
    policy_for_loggers(fanout, run_dir, result)
    fanout.after_result(run_dir, result)
    fanout.close()
    (line,) = _warnings(caplog)
    assert line.startswith("could not export the policy for the loggers") and "log_model=false" in line
    client = MlflowClient(f"sqlite:///{db}")
    run = client.get_run(sink.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics == {"loss": 1.0}
    assert run.outputs is None or not run.outputs.model_outputs  # no model; the rest is there
    assert {a.path for a in client.list_artifacts(sink.run_id)} >= {"result.json", "checkpoints"}


def test_a_policy_mlflow_cannot_log_is_one_warning_and_the_run_ends_finished(
    tmp_path: Path, mlflow_db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    db = mlflow_db
    fanout, sink = _mlflow_fanout(tmp_path, db)
    assert fanout.wants_policy()
    (tmp_path / "policy.onnx").write_bytes(b"not onnx")
    fanout.attach_policy(tmp_path / "policy.onnx")
    fanout.after_result(tmp_path, {})
    fanout.close()
    (line,) = _warnings(caplog)
    assert line.startswith("logger mlflow: could not log the policy as a model")
    assert MlflowClient(f"sqlite:///{db}").get_run(sink.run_id).info.status == "FINISHED"


def test_no_export_when_no_logger_takes_the_policy(
    tmp_path: Path, mlflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mlflow")
    import townlet.cli.export as export

    def refuse(*args: Any) -> Path:
        raise AssertionError("exported although no logger takes the policy")

    monkeypatch.setattr(export, "export_source", refuse)
    fanout, _ = _mlflow_fanout(tmp_path, mlflow_db, log_model=False)
    assert not fanout.wants_policy()
    export.policy_for_loggers(fanout, tmp_path, {"checkpoint": "last.pt"})
    fanout.close()
    assert not (tmp_path / "export").exists()
