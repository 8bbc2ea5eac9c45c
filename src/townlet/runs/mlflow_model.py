"""A run's exported policy (ONNX) as the MLflow model ``policy`` of its MLflow run.

MLflow's own ONNX flavour, so MLflow's API loads and serves it; the pip requirements are named
(MLflow would otherwise start a subprocess to infer them).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MODEL_NAME = "policy"


def log_policy_model(client: Any, tracking_uri: str, run_id: str, path: Path, step: int) -> str:
    import mlflow.onnx
    import onnx
    import onnxruntime

    model = onnx.load_model(str(path))
    signature, example = _signature(model)
    experiment_id = client.get_run(run_id).info.experiment_id
    logged = client.create_logged_model(experiment_id, name=MODEL_NAME, source_run_id=run_id)
    with _tracking_uri(tracking_uri):  # MLflow's log_model reads the process-wide tracking URI
        info = mlflow.onnx.log_model(
            model,
            name=MODEL_NAME,
            model_id=logged.model_id,
            run_id=run_id,  # links the model to the run (MLflow's Model.log)
            step=step,
            signature=signature,
            input_example=example,
            pip_requirements=[f"onnx=={onnx.__version__}", f"onnxruntime=={onnxruntime.__version__}"],
            onnx_execution_providers=["CPUExecutionProvider"],  # as townlet-eval runs it
            save_as_external_data=False,
        )
    return str(info.model_uri)


def _signature(model: Any) -> tuple[Any, dict[str, Any]]:
    """The graph's inputs and outputs as MLflow tensor specs, and an input example of batch 1."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec
    from onnx.helper import tensor_dtype_to_np_dtype

    def spec(value: Any) -> Any:
        tensor = value.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
        return TensorSpec(np.dtype(tensor_dtype_to_np_dtype(tensor.elem_type)), shape, value.name)

    inputs = [spec(v) for v in model.graph.input]
    example = {
        s.name: (np.ones if s.type == np.bool_ else np.zeros)([max(d, 1) for d in s.shape], s.type)
        for s in inputs
    }
    return ModelSignature(Schema(inputs), Schema([spec(v) for v in model.graph.output])), example


@contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    import mlflow

    before = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)  # type: ignore[arg-type]  # None: unset again
