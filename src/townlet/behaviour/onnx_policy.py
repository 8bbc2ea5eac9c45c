"""An exported ``.onnx`` policy acting through onnxruntime, without torch; its metadata gives the
observation spec, so a world of another layout is refused as for a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from townlet.behaviour.rules import PolicyOutput, check_observation
from townlet.nets.export import (
    EXPORT_HINT,
    INPUT_NAMES,
    METADATA_KEY,
    OUTPUT_NAMES,
    PolicyFileError,
    parse_metadata,
)
from townlet.world.spec import Observation


class OnnxPolicy:
    """``act(obs)`` → actions, log-probs and values from an exported policy file."""

    name = "onnx"

    def __init__(
        self, path: str | Path, *, greedy: bool = True, seed: int = 0, name: str | None = None
    ) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise PolicyFileError(f"policy file {self.path} does not exist; export one with townlet-export")
        try:
            import onnxruntime as ort
        except ImportError:
            raise PolicyFileError(
                f"running an .onnx policy needs onnxruntime; install it with: {EXPORT_HINT}"
            ) from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one tick's batch is small: extra threads only wait
        options.log_severity_level = 4  # fatal only: a bad file is reported once, below, in one line
        try:
            self._session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            reason = " ".join(str(exc).split())[:300]  # its messages span lines; the CLI prints one
            raise PolicyFileError(f"cannot load ONNX policy {self.path}: {reason}") from None
        props = self._session.get_modelmeta().custom_metadata_map
        self.spec, self.metadata = parse_metadata(props.get(METADATA_KEY), str(self.path))
        inputs = tuple(sorted(i.name for i in self._session.get_inputs()))
        outputs = {o.name for o in self._session.get_outputs()}
        if inputs != tuple(sorted(INPUT_NAMES)) or not outputs >= set(OUTPUT_NAMES):
            raise PolicyFileError(
                f"{self.path} takes {', '.join(inputs)} and gives {', '.join(sorted(outputs))}; a townlet "
                f"policy takes {', '.join(INPUT_NAMES)} and gives {', '.join(OUTPUT_NAMES)} (file edited?); "
                "export it again with townlet-export"
            )
        # the graph's declared input sizes must be the metadata's spec: a file whose metadata was edited
        # to pass for another world is refused here, not by onnxruntime in the middle of an episode
        spec = self.spec
        want = {
            "maps": list(spec.map_shape),
            "features": [spec.feature_dim],
            "action_mask": [spec.num_actions],
        }
        for node in self._session.get_inputs():
            dims = list(node.shape[1:])  # after the free batch axis; a named (symbolic) size matches anything
            if len(dims) != len(want[node.name]) or any(
                isinstance(d, int) and d != w for d, w in zip(dims, want[node.name], strict=True)
            ):
                raise PolicyFileError(
                    f"{self.path} input {node.name} has sizes {dims} after the batch axis, but its metadata "
                    f"says {want[node.name]} (file edited?); export it again with townlet-export"
                )
        self.greedy = bool(greedy)
        self._rng = np.random.default_rng(seed)
        if name is not None:
            self.name = name

    @property
    def world_config(self) -> dict[str, Any] | None:
        """The world the policy was trained in, as stored at export (None when unknown)."""
        world = self.metadata.get("world_config")
        return dict(world) if isinstance(world, dict) else None

    def forward(self, obs: Observation) -> tuple[np.ndarray, np.ndarray]:
        """Masked logits [N, A] and values [N] for the whole batch (one session run)."""
        check_observation(obs, self.spec, PolicyFileError)
        feeds: dict[str, np.ndarray] = {
            INPUT_NAMES[0]: np.ascontiguousarray(obs.maps, dtype=np.uint8),
            INPUT_NAMES[1]: np.ascontiguousarray(obs.features, dtype=np.float32),
            INPUT_NAMES[2]: np.ascontiguousarray(obs.action_mask, dtype=bool),
        }
        logits, values = self._session.run(list(OUTPUT_NAMES), feeds)
        logits, values = np.asarray(logits, dtype=np.float32), np.asarray(values, dtype=np.float32)
        rows = feeds["maps"].shape[0]
        if logits.shape != (rows, self.spec.num_actions) or values.shape != (rows,):
            raise PolicyFileError(
                f"{self.path} gave logits {logits.shape} and values {values.shape}, not ({rows}, "
                f"{self.spec.num_actions}) and ({rows},) as its metadata says (file edited?); export it again"
            )
        if not (np.isfinite(logits).all() and np.isfinite(values).all()):
            raise PolicyFileError(f"{self.path} gave NaN/Inf logits or values (file corrupt?); export again")
        return logits, values

    def act(self, obs: Observation) -> PolicyOutput:
        logits, values = self.forward(obs)
        shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
        log_probs_all = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        if self.greedy:
            actions = logits.argmax(axis=1)
        else:  # inverse-CDF sampling, one uniform per row
            cdf = np.cumsum(np.exp(log_probs_all), axis=1)
            u: np.ndarray = self._rng.random((logits.shape[0], 1)) * cdf[:, -1:]
            actions = np.minimum((cdf <= u).sum(axis=1), logits.shape[1] - 1)
        actions = actions.astype(np.int64)
        log_probs = np.take_along_axis(log_probs_all, actions[:, None], axis=1)[:, 0]
        return PolicyOutput(actions=actions, log_probs=log_probs.astype(np.float32), values=values)
