"""Logging schema (``conf/logger/*.yaml``): each option fills its own key (``# @package logger.<name>``),
so ``logger=[jsonl,csv,mlflow]`` selects several at once and leaves the others ``null``; shared settings
(cadence, rotation, plots, progress) sit beside them at ``logger.*``."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class LoggerKind(StrEnum):
    jsonl = "jsonl"
    tensorboard = "tensorboard"
    none = "none"


class ProgressMode(StrEnum):
    auto = "auto"  # a live bar on a terminal; plain log lines in pipes, files and multirun jobs
    bar = "bar"  # the live bar whenever stderr is a terminal (plain lines otherwise)
    lines = "lines"  # plain periodic log lines only
    off = "off"


class WandbMode(StrEnum):
    auto = "auto"  # online with WANDB_API_KEY (or as WANDB_MODE says), else offline
    online = "online"
    offline = "offline"
    disabled = "disabled"


@dataclass
class JsonlLoggerConfig:
    """``<run dir>/metrics.jsonl``: one JSON object per logged record (plots, reports and benches read it)."""

    _target_: str = "townlet.runs.sinks.JsonlSink"
    filename: str = "metrics.jsonl"


@dataclass
class CsvLoggerConfig:
    """``<run dir>/metrics.csv``: a fixed leading set of columns, then every other key sorted by name."""

    _target_: str = "townlet.runs.csv_log.CsvSink"
    filename: str = "metrics.csv"


@dataclass
class TensorBoardLoggerConfig:
    """Event files under ``<run dir>/<dirname>/`` (needs the ``tensorboard`` extra)."""

    _target_: str = "townlet.runs.tensorboard.TensorBoardSink"
    dirname: str = "tensorboard"


@dataclass
class MlflowLoggerConfig:
    """One MLflow run per job (``mlflow`` extra); a multirun is one experiment under one parent run."""

    _target_: str = "townlet.runs.mlflow_log.MlflowSink"
    tracking_uri: str = "sqlite:///${paths.output_root}/mlflow.db"  # or http(s)://host:port (a server)
    experiment: str | None = None  # null: "runs" for single runs, the sweep dir's name for a multirun
    log_artifacts: bool = True  # result.json, plots/, the checkpoint and .hydra/ when the run ends
    # the policy as the run's MLflow model "policy" (ONNX, exported when the run ends: a few seconds)
    log_model: bool = True
    # a tracking server's HTTP waits: a server that is down costs ~(retries + 1) x timeout + backoff
    request_timeout_sec: int = 3
    request_max_retries: int = 2


@dataclass
class WandbLoggerConfig:
    """One W&B run per job (needs the ``wandb`` extra); offline unless ``WANDB_API_KEY`` is set."""

    _target_: str = "townlet.runs.wandb_log.WandbSink"
    project: str = "townlet"
    entity: str | None = None
    mode: WandbMode = WandbMode.auto
    log_artifacts: bool = True  # result.json and the policy checkpoint when the run ends
    init_timeout_sec: float = 15.0


@dataclass
class LoggerConfig:
    """The selected loggers (``null`` = not selected) and their shared settings."""

    jsonl: JsonlLoggerConfig | None = None
    csv: CsvLoggerConfig | None = None
    tensorboard: TensorBoardLoggerConfig | None = None
    mlflow: MlflowLoggerConfig | None = None
    wandb: WandbLoggerConfig | None = None
    log_frequency: int = 1  # write every n-th record a strategy logs (forced records always)
    max_log_entries: int | None = None  # metrics.jsonl moves on to metrics.jsonl.1, .2 ... after this many
    plots: bool = True  # <run dir>/plots/training_curves.png, drawn from metrics.jsonl
    progress: ProgressMode = ProgressMode.auto
    progress_every_sec: float = 30.0  # plain-lines mode: at most one line per this many seconds
    # The single-logger form of some saved snapshots: a config with ``logger.kind`` and no logger keys
    # above re-runs with it mapped onto them (jsonl; tensorboard -> jsonl + tensorboard; none -> nothing)
    kind: LoggerKind | None = None
    filename: str | None = None

    def __post_init__(self) -> None:  # checked before the run dir exists (townlet.cli.preflight)
        if self.log_frequency < 1:
            raise ValueError(f"logger.log_frequency must be >= 1, got {self.log_frequency}")
        if self.progress_every_sec <= 0:
            raise ValueError(f"logger.progress_every_sec must be > 0, got {self.progress_every_sec}")
