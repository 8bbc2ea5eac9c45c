"""Read the sweep objective out of a result DTO by dotted key (``evaluation.policy.mean_return``)."""

from __future__ import annotations

import math
from typing import Any


class ObjectiveError(ValueError):
    """The configured ``objective`` key does not exist in this strategy's result."""


def check_objective_key(key: str) -> None:
    """Fail before training when the objective's first segment is not a field of any result DTO."""
    from townlet.dto import RESULT_TYPES

    head = key.split(".", 1)[0]
    fields: set[str] = set()
    for dto in RESULT_TYPES:
        fields.update(dto.model_fields)
    if head not in fields:
        raise ObjectiveError(
            f"objective={key!r}: {head!r} is not a result field; use e.g. objective=accuracy, "
            "objective=val_accuracy, objective=loss_total or objective=evaluation.policy.mean_return"
        )


def objective_value(result: Any, key: str, mode: str = "max") -> float:
    """The float at ``key``; a missing-but-optional (null/NaN) value maps to the worst value for
    ``mode`` so sweepers (Optuna 1.3 crashes on NaN) rank the trial last instead of crashing."""
    data = result.model_dump() if hasattr(result, "model_dump") else result
    node: Any = data
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif node is None:
            break
        else:
            available = ", ".join(sorted(k for k, v in data.items() if isinstance(v, int | float | dict)))
            raise ObjectiveError(
                f"objective={key!r} is not a field of the {data.get('kind', '?')} result; "
                f"set objective=<dotted key>, e.g. one of: {available}"
            )
    worst = -math.inf if str(mode) == "max" else math.inf
    if node is None or isinstance(node, bool) or not isinstance(node, int | float):
        return worst if node is None else float(node)
    value = float(node)
    return value if math.isfinite(value) else worst
