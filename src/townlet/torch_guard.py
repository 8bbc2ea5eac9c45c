"""Whether torch can be used, asked without importing it (a leaf: imports nothing of ours).

Every component that needs torch calls ``require_torch`` first, so a machine without it gets one
message with the install command instead of an ImportError deep in a strategy."""

from __future__ import annotations

import importlib.util

INSTALL_HINT = "pip install torch==2.13.0  (or: make setup, which installs the pinned CPU wheel)"


class TorchNotAvailableError(RuntimeError):
    """Raised when a component that trains or runs a network is used without torch installed."""

    def __init__(self, what: str = "this component") -> None:
        super().__init__(f"{what} needs PyTorch, which is not installed. Install it with: {INSTALL_HINT}")


def torch_available() -> bool:
    """True when torch can be imported; does not import it."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def require_torch(what: str) -> None:
    """Fail fast with a clear message before the first `import torch`."""
    if not torch_available():
        raise TorchNotAvailableError(what)
    try:
        import torch  # noqa: F401
    except ImportError as exc:  # found on the path but broken or blocked
        raise TorchNotAvailableError(what) from exc
