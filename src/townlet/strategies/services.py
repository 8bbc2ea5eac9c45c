"""Torch-free training services and their container (built by the ``services`` node's ``_target_``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from townlet.config.instantiate import ConfigError, resolve_target
from townlet.promotion.state import PromotionService
from townlet.rollout.collect import RolloutCaptureService
from townlet.rollout.datasets import ReplayDatasetService
from townlet.rollout.evaluation import EvaluationService

SERVICE_NAMES = ("rollout", "replay", "evaluation", "promotion")


@dataclass
class TrainingServices:
    """Container of the services a strategy may use (``None``: not built for this run)."""

    rollout: RolloutCaptureService | None = None
    replay: ReplayDatasetService | None = None
    evaluation: EvaluationService | None = None
    promotion: PromotionService | None = None


def check_service_names(implementations: Mapping[str, str]) -> None:
    """Refuse a swap for a service that does not exist (``services.implementations.<name>``)."""
    unknown = sorted(str(name) for name in implementations if name not in SERVICE_NAMES)
    if unknown:
        raise ConfigError(
            f"services.implementations has unknown service name(s) {', '.join(unknown)}; "
            f"valid names: {', '.join(SERVICE_NAMES)}"
        )


def _service_class(name: str, default: type, implementations: Mapping[str, str]) -> Any:
    """``default``, or the class ``services.implementations.<name>`` names (through the allow-list,
    which imports nothing outside it), constructed exactly like the default it replaces."""
    dotted = implementations.get(name)
    if not dotted:
        return default
    key = f"services.implementations.{name}"
    cls = resolve_target(dotted, key)
    if not isinstance(cls, type):
        raise ConfigError(f"{key}={dotted!r} names a {type(cls).__name__}, not a class")
    return cls


def build_default_services(
    data_dir: str | None = None,
    state_dir: str | None = None,
    implementations: Mapping[str, str] | None = None,
) -> TrainingServices:
    """The services (``promotion`` only with ``state_dir``); ``implementations`` swaps classes by name."""
    swaps = dict(implementations or {})
    check_service_names(swaps)
    defaults = (RolloutCaptureService, ReplayDatasetService, EvaluationService, PromotionService)
    rollout, replay, evaluation, promotion = (
        _service_class(name, default, swaps) for name, default in zip(SERVICE_NAMES, defaults, strict=True)
    )
    return TrainingServices(
        rollout=rollout(),
        replay=replay(data_dir),
        evaluation=evaluation(),
        promotion=promotion(state_dir) if state_dir is not None else None,
    )
