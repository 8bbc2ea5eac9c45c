"""Torch-free training services and their container.

``TrainingServices`` is what strategies receive; ``build_default_services`` (the ``services``
config node's ``_target_``) constructs each service with its constructor. The promotion service is
built only when ``paths.state_dir`` is given; ``require()`` names any service that is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from townlet.config.instantiate import ConfigError, resolve_target

if TYPE_CHECKING:
    from townlet.promotion.state import PromotionService
    from townlet.rollout.collect import RolloutCaptureService
    from townlet.rollout.datasets import ReplayDatasetService
    from townlet.rollout.evaluation import EvaluationService

ServiceName = Literal["rollout", "replay", "evaluation", "promotion"]

DEFAULT_SERVICES: dict[str, str] = {
    "rollout": "townlet.rollout.collect.RolloutCaptureService",
    "replay": "townlet.rollout.datasets.ReplayDatasetService",
    "evaluation": "townlet.rollout.evaluation.EvaluationService",
    "promotion": "townlet.promotion.state.PromotionService",
}


@dataclass
class TrainingServices:
    """Container of the services a strategy may use (``None``: not built for this run)."""

    rollout: RolloutCaptureService | None = None
    replay: ReplayDatasetService | None = None
    evaluation: EvaluationService | None = None
    promotion: PromotionService | None = None

    def require(self, name: ServiceName) -> Any:
        """Return a service or fail with a message naming the missing piece."""
        service = getattr(self, name)
        if service is None:
            raise RuntimeError(
                f"the '{name}' training service ({DEFAULT_SERVICES.get(name, name)}) was not built: "
                "a setting it needs was not given (the promotion service needs paths.state_dir)"
            )
        return service


def check_service_names(implementations: Mapping[str, str]) -> None:
    """Refuse a swap for a service that does not exist (``services.implementations.<name>``)."""
    unknown = sorted(str(name) for name in implementations if name not in DEFAULT_SERVICES)
    if unknown:
        raise ConfigError(
            f"services.implementations has unknown service name(s) {', '.join(unknown)}; "
            f"valid names: {', '.join(DEFAULT_SERVICES)}"
        )


def _service_class(name: str, implementations: Mapping[str, str]) -> Any:
    """The default class, or the one ``services.implementations.<name>`` names (through the allow-list,
    which imports nothing outside it), constructed exactly like the default it replaces."""
    key = f"services.implementations.{name}"
    cls = resolve_target(implementations.get(name) or DEFAULT_SERVICES[name], key)
    if not isinstance(cls, type):
        raise ConfigError(f"{key}={implementations[name]!r} names a {type(cls).__name__}, not a class")
    return cls


def build_default_services(
    data_dir: str | None = None,
    state_dir: str | None = None,
    implementations: Mapping[str, str] | None = None,
) -> TrainingServices:
    """Construct the training services; ``promotion`` only when ``state_dir`` is given.

    ``implementations`` swaps a class: ``services.implementations.replay=my.pkg.Replay`` (a dotted
    name the target allow-list accepts, constructed with the same arguments as the default).
    """
    swaps = dict(implementations or {})
    check_service_names(swaps)
    cls = {name: _service_class(name, swaps) for name in DEFAULT_SERVICES}
    return TrainingServices(
        rollout=cls["rollout"](),
        replay=cls["replay"](data_dir),
        evaluation=cls["evaluation"](),
        promotion=cls["promotion"](state_dir) if state_dir is not None else None,
    )
