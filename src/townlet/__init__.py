"""Townlet Train: a Hydra-configured experiment runner for Townlet agent policies.

Importing the package never imports torch: the world, services, DTOs and CLI stay light.
"""

from pathlib import Path
from typing import Any

__version__ = "0.1.0"


def load_policy(source: str | Path, **options: Any) -> Any:
    """A ``TrainedPolicy`` from a run dir, a ``.pt`` checkpoint or an ``.onnx`` file (docs/policies.md);
    ``options``: ``greedy``, ``seed``, ``device``, ``which``. Imported on call: ``import townlet`` stays
    torch-free."""
    from townlet.behaviour.trained import load_policy as load

    return load(source, **options)
