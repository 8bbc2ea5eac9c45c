"""A checkpoint's policy as a standalone file: ONNX (for onnxruntime, no torch) or TorchScript.

The exported graph is the network's own forward, ``(maps uint8 [B, C, W, W], features float32 [B, F],
action_mask bool [B, A]) -> (logits [B, A], value [B])``: the map scale and the feature mean/std
(BC's dataset statistics, PPO's running feature normaliser) are buffers of the network, so they are
folded into the graph as constants and an exported policy chooses exactly what the checkpoint
chooses. Disallowed actions get the network's large negative logit, so argmax never picks one.

Each file carries its observation spec (feature names, map shape, action vocabulary, fingerprint),
the world it was trained in and where it came from, as one JSON document: ONNX ``metadata_props``
key ``townlet_policy``, or the ``townlet_policy.json`` extra file of a TorchScript archive. Reading
that document (``parse_metadata``) needs neither torch nor onnx. torch and onnx are imported only
inside the functions that write a file.
"""

from __future__ import annotations

import io
import json
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from townlet.world.spec import ObservationSpec

if TYPE_CHECKING:
    from townlet.nets.checkpoints import Checkpoint

METADATA_KEY = "townlet_policy"
TORCHSCRIPT_EXTRA_FILE = "townlet_policy.json"
POLICY_FORMAT = "townlet-policy"
POLICY_VERSION = 1
EXPORT_FORMATS: tuple[str, ...] = ("onnx", "torchscript")
INPUT_NAMES: tuple[str, ...] = ("maps", "features", "action_mask")
OUTPUT_NAMES: tuple[str, ...] = ("logits", "value")
ONNX_OPSET = 17
EXPORT_HINT = "pip install 'townlet-train[export]'  (onnx and onnxruntime)"
#: Largest |difference| between the exported file's outputs and the network's on the check batch.
VERIFY_ATOL = 1e-4


class PolicyFileError(ValueError):
    """An exported policy that cannot be written or used: missing, unreadable, or without its spec."""


def policy_metadata(ckpt: Checkpoint, world_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The JSON document that travels inside an exported file."""
    spec = ckpt.spec
    return {
        "format": POLICY_FORMAT,
        "version": POLICY_VERSION,
        "spec": spec.to_dict(),
        "spec_fingerprint": spec.fingerprint(),
        "map_shape": list(spec.map_shape),
        "inputs": {
            "maps": f"uint8 [batch, {', '.join(map(str, spec.map_shape))}]",
            "features": f"float32 [batch, {spec.feature_dim}]",
            "action_mask": f"bool [batch, {spec.num_actions}], True = allowed",
        },
        "outputs": {"logits": f"float32 [batch, {spec.num_actions}], masked", "value": "float32 [batch]"},
        "feature_normalisation": "folded into the graph",
        "model": dict(ckpt.model_cfg),
        "source": {
            "checkpoint": str(ckpt.path),
            "epoch": ckpt.epoch,
            "config_hash": ckpt.config_hash,
            "strategy": ckpt.extra.get("strategy"),
            "world_name": ckpt.extra.get("world_name"),
        },
        "world_config": dict(world_config) if world_config else None,
    }


def parse_metadata(text: str | None, where: str) -> tuple[ObservationSpec, dict[str, Any]]:
    """Check an exported file's JSON document; returns its spec and the whole document."""
    if not text:
        raise PolicyFileError(
            f"{where} carries no {METADATA_KEY!r} metadata; export it with townlet-export RUN_DIR out=…"
        )
    try:
        meta = json.loads(text)
        spec = ObservationSpec.from_dict(meta["spec"])
    except (ValueError, KeyError, TypeError) as exc:
        raise PolicyFileError(f"{where}: unreadable {METADATA_KEY!r} metadata ({exc})") from None
    if meta.get("format") != POLICY_FORMAT:
        raise PolicyFileError(f"{where} is not a townlet policy (format {meta.get('format')!r})")
    if int(meta.get("version", 0)) > POLICY_VERSION:
        raise PolicyFileError(
            f"{where} has policy format v{meta['version']}, newer than this code (v{POLICY_VERSION}); "
            "upgrade townlet-train"
        )
    if meta.get("spec_fingerprint") != spec.fingerprint():
        raise PolicyFileError(f"{where}: the spec fingerprint does not match the stored spec (file edited?)")
    return spec, meta


def check_inputs(rng: np.random.Generator, spec: ObservationSpec, batch: int = 5) -> dict[str, np.ndarray]:
    """A small batch of plausible observations (some actions masked) for tracing and verification."""
    mask = rng.random((batch, spec.num_actions)) < 0.7
    mask[:, 0] = True  # NOOP is always allowed
    return {
        "maps": rng.integers(0, 3, size=(batch, *spec.map_shape), dtype=np.uint8),
        "features": rng.uniform(-1.0, 1.0, size=(batch, spec.feature_dim)).astype(np.float32),
        "action_mask": mask,
    }


def export_policy(
    ckpt: Checkpoint, fmt: str, out: str | Path, world_config: Mapping[str, Any] | None = None
) -> Path:
    """Write ``ckpt``'s policy as ``fmt`` (onnx | torchscript) to ``out`` atomically; returns the path.

    The written file is run once on a check batch and compared with the network before it replaces
    ``out``, so a file that would act differently never lands.
    """
    from townlet.runs.atomic import atomic_write_bytes

    if fmt not in EXPORT_FORMATS:
        raise PolicyFileError(f"format={fmt!r} is unknown; choose one of {', '.join(EXPORT_FORMATS)}")
    net = ckpt.build_network("cpu").eval()
    meta = json.dumps(policy_metadata(ckpt, world_config), sort_keys=True)
    inputs = check_inputs(np.random.default_rng(0), ckpt.spec)
    if fmt == "onnx":
        blob = _onnx_bytes(net, inputs, meta)
        got = _run_onnx(blob, inputs)
    else:
        blob = _torchscript_bytes(net, inputs, meta)
        got = _run_torchscript(blob, inputs)
    _verify(net, inputs, got, fmt)
    return atomic_write_bytes(Path(out), blob)


def _torch_inputs(inputs: Mapping[str, np.ndarray]) -> tuple[Any, ...]:
    import torch

    return tuple(torch.from_numpy(np.ascontiguousarray(inputs[name])) for name in INPUT_NAMES)


def _onnx_bytes(net: Any, inputs: Mapping[str, np.ndarray], meta: str) -> bytes:
    """The legacy (TorchScript-based) exporter: the dynamo one needs onnxscript, which is not a dependency."""
    import torch

    try:
        import onnx
    except ImportError:
        raise PolicyFileError(f"format=onnx needs the onnx package; install it with: {EXPORT_HINT}") from None
    batch_axis = {name: {0: "batch"} for name in (*INPUT_NAMES, *OUTPUT_NAMES)}
    with tempfile.TemporaryDirectory(prefix="townlet-export-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter announces its future
        graph = Path(tmp) / "policy.onnx"
        torch.onnx.export(
            net,
            _torch_inputs(inputs),
            graph,
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=batch_axis,
            opset_version=ONNX_OPSET,
        )
        model = onnx.load(graph)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta
    model.doc_string = "Townlet policy: masked action logits and a value from one agent's observation"
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def _run_onnx(blob: bytes, inputs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise PolicyFileError(
            f"checking an ONNX export needs onnxruntime; install it with: {EXPORT_HINT}"
        ) from None
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    logits, value = session.run(list(OUTPUT_NAMES), dict(inputs))
    return np.asarray(logits), np.asarray(value)


def _torchscript_bytes(net: Any, inputs: Mapping[str, np.ndarray], meta: str) -> bytes:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated but still the format
        traced = torch.jit.trace(net, _torch_inputs(inputs))
        buf = io.BytesIO()
        torch.jit.save(traced, buf, _extra_files={TORCHSCRIPT_EXTRA_FILE: meta})
    return buf.getvalue()


def _run_torchscript(blob: bytes, inputs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(io.BytesIO(blob))
    with torch.inference_mode():
        logits, value = module(*_torch_inputs(inputs))
    return logits.numpy(), value.numpy()


def _verify(net: Any, inputs: Mapping[str, np.ndarray], got: tuple[np.ndarray, np.ndarray], fmt: str) -> None:
    import torch

    with torch.inference_mode():
        want = [t.numpy() for t in net(*_torch_inputs(inputs))]
    worst = max(float(np.max(np.abs(w - g))) for w, g in zip(want, got, strict=True))
    if not worst <= VERIFY_ATOL:
        raise PolicyFileError(
            f"the {fmt} export differs from the network by {worst:.3g} (> {VERIFY_ATOL}) on a check batch; "
            "nothing was written"
        )
