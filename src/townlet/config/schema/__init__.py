"""Typed schemas for every config group, registered by ``register_configs()``; strategy schemas live in a
group of their own (``schema/strategy``) so that ``strategy=`` offers only real options."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from townlet.config.schema.strategy_anneal import AnnealStrategyConfig
from townlet.config.schema.strategy_bc import BCStrategyConfig
from townlet.config.schema.strategy_ppo import PPOStrategyConfig
from townlet.config.schema.top import TrainConfig
from townlet.packaged import CONF_DIR

STRATEGY_SCHEMAS: dict[str, type] = {
    "bc": BCStrategyConfig,
    "ppo": PPOStrategyConfig,
    "anneal": AnnealStrategyConfig,
}


def repo_root() -> Path:
    """Where data, state and outputs go: ``$TOWNLET_ROOT``, else an editable install's checkout (runs land
    beside the code whatever the cwd), else the current directory."""
    env = os.environ.get("TOWNLET_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[4]
    if (checkout / "pyproject.toml").is_file() and (checkout / "src" / "townlet").is_dir():
        return checkout
    return Path.cwd().resolve()


def conf_dir() -> Path:
    return CONF_DIR


@functools.cache
def register_configs() -> None:
    """Store every schema in the ConfigStore and register our resolvers (once per process)."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig, replace=True)
    for name, schema in STRATEGY_SCHEMAS.items():
        cs.store(group="schema/strategy", name=name, node=schema, replace=True)
    if not OmegaConf.has_resolver("townlet_root"):
        OmegaConf.register_resolver("townlet_root", lambda: str(repo_root()))
