"""Torch-free training services and their container.

``TrainingServices`` is what strategies receive; ``build_default_services`` (the ``services``
config node's ``_target_``) constructs each service whose module exists, leaving the rest ``None``,
so a partial installation still runs the strategies that do not need the missing ones.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_SERVICES: dict[str, str] = {
    "rollout": "townlet.rollout.collect.RolloutCaptureService",
    "replay": "townlet.rollout.datasets.ReplayDatasetService",
    "evaluation": "townlet.rollout.evaluation.EvaluationService",
    "promotion": "townlet.promotion.state.PromotionService",
}


@dataclass
class TrainingServices:
    """Container of the services a strategy may use (any may be ``None`` until built)."""

    rollout: Any = None
    replay: Any = None
    evaluation: Any = None
    promotion: Any = None

    def require(self, name: str) -> Any:
        """Return a service or fail with a message naming the missing piece."""
        service = getattr(self, name)
        if service is None:
            raise RuntimeError(
                f"the '{name}' training service ({DEFAULT_SERVICES.get(name, name)}) was not built: "
                "its module is missing from this installation or a setting it needs was not given "
                "(the promotion service needs paths.state_dir)"
            )
        return service


def _load(dotted: str, settings: dict[str, Any]) -> Any:
    module_name, _, attr = dotted.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:  # the service itself is not built; anything else is a real bug
            log.debug("service module %s not present", module_name)
            return None
        raise
    cls = getattr(module, attr, None)
    if cls is None:
        return None
    params = inspect.signature(cls).parameters
    kwargs = {k: v for k, v in settings.items() if k in params and v is not None}
    missing = [
        n
        for n, p in params.items()
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in kwargs
    ]
    if missing:
        # e.g. promotion without a state dir: leave it unbuilt, so ``require()`` names it when needed
        log.debug("service %s not built: no %s given", dotted, ", ".join(missing))
        return None
    return cls(**kwargs)


def build_default_services(
    data_dir: str | None = None,
    state_dir: str | None = None,
    implementations: dict[str, str] | None = None,
) -> TrainingServices:
    """Construct every known service whose module exists; absent ones stay ``None``.

    Each constructor receives the subset of ``data_dir``/``state_dir`` it declares; a service whose
    required directory is ``None`` is left unbuilt (``PromotionService`` needs ``state_dir``).
    ``implementations`` swaps a class: ``services.implementations.replay=my.pkg.Replay``.
    """
    spec = {**DEFAULT_SERVICES, **{k: v for k, v in (implementations or {}).items() if v}}
    settings = {"data_dir": data_dir, "state_dir": state_dir}
    return TrainingServices(**{n: _load(d, settings) for n, d in spec.items() if n in DEFAULT_SERVICES})
