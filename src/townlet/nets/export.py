"""A checkpoint's policy as a standalone file: ONNX (for onnxruntime, no torch) or a torch.export program.

Both come from one ``torch.export`` program of the network's own forward with a free batch axis, so the
input normalisation in its buffers is folded in and the file chooses exactly what the checkpoint chooses.
Each file carries one JSON document (:func:`policy_metadata`; ONNX ``metadata_props`` or the ``.pt2``'s
extra file) that torch-free readers check.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import logging.handlers
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from townlet.runs.atomic import atomic_write_bytes, loads_json
from townlet.world.spec import ObservationSpec

if TYPE_CHECKING:
    from townlet.nets.checkpoints import Checkpoint

METADATA_KEY = "townlet_policy"
PROGRAM_EXTRA_FILE = "townlet_policy.json"
POLICY_FORMAT = "townlet-policy"
POLICY_VERSION = 1
EXPORT_FORMATS: tuple[str, ...] = ("onnx", "pt2")
INPUT_NAMES: tuple[str, ...] = ("maps", "features", "action_mask")
OUTPUT_NAMES: tuple[str, ...] = ("logits", "value")
BATCH_AXIS = "batch"
ONNX_OPSET = 18  # the dynamo exporter's lowest
EXPORT_HINT = "pip install 'townlet-train[export]'  (onnx, onnxscript and onnxruntime)"
#: Largest |difference| between the exported file's outputs and the network's on the check batch.
VERIFY_ATOL = 1e-4


class PolicyFileError(ValueError):
    """An exported policy that cannot be written or used: missing, unreadable, or without its spec."""


@contextmanager
def _held_logs(name: str, drop: str | None = None) -> Iterator[logging.handlers.BufferingHandler]:
    """Hold the records of torch's logger ``name`` while a step runs; hand on those not starting ``drop``.

    torch logs a traceback before it raises, and notes about optional packages a policy never uses:
    held, a refusal can fold the logged error into its one line and a success prints only what matters.
    """
    log, held = logging.getLogger(name), logging.handlers.BufferingHandler(capacity=10_000)
    handlers, propagate = log.handlers[:], log.propagate
    log.handlers, log.propagate = [held], False
    try:
        yield held
    finally:
        log.handlers, log.propagate = handlers, propagate
    for record in held.buffer:
        if drop is None or not record.getMessage().startswith(drop):
            log.handle(record)


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
        meta = loads_json(text)
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
    """Write ``ckpt``'s policy as ``fmt`` (onnx | pt2) to ``out`` atomically; returns the path.

    The written file is run once on a check batch and compared with the network before it replaces
    ``out``, so a file that would act differently never lands.
    """
    if fmt not in EXPORT_FORMATS:
        raise PolicyFileError(f"format={fmt!r} is unknown; choose one of {', '.join(EXPORT_FORMATS)}")
    net = ckpt.build_network("cpu").eval()
    meta = json.dumps(policy_metadata(ckpt, world_config), sort_keys=True)
    inputs = check_inputs(np.random.default_rng(0), ckpt.spec)
    import torch

    if fmt == "onnx":
        for package in ("onnx", "onnxscript", "onnxruntime"):  # onnxruntime checks the written file
            if importlib.util.find_spec(package) is None:
                raise PolicyFileError(
                    f"format=onnx needs the {package} package; install it with: {EXPORT_HINT}"
                )
        # the exporter notes that torchvision's detection ops are skipped: a policy has none
        with _held_logs("torch.onnx", drop="torchvision is not installed"):
            blob = _onnx_bytes(_program(net, inputs), inputs, meta)
        import onnxruntime as ort

        session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
        got = session.run(list(OUTPUT_NAMES), dict(inputs))
    else:
        buf = io.BytesIO()
        torch.export.save(_program(net, inputs), buf, extra_files={PROGRAM_EXTRA_FILE: meta})
        blob = buf.getvalue()
        program_net, _, _ = load_program(io.BytesIO(blob))
        with torch.inference_mode():
            got = [t.numpy() for t in program_net(*_torch_inputs(inputs))]
    with torch.inference_mode():
        want = [t.numpy() for t in net(*_torch_inputs(inputs))]
    worst = max(float(np.max(np.abs(w - np.asarray(g)))) for w, g in zip(want, got, strict=True))
    if not worst <= VERIFY_ATOL:
        raise PolicyFileError(
            f"the {fmt} export differs from the network by {worst:.3g} (> {VERIFY_ATOL}) on a check batch; "
            "nothing was written"
        )
    return atomic_write_bytes(Path(out), blob)


def load_program(source: str | Path | io.BytesIO) -> tuple[Any, ObservationSpec, dict[str, Any]]:
    """A ``.pt2`` policy file → (network with the checkpoint's forward, its spec, its metadata)."""
    import torch

    from townlet.nets.networks import ProgramNetwork

    where = str(source) if isinstance(source, str | Path) else "the exported program"
    if isinstance(source, str | Path) and not Path(source).is_file():
        raise PolicyFileError(f"policy file {source} does not exist; export one with townlet-export")
    extra = {PROGRAM_EXTRA_FILE: ""}
    try:
        with _held_logs("torch.export") as held:
            program = torch.export.load(source, extra_files=extra)
    except Exception as exc:  # torch raises many types for a file that is not a saved program
        logged = [str(r.exc_info[1]) for r in held.buffer if r.exc_info and r.exc_info[1] is not None]
        reason = " ".join("; ".join([str(exc), *logged[:1]]).split())[:200]
        raise PolicyFileError(
            f"cannot load torch.export program {where}: {reason}; export it again with townlet-export"
        ) from None
    spec, meta = parse_metadata(extra[PROGRAM_EXTRA_FILE], where)
    return ProgramNetwork(program.module()), spec, meta


def _torch_inputs(inputs: Mapping[str, np.ndarray]) -> tuple[Any, ...]:
    import torch

    return tuple(torch.from_numpy(np.ascontiguousarray(inputs[name])) for name in INPUT_NAMES)


def _program(net: Any, inputs: Mapping[str, np.ndarray]) -> Any:
    """The network's forward as a ``torch.export`` program whose batch size is free."""
    import torch

    batch = torch.export.Dim(BATCH_AXIS)
    return torch.export.export(
        net, _torch_inputs(inputs), dynamic_shapes={name: {0: batch} for name in INPUT_NAMES}
    )


def _onnx_bytes(program: Any, inputs: Mapping[str, np.ndarray], meta: str) -> bytes:
    """The program through torch's dynamo-based ONNX exporter, with named inputs and a named batch axis."""
    import onnx
    import torch

    exported = torch.onnx.export(
        program,
        _torch_inputs(inputs),
        dynamo=True,
        input_names=list(INPUT_NAMES),
        output_names=list(OUTPUT_NAMES),
        opset_version=ONNX_OPSET,
        verbose=False,
    )
    if exported is None:  # only without an output path *and* with the legacy exporter
        raise PolicyFileError("the ONNX exporter returned no program; nothing was written")
    model = exported.model_proto
    for value in (*model.graph.input, *model.graph.output):
        first = value.type.tensor_type.shape.dim[0]
        if first.dim_param:  # the exporter names the free axis after its symbol (s0, s51, ...)
            first.dim_param = BATCH_AXIS
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta
    model.doc_string = "Townlet policy: masked action logits and a value from one agent's observation"
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
