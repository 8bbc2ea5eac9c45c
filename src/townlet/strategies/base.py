"""The strategy protocol: a thin object that turns a ``TrainingContext`` into a result DTO.

Strategies are built by Hydra from ``conf/strategy/<name>.yaml`` (``_target_`` + hyper-parameters
as constructor keywords). They import torch only inside ``run()``, after ``require_torch``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from townlet.torch_guard import TorchNotAvailableError, require_torch

if TYPE_CHECKING:
    from pydantic import BaseModel

    from townlet.strategies.context import TrainingContext

__all__ = ["Strategy", "StrategyBase", "TorchNotAvailableError", "dataset_label", "evaluate_trained"]


@runtime_checkable
class Strategy(Protocol):
    """``name`` and ``requires_torch`` class attributes; ``run(context) -> DTO``."""

    name: ClassVar[str]
    requires_torch: ClassVar[bool]

    def run(self, context: TrainingContext) -> BaseModel: ...


class StrategyBase:
    """Optional convenience base: the torch guard in one place."""

    name: ClassVar[str] = "base"
    requires_torch: ClassVar[bool] = True

    def ensure_torch(self) -> None:
        """Raise ``TorchNotAvailableError`` (naming the install command) if torch is missing."""
        if self.requires_torch:
            require_torch(f"the '{self.name}' strategy")

    def run(self, context: TrainingContext) -> BaseModel:  # pragma: no cover - abstract
        raise NotImplementedError


def dataset_label(context: TrainingContext, data: Any, default: str) -> str:
    """Human label of a replay dataset: its manifest/path/label/name, else the configured dataset's name."""
    meta = getattr(data, "meta", None)
    for key in ("manifest", "path", "label", "name"):
        value = meta.get(key) if isinstance(meta, dict) else None
        if value:
            return str(value)
    return str(getattr(context.dataset, "name", None) or default)


def evaluate_trained(context: TrainingContext, net: Any, spec: Any, device: Any, *, greedy: bool) -> Any:
    """The ``evaluation`` block of a trained network (None when evaluation is off or has no service)."""
    settings = context.evaluation
    service = getattr(context.services, "evaluation", None)
    if not settings.enabled or settings.episodes <= 0 or service is None:
        return None
    from townlet.behaviour.torch_policy import TorchPolicy

    seed = context.seed + settings.seed_offset
    policy = TorchPolicy(net, spec, device, greedy=greedy, seed=seed, name="trained")
    if not settings.baselines:
        from townlet.dto import EvaluationBlock

        result = service.evaluate(policy, context.world, episodes=settings.episodes, seed=seed)
        return EvaluationBlock(policy=result, world=getattr(context.world, "name", None), seed=seed)
    return service.compare(policy, context.world, episodes=settings.episodes, seed=seed)


def periodic_evaluation(
    context: TrainingContext, net: Any, spec: Any, device: Any, *, iteration: int, greedy: bool
) -> dict[str, float]:
    """``eval_*`` metrics of the network on the run's fixed evaluation episodes, every
    ``evaluation.every`` iterations ({} otherwise), so a run shows its evaluated return as it learns.

    The episodes are the end-of-run evaluation's (same seed), so the last point and the final
    result are comparable; the policy has its own generator, so training draws no fewer numbers.
    """
    settings = context.evaluation
    service = getattr(context.services, "evaluation", None)
    every = settings.every
    if not every or iteration % every or not settings.enabled or settings.episodes <= 0 or service is None:
        return {}
    from townlet.behaviour.torch_policy import TorchPolicy

    seed = context.seed + settings.seed_offset
    policy = TorchPolicy(net, spec, device, greedy=greedy, seed=seed, name="trained")
    result = service.evaluate(policy, context.world, episodes=settings.episodes, seed=seed, agreement=False)
    return {
        "eval_return_mean": result.mean_return,
        "eval_return_std": result.return_std,
        "eval_faint_rate": result.faint_rate,
        "eval_mean_needs": result.mean_needs,
    }
