"""Typed schemas for every config group, registered in Hydra's ConfigStore.

``register_configs()`` is called by ``townlet.cli.train`` (and by tests using the compose API) before
composition. Registered nodes:

* ``train_schema`` — the primary schema (``TrainConfig``); first entry of ``conf/train.yaml``.
* ``schema/strategy/{bc,ppo,anneal}`` — per-strategy schemas; each ``conf/strategy/<name>.yaml``
  starts with ``defaults: [/schema/strategy/<name>@_here_, _self_]``.

Single-schema groups (world, dataset, model, device, logger, paths) are typed by ``TrainConfig``'s
fields, so their yaml files need no defaults entry. Schemas live in a separate ``schema/`` group so
that ``strategy=`` only offers real options.
"""

from __future__ import annotations

import os
from pathlib import Path

from townlet.config.schema.dataset import DatasetConfig
from townlet.config.schema.device import DeviceConfig
from townlet.config.schema.evaluation import EvaluationConfig
from townlet.config.schema.logger import LoggerConfig
from townlet.config.schema.model import ModelConfig
from townlet.config.schema.paths import PathsConfig
from townlet.config.schema.strategy_anneal import AnnealStageConfig, AnnealStrategyConfig
from townlet.config.schema.strategy_bc import BCStrategyConfig
from townlet.config.schema.strategy_ppo import PPOStrategyConfig
from townlet.config.schema.top import ServicesConfig, TrainConfig
from townlet.packaged import CONF_DIR

STRATEGY_SCHEMAS: dict[str, type] = {
    "bc": BCStrategyConfig,
    "ppo": PPOStrategyConfig,
    "anneal": AnnealStrategyConfig,
}

__all__ = [
    "STRATEGY_SCHEMAS",
    "AnnealStageConfig",
    "AnnealStrategyConfig",
    "BCStrategyConfig",
    "DatasetConfig",
    "DeviceConfig",
    "EvaluationConfig",
    "LoggerConfig",
    "ModelConfig",
    "PPOStrategyConfig",
    "PathsConfig",
    "ServicesConfig",
    "TrainConfig",
    "conf_dir",
    "register_configs",
    "repo_root",
]

_registered = False


def repo_root() -> Path:
    """Where data, state and outputs go: ``$TOWNLET_ROOT`` if set; else the source checkout when
    the package runs from one (an editable install), so runs land beside the code whatever the cwd;
    else (a wheel in site-packages) the current directory."""
    env = os.environ.get("TOWNLET_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[4]
    if (checkout / "pyproject.toml").is_file() and (checkout / "src" / "townlet").is_dir():
        return checkout
    return Path.cwd().resolve()


def conf_dir() -> Path:
    """The ``conf/`` tree inside the package."""
    return CONF_DIR


def register_configs() -> None:
    """Store every schema in the ConfigStore and register our resolvers (idempotent)."""
    global _registered
    if _registered:
        return
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    for name, schema in STRATEGY_SCHEMAS.items():
        cs.store(group="schema/strategy", name=name, node=schema)
    if not OmegaConf.has_resolver("townlet_root"):
        OmegaConf.register_resolver("townlet_root", lambda: str(repo_root()))
    _registered = True
