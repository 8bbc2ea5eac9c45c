"""Device resolution: ``cpu`` | ``cuda`` | ``auto`` → a concrete torch device string.

Only non-CPU requests import torch, so ``device=cpu`` runs and the CLI stay torch-free.
"""

from __future__ import annotations

from typing import Any

from townlet.torch_guard import torch_available


class DeviceUnavailableError(RuntimeError):
    """A CUDA device was asked for on a machine that cannot provide it."""


def resolve_device(device_cfg: Any) -> str:
    """``"cpu"`` or ``"cuda:K"`` for the ``device`` node or a string; ``auto`` picks the freest GPU."""
    if isinstance(device_cfg, str):
        kind, _, idx = device_cfg.partition(":")
        index: int | None = int(idx) if idx else None
    else:
        get = device_cfg.get if isinstance(device_cfg, dict) else lambda k, d: getattr(device_cfg, k, d)
        kind, index = str(get("type", "cpu")), get("index", None)
    kind = kind.lower()
    if kind == "cpu":
        return "cpu"
    if kind not in {"cuda", "auto"}:
        raise DeviceUnavailableError(
            f"unknown device type {kind!r}; use device=cpu, device=cuda or device=auto"
        )
    if not torch_available():
        if kind == "auto":
            return "cpu"
        raise DeviceUnavailableError(
            "device=cuda needs torch with CUDA; torch is not installed. Use device=cpu"
        )
    import torch

    if not torch.cuda.is_available():
        if kind == "auto":
            return "cpu"
        raise DeviceUnavailableError(
            "device=cuda was requested but this torch build/machine has no CUDA device; "
            "use device=auto (falls back to CPU) or device=cpu"
        )
    count = torch.cuda.device_count()
    if index is not None:
        if not 0 <= int(index) < count:
            raise DeviceUnavailableError(f"device.index={index} but only {count} CUDA device(s) are visible")
        return f"cuda:{int(index)}"
    try:  # the device with the most free memory
        return f"cuda:{max(range(count), key=lambda i: torch.cuda.mem_get_info(i)[0])}"
    except Exception:
        return "cuda:0"
