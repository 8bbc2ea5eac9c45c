"""One seed for everything: Python, NumPy, torch (when a strategy needs it) and the world.

The thread count must be in the environment *before* torch or NumPy loads, so NumPy is imported
lazily; the OpenMP wait policy is left to the runtime (docs/performance.md).
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
from dataclasses import dataclass

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class SeedReport:
    seed: int
    torch_seeded: bool
    deterministic: bool
    num_threads: int


def thread_env(num_threads: int = 1) -> dict[str, str]:
    """Environment that pins OpenMP/BLAS to ``num_threads`` (also for child processes)."""
    if num_threads < 1:
        raise ValueError(f"device.num_threads must be >= 1 (got {num_threads})")
    return dict.fromkeys(THREAD_VARS, str(num_threads))


def configure_threads(num_threads: int = 1) -> None:
    """Apply ``thread_env`` here (and resize torch's pool if torch is already imported)."""
    os.environ.update(thread_env(num_threads))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(num_threads)


def derive_seed(seed: int, *names: str | int) -> int:
    """A stable 31-bit sub-seed for a named consumer (e.g. ``derive_seed(seed, "eval")``)."""
    digest = hashlib.sha256(":".join([str(seed), *map(str, names)]).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def seed_everything(
    seed: int, deterministic: bool = True, num_threads: int = 1, *, with_torch: bool | None = None
) -> SeedReport:
    """Seed Python and NumPy, and torch when ``with_torch`` (default: only if already imported)."""
    import numpy as np

    configure_threads(num_threads)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    os.environ["PYTHONHASHSEED"] = str(seed)
    if with_torch is None:
        with_torch = "torch" in sys.modules
    if with_torch:
        import torch

        torch.set_num_threads(num_threads)
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(deterministic, warn_only=False)
        if torch.cuda.is_available():
            torch.backends.cudnn.deterministic = deterministic
            torch.backends.cudnn.benchmark = not deterministic
            if deterministic:
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    threads = sys.modules["torch"].get_num_threads() if with_torch else num_threads  # what torch uses
    return SeedReport(
        seed=seed, torch_seeded=bool(with_torch), deterministic=deterministic, num_threads=threads
    )
