"""Everything about a training job that can be checked before anything is written.

A Hydra callback, because Hydra writes ``<run dir>/.hydra/`` before the task starts: a check inside
the task would leave a directory behind for every refused run (or overwrite an existing run's
snapshot). ``run_job`` repeats the checks per job, so a sweep's bad value fails only its own job.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
import zipfile
from collections.abc import Iterator
from itertools import product
from pathlib import Path
from typing import Any, NoReturn, cast

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write

from townlet.cli._common import USER_ERROR_EXIT
from townlet.config.errors import describe_config_error
from townlet.config.instantiate import ConfigError, build, check_import_paths
from townlet.config.schema import register_configs
from townlet.config.schema.device import resolve_threads, usable_cores
from townlet.config.schema.strategy_ppo import PPOStrategyConfig
from townlet.config.schema.top import TrainConfig
from townlet.config.snapshot import external_primary
from townlet.runs.device import resolve_device
from townlet.runs.ownership import check_hydra_paths, check_run_paths, claim_run_dir


def refuse(exc: ConfigError) -> NoReturn:
    """One stderr line and ``SystemExit``: Hydra turns any ``Exception`` a callback raises into a warning."""
    code = int(getattr(exc, "exit_code", USER_ERROR_EXIT))
    kind = "config error" if code == USER_ERROR_EXIT else "error"
    sys.stderr.write(f"townlet-train: {kind}: {exc}\n")
    raise SystemExit(code)


class PreflightCallback(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_job(config, run_dir=_select_str(config, "hydra.run.dir"))
        except ConfigError as exc:
            refuse(exc)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Refuse the whole sweep for code outside the allow-list or a job dir holding a finished run
        (Hydra would overwrite its ``.hydra/``); a bad value fails only its own job."""
        try:
            check_hydra_paths(OmegaConf.to_container(config.hydra, resolve=False))
            _check_parallel_threads(config)
            if not str(OmegaConf.select(config, "hydra.sweeper._target_")).endswith(".BasicSweeper"):
                check_import_paths(_task_only(config))  # a search sweeper's trials: checked in run_job
                return
            for label, job_cfg, job_dir in _sweep_jobs(config):
                try:
                    check_import_paths(_task_only(job_cfg))
                    check_run_paths(job_cfg)
                    if job_dir is not None:
                        resume = bool(OmegaConf.select(job_cfg, "resume"))
                        claim_run_dir(job_dir, resume=resume, hold=False)  # before Hydra rewrites .hydra/
                except ConfigError as exc:
                    raise type(exc)(f"sweep job {label}: {exc}") from None
        except ConfigError as exc:
            refuse(exc)


def check_outside_config(args: list[str]) -> None:
    """A primary config from outside the package (``-cp``) has no preflight callback: composed and
    checked here before Hydra creates its run dir (a sweep is checked job by job)."""
    found = external_primary(args)
    if found is None or {"-m", "--multirun"} & set(args):
        return
    folder, name = found
    register_configs()  # the resolvers a saved config uses (${townlet_root:}, ...)
    overrides = [a for a in args if "=" in a and not a.startswith(("-", "hydra.", "+hydra.", "~hydra."))]
    try:
        with initialize_config_dir(config_dir=str(folder), job_name="townlet_train"):
            check_job(compose(config_name=name, overrides=overrides))
    except ConfigError:
        raise
    except Exception as exc:  # Hydra or OmegaConf: a value that does not compose
        raise ConfigError(describe_config_error(exc) or _first_line(exc)) from None


def check_job(cfg: DictConfig, run_dir: str | Path | None = None) -> DictConfig:
    """Validate a composed job; returns it laid on the schema. Import paths first: nothing outside the
    allow-list is imported by any later step."""
    from townlet.strategies.services import check_service_names

    task = typed = _task_only(cfg)
    check_import_paths(task)
    if OmegaConf.get_type(task) is not TrainConfig:  # an untyped config: a snapshot's, maybe edited
        try:
            typed = cast("DictConfig", OmegaConf.merge(OmegaConf.structured(TrainConfig), task))
        except Exception as exc:
            raise ConfigError(describe_config_error(exc) or _first_line(exc)) from None
    _check_unknown_keys(typed, "")
    _check_values(typed)
    _check_stop(typed)
    _check_minibatch(typed)
    _check_init_from(typed.init_from)
    _check_dataset_path(typed)
    check_service_names(dict(typed.services.implementations))
    check_run_paths(typed)
    if run_dir is not None:  # Hydra's on_run_start: this run takes the dir (townlet.runs.ownership)
        check_hydra_paths(OmegaConf.to_container(cfg.hydra, resolve=False) if "hydra" in cfg else {})
        saved_config = OmegaConf.to_container(task, resolve=False, enum_to_str=True)
        overrides = OmegaConf.select(cfg, "hydra.overrides.task")
        overrides = None if overrides is None else [str(o) for o in overrides]
        claim_run_dir(run_dir, resume=bool(typed.resume), overrides=overrides, config=saved_config)
    return typed


# ----------------------------------------------------------------------------------------- steps


def _task_only(cfg: DictConfig) -> DictConfig:
    if "hydra" not in cfg:
        return cfg
    task = copy.deepcopy(cfg)
    with read_write(task), open_dict(task):
        task.pop("hydra")
    return task


def _check_unknown_keys(node: Any, path: str) -> None:
    """``+key=value`` overrides add keys under ``open_dict``, past the schema; refuse them here."""
    if isinstance(node, DictConfig):
        schema = OmegaConf.get_type(node)
        fields = [f.name for f in dataclasses.fields(schema)] if dataclasses.is_dataclass(schema) else None
        for key in node:
            name = key if isinstance(key, str) else repr(key)
            where = f"{path}.{name}" if path else name
            if fields is not None and name not in fields:
                allowed = ", ".join(f for f in fields if not f.startswith("_"))
                raise ConfigError(f"unknown key '{where}' (added with +?); allowed keys here: {allowed}")
            _check_unknown_keys(_child(node, key), where)
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            _check_unknown_keys(_child(node, i), f"{path}[{i}]")


def _child(node: DictConfig | ListConfig, key: Any) -> Any:
    """A container child to walk into; None for a leaf, a ``???`` or an interpolation (not resolved here)."""
    if OmegaConf.is_missing(node, key) or OmegaConf.is_interpolation(node, key):
        return None
    return node[key]


def _check_values(cfg: DictConfig) -> None:
    """Every schema's ``__post_init__``, the world's layout rules, the strategy's own checks, a CUDA
    device that is there, and an objective that names a number in this strategy's result (or the
    sweep's trials are lost)."""
    from townlet.runs.objective import check_objective_for_strategy
    from townlet.world.layout import build_layout

    target = cfg.strategy.get("_target_")
    try:
        build_layout(cast(TrainConfig, OmegaConf.to_object(cfg)).world)
        build(copy.deepcopy(cfg.strategy))
        if str(cfg.device.type) == "cuda":
            resolve_device(cfg.device)
        check_objective_for_strategy(str(cfg.objective), None if target is None else str(target))
    except ConfigError:
        raise
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ConfigError(_first_line(exc)) from None
    except Exception as exc:  # OmegaConf: a value that fails its type or an interpolation that fails
        raise ConfigError(describe_config_error(exc) or _first_line(exc)) from None


def _check_stop(cfg: DictConfig) -> None:
    if cfg.stop.target_return is not None and not cfg.evaluation.every:
        raise ConfigError(
            f"stop.target_return={cfg.stop.target_return} is checked at periodic evaluations; set "
            "evaluation.every=N (iterations) or drop stop.target_return"
        )


def _check_minibatch(cfg: DictConfig) -> None:
    """A chosen ``minibatch_size`` above one iteration's rows would be cut silently."""
    for key in ("strategy", "strategy.ppo"):
        node = OmegaConf.select(cfg, key)
        if not isinstance(node, DictConfig) or "minibatch_size" not in node or "n_steps" not in node:
            continue
        size = int(node.minibatch_size)
        if size == PPOStrategyConfig.minibatch_size or str(node.get("data_mode", "rollout")) == "replay":
            continue
        envs = int(node.get("num_envs") or cfg.world.num_envs)
        agents = int(node.get("num_agents") or cfg.world.num_agents)
        rows = int(node.n_steps) * envs * agents
        if size > rows:
            raise ConfigError(
                f"{key}.minibatch_size={size} is more than the {rows} rows one iteration collects "
                f"({key}.n_steps={node.n_steps} x {envs} towns x {agents} agents); set "
                f"{key}.minibatch_size<={rows} or raise {key}.n_steps"
            )


def _check_init_from(value: str | None) -> None:
    if not value:
        return
    from townlet.nets.checkpoints import CheckpointError, resolve_checkpoint_path

    try:
        path = resolve_checkpoint_path(value)
    except CheckpointError as exc:
        raise ConfigError(f"init_from={value}: {_first_line(exc)}") from None
    if not zipfile.is_zipfile(path):
        raise ConfigError(
            f"init_from={value}: {path} is not a checkpoint written by townlet-train (not a torch "
            "archive); pass a run directory or its checkpoints/best.pt"
        )


def _check_dataset_path(cfg: DictConfig) -> None:
    if str(cfg.dataset.kind) != "manifest":
        return
    if not cfg.dataset.path:
        raise ConfigError("dataset=manifest needs dataset.path=<dataset directory or its manifest.json>")
    if not Path(str(cfg.dataset.path)).expanduser().exists():
        raise ConfigError(f"dataset.path={cfg.dataset.path} does not exist; pass a dataset directory")


# ----------------------------------------------------------------------------------------- sweeps


def _sweep_jobs(config: DictConfig) -> Iterator[tuple[str, DictConfig, str | None]]:
    """Each job of a basic sweep, composed as the sweeper will, with its label and directory."""
    overrides = cast("list[str]", OmegaConf.to_container(config.hydra.overrides.task))
    parsed = OverridesParser.create().parse_overrides(overrides=overrides)
    loader = GlobalHydra.instance().config_loader()
    # every combination of the sweep values, in the basic sweeper's order (the last key varies fastest)
    choices = [
        [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
        if o.is_sweep_override()
        else [f"{o.get_key_element()}={o.get_value_element_as_str()}"]
        for o in parsed
    ]
    for num, job_overrides in enumerate(product(*choices)):
        job_cfg = loader.load_sweep_config(config, list(job_overrides))
        with read_write(job_cfg.hydra), open_dict(job_cfg.hydra):
            job_cfg.hydra.job.num = num
        sweep_dir, subdir = (_select_str(job_cfg, f"hydra.sweep.{k}") for k in ("dir", "subdir"))
        label = f"#{num} ({' '.join(job_overrides)})"
        yield label, job_cfg, str(Path(sweep_dir) / subdir) if sweep_dir and subdir else None


def _check_parallel_threads(config: DictConfig) -> None:
    """``n_jobs x threads`` above the cores makes every joblib job wait on the others' threads."""
    if not str(OmegaConf.select(config, "hydra.launcher._target_")).endswith("JoblibLauncher"):
        return

    cores, n_jobs = usable_cores(), int(OmegaConf.select(config, "hydra.launcher.n_jobs") or 1)
    jobs = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)  # joblib: -1 = every core
    pinned = OmegaConf.select(config, "hydra.job.env_set.OMP_NUM_THREADS")
    wanted = OmegaConf.select(config, "device.num_threads")
    threads = int(pinned) if wanted == "auto" and pinned is not None else resolve_threads(wanted)
    if jobs * threads > cores:
        raise ConfigError(
            f"launcher=joblib runs {jobs} jobs at once with device.num_threads={threads} each, "
            f"{jobs * threads} threads on {cores} cores; lower hydra.launcher.n_jobs or device.num_threads"
        )


def _select_str(cfg: DictConfig, key: str) -> str | None:
    try:
        value = OmegaConf.select(cfg, key)
    except Exception:  # an interpolation that needs Hydra's runtime: nothing to check yet
        return None
    return None if value is None else str(value)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
