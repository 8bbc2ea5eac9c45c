"""Compose-API config tests: every option of every group composes and instantiates; bad configs
fail with one clear message naming the key and the allowed values."""

from __future__ import annotations

from typing import Any

import pytest
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from townlet.config.errors import describe_config_error
from townlet.config.instantiate import (
    ComponentNotAvailableError,
    TargetNotAllowedError,
    build,
    resolve_target,
)
from townlet.packaged import CONF_DIR

CONF = CONF_DIR
TYPED_GROUPS = ("world", "dataset", "model", "device", "logger", "paths")
GLOBAL_GROUPS = ("experiment", "hparams_search", "launcher")


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _cases() -> list[tuple[str, str]]:
    groups = [*TYPED_GROUPS, "strategy", *GLOBAL_GROUPS]
    return [(g, o) for g in groups for o in _options(g)]


@pytest.mark.parametrize(("group", "option"), _cases())
def test_every_option_composes_and_builds(compose_train, group: str, option: str) -> None:
    cfg = compose_train([f"{group}={option}"], hydra=group in GLOBAL_GROUPS)
    if group in TYPED_GROUPS:
        obj = OmegaConf.to_object(cfg[group])
        assert type(obj).__name__.endswith("Config")
    elif group == "strategy":
        try:
            strategy = build(cfg.strategy)
        except ComponentNotAvailableError as exc:  # not built yet: must say so clearly
            assert "not part of this installation" in str(exc)
        else:
            assert strategy.name and isinstance(strategy.requires_torch, bool)
    else:
        assert OmegaConf.to_container(cfg, resolve=False)


def test_default_config_has_typed_nodes(compose_train) -> None:
    cfg = compose_train(["strategy=bc"])
    assert getattr(OmegaConf.get_type(cfg), "__name__", None) == "TrainConfig"
    assert getattr(OmegaConf.get_type(cfg.strategy), "__name__", None) == "BCStrategyConfig"
    assert cfg.paths.output_root.endswith("outputs")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["strategy=bc", "strategy.lr=abc"], ["strategy.lr", "Float"]),
        (["strategy=bc", "seed=1.5"], ["seed", "Integer"]),
        (["strategy=bc", "strategy.lrr=1"], ["unknown key 'strategy.lrr'", "lr", "batch_size"]),
        (["strategy=sac"], ["unknown option 'sac'", "'strategy'", "bc", "ppo"]),
        (["logger=[jsonl,bogus]"], ["unknown option 'bogus'", "'logger'", "csv", "mlflow"]),
        (["strategy=bc", "device.type=gpu"], ["device.type", "cpu, cuda, auto"]),
    ],
)
def test_bad_config_has_one_clear_message(compose_train, overrides: list[str], expected: list[str]) -> None:
    with pytest.raises((HydraException, OmegaConfBaseException)) as info:
        compose_train(overrides)
    message = describe_config_error(info.value)
    assert message is not None
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message


def test_run_dir_has_subsecond_resolution_and_sweep_subdir_is_job_num(compose_train) -> None:
    cfg = compose_train(["strategy=bc"], hydra=True)
    hydra_node: Any = OmegaConf.to_container(cfg.hydra, resolve=False)
    assert "%f" in hydra_node["run"]["dir"] and "%f" in hydra_node["sweep"]["dir"]
    assert hydra_node["sweep"]["subdir"] == "${hydra.job.num}"


def test_target_allow_list() -> None:
    with pytest.raises(TargetNotAllowedError, match="not allowed"):
        build({"_target_": "os.system", "command": "true"})
    with pytest.raises(ComponentNotAvailableError, match="not part of this installation"):
        resolve_target("townlet.strategies.nope.NopeStrategy", "strategy._target_")
    assert build({"_target_": "townlet.runs.rundir.RunDir", "path": "/tmp/x"}).path.name == "x"
