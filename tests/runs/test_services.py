"""``build_default_services``: services whose settings are missing stay unbuilt, with a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from townlet.strategies.services import TrainingServices, build_default_services


def test_missing_state_dir_leaves_promotion_unbuilt(tmp_path: Path) -> None:
    services = build_default_services(data_dir=str(tmp_path), state_dir=None)
    assert services.promotion is None
    assert services.rollout is not None
    with pytest.raises(RuntimeError, match=r"promotion.*paths\.state_dir"):
        services.require("promotion")


def test_state_dir_builds_promotion(tmp_path: Path) -> None:
    services = build_default_services(data_dir=str(tmp_path), state_dir=str(tmp_path / "state"))
    assert Path(services.promotion.state_dir) == tmp_path / "state"


def test_no_arguments_at_all() -> None:
    assert isinstance(build_default_services(), TrainingServices)
