"""``build_default_services``: services whose settings are missing stay unbuilt, with a clear error;
``implementations`` swaps a class only through the target allow-list and only for a known service."""

from __future__ import annotations

from pathlib import Path

import pytest

from townlet.config.instantiate import EXTRA_TARGETS_ENV, ConfigError, TargetNotAllowedError
from townlet.promotion.state import PromotionService
from townlet.rollout.collect import RolloutCaptureService
from townlet.rollout.datasets import ReplayDatasetService
from townlet.rollout.evaluation import EvaluationService
from townlet.strategies.services import TrainingServices, build_default_services


class SwappedReplay(ReplayDatasetService):
    """A user's replay service (``services.implementations.replay=...``)."""


def test_missing_state_dir_leaves_promotion_unbuilt(tmp_path: Path) -> None:
    services = build_default_services(data_dir=str(tmp_path), state_dir=None)
    assert services.promotion is None
    assert services.rollout is not None


def test_state_dir_builds_promotion(tmp_path: Path) -> None:
    services = build_default_services(data_dir=str(tmp_path), state_dir=str(tmp_path / "state"))
    assert services.promotion is not None and Path(services.promotion.state_dir) == tmp_path / "state"


def test_every_default_service_is_built_with_its_settings(tmp_path: Path) -> None:
    services = build_default_services(data_dir=str(tmp_path / "data"), state_dir=str(tmp_path / "state"))
    assert type(services.rollout) is RolloutCaptureService
    assert type(services.replay) is ReplayDatasetService
    assert services.replay.data_dir == str(tmp_path / "data")
    assert type(services.evaluation) is EvaluationService
    assert type(services.promotion) is PromotionService


def test_no_arguments_at_all() -> None:
    services = build_default_services()
    assert isinstance(services, TrainingServices)
    assert services.replay is not None and services.replay.data_dir is None
    assert services.promotion is None


def test_an_implementation_swaps_one_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EXTRA_TARGETS_ENV, f"{__name__}.")  # a user's own package joins the allow-list
    services = build_default_services(
        data_dir=str(tmp_path), implementations={"replay": f"{__name__}.SwappedReplay", "rollout": ""}
    )
    assert type(services.replay) is SwappedReplay and services.replay.data_dir == str(tmp_path)
    assert type(services.rollout) is RolloutCaptureService  # an empty value keeps the default


def test_an_implementation_outside_the_allow_list_is_refused_before_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    imported: list[str] = []
    monkeypatch.setattr("importlib.import_module", lambda name, *a: imported.append(name))
    with pytest.raises(TargetNotAllowedError, match=r"services\.implementations\.replay.*os\.system"):
        build_default_services(implementations={"replay": "os.system"})
    assert imported == []


def test_an_implementation_whose_class_is_missing_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"services\.implementations\.evaluation.*NoSuchService"):
        build_default_services(implementations={"evaluation": "townlet.rollout.evaluation.NoSuchService"})


def test_an_unknown_service_name_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"replya.*valid names: rollout, replay, evaluation, promotion"):
        build_default_services(implementations={"replya": "townlet.rollout.datasets.ReplayDatasetService"})
