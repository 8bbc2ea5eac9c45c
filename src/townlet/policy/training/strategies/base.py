"""The strategy protocol: a thin object that turns a ``TrainingContext`` into a result DTO.

Strategies are built by Hydra from ``conf/strategy/<name>.yaml`` (``_target_`` + hyper-parameters
as constructor keywords). They import torch only inside ``run()``, after ``require_torch``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from townlet.policy.models import TorchNotAvailableError, require_torch

if TYPE_CHECKING:
    from pydantic import BaseModel

    from townlet.policy.training.contexts import TrainingContext

__all__ = ["Strategy", "StrategyBase", "TorchNotAvailableError"]


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
