"""``logger=mlflow``: one MLflow run per job; a multirun's jobs nest under one parent run per sweep.

The default store is ``sqlite:///<output_root>/mlflow.db`` (MLflow 3 refuses a plain ``mlruns/``; SQLite
needs no server). Parallel jobs create tables, experiments and runs under a file lock: two processes
creating them at once in one SQLite file collide. A job finds its parent by tags, since jobs may run in
other processes.
"""

from __future__ import annotations

import getpass
import json
import logging
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from filelock import FileLock

from townlet.config.instantiate import ConfigError
from townlet.dto.metrics import OBJECTIVE_METRIC
from townlet.runs.sinks import (
    LoggerUnavailableError,
    MetricsSink,
    RunInfo,
    error_line,
    final_metrics,
    flatten,
    number,
    record_step,
    scalars,
)

log = logging.getLogger("townlet.train")

SINGLE_RUN_EXPERIMENT = "runs"
ROLE_TAG = "run_role"  # on a multirun's parent run, = SWEEP_ROLE
SWEEP_ROLE = "sweep"
BEST_OBJECTIVE = "best_objective"  # the parent's metric: its children's best objective
ARTIFACT_DIR = "mlartifacts"
MODEL_NAME = "policy"  # the exported ONNX policy, as an MLflow model of the run
_PARAM_VALUE_MAX = 6000  # MLflow's limits: one param value, one key, params/tags per call, metrics per call
_PARAM_KEY_MAX = 250
_BATCH = 100
_METRIC_BATCH = 1000


class MlflowLoggerError(RuntimeError):
    """``logger.mlflow.tracking_uri`` names no store MLflow can use (an unknown scheme)."""


def bound_http_waits(timeout_sec: int, max_retries: int) -> None:
    """A server that is down costs about ``(max_retries + 1) * timeout_sec``, not MLflow's minutes of
    rate-limit retries; MLflow reads these on every request, so they hold for this process."""
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    if timeout_sec < 1 or max_retries < 0:
        raise ConfigError(
            "logger.mlflow.request_timeout_sec must be >= 1 and logger.mlflow.request_max_retries >= 0, "
            f"got {timeout_sec} and {max_retries}"
        )
    MLFLOW_HTTP_REQUEST_TIMEOUT.set(int(timeout_sec))
    MLFLOW_HTTP_REQUEST_MAX_RETRIES.set(int(max_retries))
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.set(1)
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)  # one line per retry otherwise


def _base_tags(run: RunInfo) -> dict[str, str]:
    """The config's ``tags`` (``key:value`` sets that tag, a bare ``name`` sets ``name=true``), the
    overrides and MLflow's standard source/user tags."""
    from mlflow.utils.mlflow_tags import MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE, MLFLOW_USER

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        user = "unknown"
    configured = dict(tag.partition(":")[::2] for tag in run.tags)
    return {
        **{key[:_PARAM_KEY_MAX]: (value or "true")[:_PARAM_VALUE_MAX] for key, value in configured.items()},
        "overrides": " ".join(run.overrides)[:_PARAM_VALUE_MAX],
        MLFLOW_SOURCE_TYPE: "LOCAL",
        MLFLOW_USER: user,
        **({MLFLOW_SOURCE_NAME: run.source} if run.source else {}),
    }


def open_store(
    tracking_uri: str, request_timeout_sec: int, request_max_retries: int
) -> tuple[Any, Path | None]:
    """An ``MlflowClient`` and, for ``sqlite:///``, the database file :func:`store_lock` guards."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise RuntimeError(
            "logger=mlflow needs the 'mlflow' package: pip install -e \".[mlflow]\" "
            "(or choose loggers without it, e.g. logger=[jsonl,csv])"
        ) from exc
    bound_http_waits(request_timeout_sec, request_max_retries)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # schema-migration chatter on a new db
    try:
        client = MlflowClient(tracking_uri=tracking_uri)
    except Exception as exc:
        raise MlflowLoggerError(
            f"logger.mlflow: cannot use tracking_uri={tracking_uri!r} ({error_line(exc)}); "
            "fix logger.mlflow.tracking_uri or drop mlflow from logger=[...]"
        ) from exc
    sqlite = tracking_uri.startswith("sqlite:///")
    return client, Path(tracking_uri.removeprefix("sqlite:///")) if sqlite else None


def store_lock(db: Path | None) -> AbstractContextManager[Any]:
    """Held while creating tables, an experiment or a run in a SQLite store (a server needs none)."""
    if db is None:
        return nullcontext()
    db.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(f"{db}.lock", timeout=300)


def ensure_experiment(client: Any, run: RunInfo, configured: str | None, db: Path | None) -> str:
    """The id of experiment ``configured``, else of the sweep dir (relative to ``output_root``) or
    ``runs``; created (artefacts beside a SQLite store) if missing."""
    name = configured or run.sweep_name or SINGLE_RUN_EXPERIMENT
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = (db.parent / ARTIFACT_DIR).resolve().as_uri() if db is not None else None
    return str(client.create_experiment(name, artifact_location=location))


def sweep_parent(client: Any, experiment_id: str, run: RunInfo) -> str | None:
    """The running parent run of ``run``'s sweep (the newest, should the sweep dir be reused)."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.{ROLE_TAG} = '{SWEEP_ROLE}' and attributes.status = 'RUNNING'",
        order_by=["attributes.start_time DESC"],
        max_results=100,
    )
    sweep = str(run.sweep_dir)
    return next((r.info.run_id for r in found if r.data.tags.get("sweep_dir") == sweep), None)


def start_sweep_run(
    sweep: RunInfo,
    tracking_uri: str,
    experiment: str | None,
    request_timeout_sec: int,
    request_max_retries: int,
) -> str:
    """Create a multirun's parent run; its params stay empty (a sweep's settings differ per job)."""
    client, db = open_store(tracking_uri, request_timeout_sec, request_max_retries)
    tags = {**_base_tags(sweep), ROLE_TAG: SWEEP_ROLE, "sweep_dir": str(sweep.sweep_dir)}
    with store_lock(db):
        experiment_id = ensure_experiment(client, sweep, experiment, db)
        name = Path(str(sweep.sweep_dir)).name
        return str(client.create_run(experiment_id, run_name=name, tags=tags).info.run_id)


def end_sweep_run(
    tracking_uri: str, run_id: str, status: str, error: BaseException | None, mode: str
) -> None:
    """End a parent run with the sweep's outcome and its children's best objective."""
    from mlflow.tracking import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = client.get_run(run_id).info.experiment_id
    children = client.search_runs(
        [experiment_id], filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{run_id}'"
    )
    values = [x for r in children if (x := number(r.data.metrics.get(OBJECTIVE_METRIC))) is not None]
    if values:
        client.log_metric(run_id, BEST_OBJECTIVE, max(values) if mode == "max" else min(values))
    if error is not None:
        client.set_tag(run_id, "error", error_line(error)[:_PARAM_VALUE_MAX])
    client.set_terminated(run_id, status)


class MlflowSink(MetricsSink):
    name = "mlflow"

    def __init__(
        self,
        tracking_uri: str,
        experiment: str | None = None,
        log_artifacts: bool = True,
        request_timeout_sec: int = 3,
        request_max_retries: int = 2,
        log_model: bool = True,
        *,
        run: RunInfo,
    ) -> None:
        self.run = run
        self.tracking_uri = str(tracking_uri)
        self.log_artifacts = bool(log_artifacts)
        self.wants_policy = bool(log_model)
        self.policy: Path | None = None
        self.records = 0
        self.last_step = 0
        self.ended = False
        self.client, db = open_store(self.tracking_uri, request_timeout_sec, request_max_retries)
        try:  # a server that is down costs one bounded wait
            from mlflow.entities import Param
            from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

            with store_lock(db):
                self.experiment_id = ensure_experiment(self.client, run, experiment, db)
                tags = self._tags(run)
                if run.sweep_dir is not None and (
                    parent := sweep_parent(self.client, self.experiment_id, run)
                ):
                    tags[MLFLOW_PARENT_RUN_ID] = parent
                self.run_id: str = self.client.create_run(
                    self.experiment_id, run_name=run.display_name, tags=tags
                ).info.run_id
            params = [
                Param(
                    k[:_PARAM_KEY_MAX],
                    (v if isinstance(v, str) else json.dumps(v, default=str))[:_PARAM_VALUE_MAX],
                )
                for k, v in flatten(run.config, sep=".")
            ]
            for start in range(0, len(params), _BATCH):
                self.client.log_batch(self.run_id, params=params[start : start + _BATCH])
        except Exception as exc:
            raise LoggerUnavailableError(
                f"could not start a run in {self.tracking_uri!r} ({error_line(exc)})"
            ) from exc

    @staticmethod
    def _tags(run: RunInfo) -> dict[str, str]:
        from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT

        optional = {
            "config_hash": run.config_hash,
            "job_num": run.job_num,
            "sweep_dir": run.sweep_dir,
            MLFLOW_GIT_COMMIT: run.git_commit,
        }
        return {
            **_base_tags(run),
            "strategy": run.strategy,
            "world": run.world,
            "seed": str(run.seed),
            "run_name": run.run_name,
            "run_dir": str(run.path),
            **{key: str(value) for key, value in optional.items() if value not in (None, "")},
        }

    def write(self, record: Mapping[str, Any]) -> None:
        if self.ended:
            return
        from mlflow.entities import Metric

        self.records += 1
        step, stamp = record_step(record, self.records), int(time.time() * 1000)
        self.last_step = step
        metrics = [Metric(tag, value, stamp, step) for tag, value in scalars(record)]
        for start in range(0, len(metrics), _METRIC_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + _METRIC_BATCH])

    def after_result(self, run_dir: Path, result: Mapping[str, Any]) -> None:
        if self.ended:
            return
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        final = [
            Metric(key, value, stamp, self.last_step)
            for key, value in final_metrics(self.run, result).items()
        ]
        if final:  # runs sort by these in the UI: the evaluation table and the objective
            self.client.log_batch(self.run_id, metrics=final)
        if self.log_artifacts:
            for path, artifact_path in artefacts(run_dir, result):
                if path.is_dir():
                    self.client.log_artifacts(self.run_id, str(path), artifact_path)
                else:
                    self.client.log_artifact(self.run_id, str(path), artifact_path)
        if self.policy is not None:
            try:
                log_policy_model(self.client, self.tracking_uri, self.run_id, self.policy, self.last_step)
            except Exception as exc:  # the metrics and artefacts are in: the run still ends FINISHED
                log.warning("logger mlflow: could not log the policy as a model (%s)", error_line(exc))
        self._end("FINISHED")

    def attach_policy(self, path: Path) -> None:
        self.policy = path

    def end(self, status: str, error: BaseException | None) -> None:
        if self.ended:
            return
        if error is not None:  # FINISHED with an error: the run went on after this logger failed
            key = "logging_stopped" if status == "FINISHED" else "error"
            self.client.set_tag(self.run_id, key, error_line(error)[:_PARAM_VALUE_MAX])
        self._end(status)

    def _end(self, status: str) -> None:
        self.ended = True
        self.client.set_terminated(self.run_id, status)


def artefacts(run_dir: Path, result: Mapping[str, Any]) -> list[tuple[Path, str | None]]:
    """``(local path, artefact folder)`` of what a finished run hands to MLflow, those that exist."""
    checkpoint = result.get("checkpoint")
    reported = isinstance(checkpoint, str) and Path(checkpoint).is_file()
    out: list[tuple[Path, str | None]] = [
        (run_dir / "result.json", None),
        (run_dir / "plots", "plots"),
        (Path(str(checkpoint)) if reported else run_dir / "checkpoints", "checkpoints"),
        (run_dir / ".hydra", "hydra"),
    ]
    return [(path, where) for path, where in out if path.exists()]


def log_policy_model(client: Any, tracking_uri: str, run_id: str, path: Path, step: int) -> str:
    """MLflow's own ONNX flavour, so MLflow's API loads and serves it; the pip requirements are named
    (MLflow would otherwise start a subprocess to infer them)."""
    import mlflow
    import mlflow.onnx
    import onnx
    import onnxruntime

    model = onnx.load_model(str(path))
    signature, example = _signature(model)
    experiment_id = client.get_run(run_id).info.experiment_id
    logged = client.create_logged_model(experiment_id, name=MODEL_NAME, source_run_id=run_id)
    before = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(tracking_uri)  # MLflow's log_model reads the process-wide tracking URI
    try:
        info = mlflow.onnx.log_model(
            model,
            name=MODEL_NAME,
            model_id=logged.model_id,
            run_id=run_id,  # links the model to the run (MLflow's Model.log)
            step=step,
            signature=signature,
            input_example=example,
            pip_requirements=[f"onnx=={onnx.__version__}", f"onnxruntime=={onnxruntime.__version__}"],
            onnx_execution_providers=["CPUExecutionProvider"],  # as townlet-eval runs it
            save_as_external_data=False,
        )
    finally:
        mlflow.set_tracking_uri(before)  # type: ignore[arg-type]  # None: unset again
    return str(info.model_uri)


def _signature(model: Any) -> tuple[Any, dict[str, Any]]:
    """The graph's inputs and outputs as MLflow tensor specs, and an input example of batch 1."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec
    from onnx.helper import tensor_dtype_to_np_dtype

    def spec(value: Any) -> Any:
        tensor = value.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
        return TensorSpec(np.dtype(tensor_dtype_to_np_dtype(tensor.elem_type)), shape, value.name)

    inputs = [spec(v) for v in model.graph.input]
    example = {
        s.name: (np.ones if s.type == np.bool_ else np.zeros)([max(d, 1) for d in s.shape], s.type)
        for s in inputs
    }
    return ModelSignature(Schema(inputs), Schema([spec(v) for v in model.graph.output])), example
