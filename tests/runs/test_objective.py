"""The objective is checked against the chosen strategy's result DTO before anything trains, and every
experiment preset composes a valid config with every strategy."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from townlet.config.instantiate import ConfigError
from townlet.config.schema import STRATEGY_SCHEMAS
from townlet.dto import AnnealSummaryDTO, BCTrainingResultDTO, PPOTrainingResultDTO
from townlet.packaged import CONF_DIR
from townlet.runs.objective import ObjectiveError, check_objective_for_strategy, result_type_for

PRESETS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
TARGETS = {name: schema._target_ for name, schema in STRATEGY_SCHEMAS.items()}  # type: ignore[attr-defined]


def test_every_strategy_maps_to_its_result_dto() -> None:
    assert result_type_for(TARGETS["bc"]) is BCTrainingResultDTO
    assert result_type_for(TARGETS["ppo"]) is PPOTrainingResultDTO
    assert result_type_for(TARGETS["anneal"]) is AnnealSummaryDTO
    assert result_type_for("echo_strategy.EchoStrategy") is None  # outside the package: unknown DTO


@pytest.mark.parametrize(
    ("strategy", "key"),
    [
        ("bc", "val_accuracy"),
        ("bc", "evaluation.policy.mean_return"),
        ("bc", "evaluation.scripted.needs.hunger"),  # a float map below a nested model
        ("ppo", "loss_total"),
        ("ppo", "best.loss_total"),  # a float map on the result itself
        ("anneal", "evaluation.policy.faint_rate"),
        ("anneal", "promotion_pass_streak"),
    ],
)
def test_keys_that_name_a_number_of_the_strategys_result_pass(strategy: str, key: str) -> None:
    check_objective_for_strategy(key, TARGETS[strategy])


@pytest.mark.parametrize(
    ("strategy", "key", "why"),
    [
        ("ppo", "accuracy", "'accuracy' is not a field in the result of strategy=ppo"),
        ("anneal", "val_accuracy", "'val_accuracy' is not a field in the result of strategy=anneal"),
        ("anneal", "loss_total", "not a field"),
        ("bc", "best.loss_total", "'best' is not a field"),
        ("bc", "manifest", "'manifest' is not a number"),
        ("bc", "early_stopped", "'early_stopped' is not a number"),
        ("anneal", "status", "'status' is not a number"),
        ("ppo", "evaluation.policy", "is a group of values, not a number"),
        ("ppo", "evaluation.policy.nope", "'evaluation.policy.nope' is not a field"),
        ("ppo", "loss_total.x", "'loss_total' has no fields"),
    ],
)
def test_keys_the_strategys_result_cannot_hold_are_refused(strategy: str, key: str, why: str) -> None:
    with pytest.raises(ObjectiveError) as caught:
        check_objective_for_strategy(key, TARGETS[strategy])
    message = str(caught.value)
    assert why in message and f"objective={key!r}" in message and "\n" not in message
    assert "use e.g. objective=" in message  # names the fix
    assert isinstance(caught.value, ConfigError)  # townlet-train prints it as a config error (exit 2)


def test_a_strategy_from_outside_the_package_gets_the_any_result_check() -> None:
    check_objective_for_strategy("accuracy", "echo_strategy.EchoStrategy")
    with pytest.raises(ObjectiveError, match="not a result field"):
        check_objective_for_strategy("no_such_field", "echo_strategy.EchoStrategy")


@pytest.mark.parametrize("strategy", sorted(STRATEGY_SCHEMAS))
@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_validates_with_every_strategy(
    preset: str, strategy: str, compose_train: Callable[..., object]
) -> None:
    """Compose only (nothing trains): the start-up checks ``townlet-train`` runs, then the objective
    against that strategy's DTO."""
    from townlet.cli.preflight import check_job

    cfg = compose_train([f"experiment={preset}", f"strategy={strategy}"], support=False)
    typed = check_job(cfg)  # type: ignore[arg-type]
    assert isinstance(OmegaConf.to_object(typed.strategy), STRATEGY_SCHEMAS[strategy])
    check_objective_for_strategy(str(typed.objective), str(typed.strategy._target_))


def test_presets_exist() -> None:
    assert {"smoke", "bc_baseline", "ppo_rollout"} <= set(PRESETS)


def test_wrong_objective_is_refused_before_the_run_dir_holds_anything(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """``experiment=smoke strategy=ppo objective=accuracy``: refused in one line, nothing trained."""
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "townlet.train", "experiment=smoke", "strategy=ppo", "objective=accuracy",
         f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, env={**cli_env, "TOWNLET_ROOT": str(tmp_path)}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode != 0, done.stderr
    # One line from townlet-train names the key, the strategy and the fix (Hydra may add its own note
    # that the job raised: the check runs at the start of run_job, after Hydra made the run dir).
    ours = [line for line in done.stderr.splitlines() if line.startswith("townlet-train:")]
    assert len(ours) == 1 and "objective='accuracy'" in ours[0] and "strategy=ppo" in ours[0], done.stderr
    assert "use e.g. objective=evaluation.policy.mean_return" in ours[0]
    assert "Traceback" not in done.stdout + done.stderr
    for name in ("result.json", "run.json", "metrics.jsonl", "checkpoints"):
        assert not (run_dir / name).exists(), name
    assert not (tmp_path / "data").exists()  # no dataset was captured either


def test_a_strategy_from_outside_the_package_is_checked_by_the_first_segment() -> None:
    check_objective_for_strategy("accuracy", "echo_strategy.EchoStrategy")
    with pytest.raises(ObjectiveError, match="'nope' is not a result field"):
        check_objective_for_strategy("nope.x", "echo_strategy.EchoStrategy")
