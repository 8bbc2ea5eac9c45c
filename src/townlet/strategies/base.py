"""The strategy protocol: a Hydra-built object that turns a ``TrainingContext`` into a result DTO
(torch imported only inside ``run()``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from townlet.dto.metrics import EVAL_RETURN_KEY
from townlet.torch_guard import require_torch

if TYPE_CHECKING:
    from pydantic import BaseModel

    from townlet.strategies.context import TrainingContext


@runtime_checkable
class Strategy(Protocol):
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


def dataset_label(context: TrainingContext, data: Any, default: str) -> str:
    """Human label of a replay dataset: its manifest/path/label/name, else the configured dataset's name."""
    meta = getattr(data, "meta", None)
    for key in ("manifest", "path", "label", "name"):
        value = meta.get(key) if isinstance(meta, dict) else None
        if value:
            return str(value)
    return str(getattr(context.dataset, "name", None) or default)


def _evaluation_policy(
    context: TrainingContext, net: Any, spec: Any, device: Any, *, greedy: bool
) -> tuple[Any, Any, int] | None:
    """(service, policy, seed) for evaluating ``net`` on the run's fixed episodes, or None when
    evaluation is off or has no service. Every evaluation of a run uses the same seed, so its
    periodic points and its final result are comparable."""
    settings = context.evaluation
    service = getattr(context.services, "evaluation", None)
    if not settings.enabled or settings.episodes <= 0 or service is None:
        return None
    from townlet.behaviour.torch_policy import TorchPolicy

    seed = context.seed + settings.seed_offset
    return service, TorchPolicy(net, spec, device, greedy=greedy, seed=seed, name="trained"), seed


def evaluate_trained(context: TrainingContext, net: Any, spec: Any, device: Any, *, greedy: bool) -> Any:
    """The ``evaluation`` block of a trained network (None when evaluation is off or has no service)."""
    found = _evaluation_policy(context, net, spec, device, greedy=greedy)
    if found is None:
        return None
    service, policy, seed = found
    settings = context.evaluation
    return service.compare(policy, context.world, settings.episodes, seed, baselines=settings.baselines)


def periodic_evaluation(
    context: TrainingContext, net: Any, spec: Any, device: Any, *, iteration: int, greedy: bool
) -> dict[str, float]:
    """``eval_*`` metrics of the network every ``evaluation.every`` iterations ({} otherwise), so a
    run shows its evaluated return as it learns; the policy has its own generator, so training
    draws no fewer random numbers."""
    every = context.evaluation.every
    if not every or iteration % every:
        return {}
    found = _evaluation_policy(context, net, spec, device, greedy=greedy)
    if found is None:
        return {}
    service, policy, seed = found
    episodes = context.evaluation.episodes
    result = service.evaluate(policy, context.world, episodes=episodes, seed=seed, agreement=False)
    return {
        EVAL_RETURN_KEY: result.mean_return,
        "eval_return_std": result.return_std,
        "eval_faint_rate": result.faint_rate,
        "eval_mean_needs": result.mean_needs,
    }
