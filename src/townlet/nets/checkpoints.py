"""Checkpoints: network, optimiser and all a resume needs, as tensors and primitives only, so
``torch.load(weights_only=True)`` runs no pickled code. The stored model config and observation spec
rebuild it without Hydra and refuse it, with the difference spelled out, in a world of another layout."""

from __future__ import annotations

import io
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from townlet.nets.models import build_network, model_config_dict
from townlet.runs.atomic import atomic_write_bytes
from townlet.runs.resolve import BEST as BEST
from townlet.runs.resolve import LAST as LAST
from townlet.runs.resolve import RunFilesError, resolve_run
from townlet.torch_guard import require_torch
from townlet.world.spec import ObservationSpec

if TYPE_CHECKING:
    import torch

CHECKPOINT_FORMAT = "townlet-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, unreadable, or built for something else."""


class CheckpointSpecMismatchError(CheckpointError):
    """The checkpoint was trained on observations of a different layout than the current world."""


class CheckpointModelMismatchError(CheckpointError):
    """The checkpoint's network architecture differs from the one this run builds."""


@dataclass
class Checkpoint:
    """A loaded checkpoint (all fields plain data or tensors)."""

    path: Path
    model_state: Mapping[str, Any]
    optimizer_state: Mapping[str, Any] | None
    model_cfg: dict[str, Any]
    spec: ObservationSpec
    epoch: int
    config_hash: str | None
    rng: dict[str, Any]
    extra: dict[str, Any]

    def build_network(self, device: str = "cpu") -> torch.nn.Module:
        """Rebuild the network from the stored config and load its weights."""
        net = build_network(self.model_cfg, self.spec)
        net.load_state_dict(self.model_state)
        return net.to(device)

    def restore_rng(self) -> None:
        """Put the torch, numpy and Python global RNGs back where they were at save time."""
        import torch

        if "torch" in self.rng:
            torch.set_rng_state(self.rng["torch"].cpu())
        if "python" in self.rng:
            version, state, gauss = self.rng["python"]
            random.setstate((version, tuple(state), gauss))
        if "numpy_key" in self.rng:
            key = self.rng["numpy_key"].numpy().astype(np.uint32)
            np.random.set_state(("MT19937", key, int(self.rng["numpy_pos"]), 0, 0.0))


def _to_primitive(value: Any, where: str) -> Any:
    """Convert numpy scalars/arrays and Paths to things ``weights_only`` loading accepts."""
    import torch

    if value is None or isinstance(value, bool | int | float | str | torch.Tensor):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        # int keys survive (optimizer state is keyed by parameter index); anything else becomes a str
        return {
            (k if isinstance(k, int | str) else str(k)): _to_primitive(v, f"{where}.{k}")
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        items = [_to_primitive(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    raise TypeError(
        f"checkpoint field {where} has type {type(value).__name__}; store only tensors and primitives"
    )


def save_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    model_cfg: Any,
    spec: ObservationSpec,
    epoch: int,
    config_hash: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically; returns its path (``model`` being a module, torch is there)."""
    import torch

    version, state, gauss = random.getstate()
    np_state: tuple[Any, ...] = tuple(np.random.get_state(legacy=True))
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer_state": _to_primitive(optimizer.state_dict(), "optimizer_state") if optimizer else None,
        "model_cfg": model_config_dict(model_cfg),
        "spec": spec.to_dict(),
        "spec_fingerprint": spec.fingerprint(),
        "epoch": int(epoch),
        "config_hash": config_hash,
        "rng": {
            "torch": torch.get_rng_state(),
            "python": [version, list(state), gauss],
            "numpy_key": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "numpy_pos": int(np_state[2]),
        },
        "extra": _to_primitive(dict(extra or {}), "extra"),
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write_bytes(Path(path), buf.getvalue())


def resolve_checkpoint_path(path_or_run_dir: str | Path, which: str | None = "best") -> Path:
    """A checkpoint file, a ``checkpoints/`` folder or a run directory → the ``.pt`` file to load."""
    try:
        return resolve_run(path_or_run_dir, which).checkpoint
    except RunFilesError as exc:
        raise CheckpointError(str(exc)) from None


def load_checkpoint(
    path_or_run_dir: str | Path,
    spec: ObservationSpec | None = None,
    device: str = "cpu",
    *,
    which: str | None = "best",
) -> Checkpoint:
    """Load a checkpoint with ``weights_only=True``; refuse it when ``spec`` differs from its own."""
    require_torch("loading a checkpoint")
    import torch

    path = resolve_checkpoint_path(path_or_run_dir, which)
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # unreadable, truncated, or contains pickled objects
        # torch's own text spans lines and suggests weights_only=False, which would run pickled code
        raise CheckpointError(
            f"cannot read checkpoint {path} ({exc.__class__.__name__}): not a checkpoint written by "
            "townlet-train, truncated, or it holds pickled objects (never loaded); pass a run directory "
            "or its checkpoints/best.pt"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a townlet checkpoint (missing format marker)")
    if int(payload.get("format_version", 0)) > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format v{payload['format_version']}, newer than this code "
            f"(v{CHECKPOINT_VERSION}); upgrade townlet-train"
        )
    try:
        if not isinstance(payload.get("model_state"), Mapping):
            raise TypeError("its model_state is not a table of weights")
        ckpt = Checkpoint(
            path=path,
            model_state=dict(payload["model_state"]),
            optimizer_state=payload.get("optimizer_state"),
            model_cfg=dict(payload["model_cfg"]),
            spec=ObservationSpec.from_dict(payload["spec"]),
            epoch=int(payload["epoch"]),
            config_hash=payload.get("config_hash"),
            rng=dict(payload.get("rng", {})),
            extra=dict(payload.get("extra", {})),
        )
        _check_weights(ckpt)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
        raise CheckpointError(
            f"{path} is a damaged townlet checkpoint ({detail}); use another checkpoint of the run or "
            "train again"
        ) from None
    if spec is not None and (diff := spec.describe_mismatch(ckpt.spec)) is not None:
        world = ckpt.extra.get("world_name")
        hint = f" (it was trained in world={world})" if world else ""
        raise CheckpointSpecMismatchError(
            f"checkpoint {path} was trained on a different observation spec than this world: {diff}. "
            f"Evaluate or warm-start it only in a world with the same observation layout{hint}, "
            "or train a new model for this world."
        )
    return ckpt


def _check_weights(ckpt: Checkpoint) -> None:
    """The weights fit the network the stored config describes, and are finite: a forged or damaged
    file fails here in one line, before a size in it allocates memory or a NaN reaches a rollout."""
    import torch

    with torch.device("meta"):  # shapes only: nothing allocated whatever the stored sizes say
        want = {k: tuple(v.shape) for k, v in build_network(ckpt.model_cfg, ckpt.spec).state_dict().items()}
    have = {k: tuple(v.shape) for k, v in ckpt.model_state.items() if isinstance(v, torch.Tensor)}
    if want != have:
        key = next(k for k in sorted(want.keys() | ckpt.model_state.keys()) if want.get(k) != have.get(k))
        raise ValueError(f"weight {key!r} is {have.get(key)}, its network config wants {want.get(key)}")
    for key, tensor in ckpt.model_state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"weight {key!r} holds NaN or Inf")


def warm_start(
    model: torch.nn.Module, source: str | Path, model_cfg: Any, spec: ObservationSpec, device: str = "cpu"
) -> Checkpoint:
    """``init_from=``: copy a checkpoint's weights into ``model`` (same spec and architecture required);
    the optimiser, epoch counter and RNG start fresh: the new run is a new experiment from those weights."""
    ckpt = load_checkpoint(source, spec, device)
    want, have = model_config_dict(model_cfg), ckpt.model_cfg
    if want != have:
        raise CheckpointModelMismatchError(
            f"init_from={source}: the checkpoint's network is {have} but this run builds {want}; "
            f"select the same architecture (e.g. model={have['kind']} with the same sizes)"
        )
    model.load_state_dict(ckpt.model_state)
    return ckpt
