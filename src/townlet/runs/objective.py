"""The sweep objective, checked against the strategy's result DTO before anything trains (a key the
result never carries would throw away a whole run), then read out of the result by dotted key."""

from __future__ import annotations

import math
import types
import typing
from typing import Any

from pydantic import BaseModel

from townlet.config.instantiate import ConfigError
from townlet.config.schema import STRATEGY_SCHEMAS
from townlet.dto import RESULT_TYPES
from townlet.dto.metrics import OBJECTIVES


class ObjectiveError(ConfigError):
    """The ``objective`` key does not exist in this strategy's result."""


def _kind(dto: type[BaseModel]) -> str:
    return str(dto.model_fields["kind"].default)


def result_type_for(strategy_target: str | None) -> type[BaseModel] | None:
    """The result DTO a strategy returns, by its ``_target_``; None for one from outside the package."""
    by_kind = {_kind(dto): dto for dto in RESULT_TYPES}
    for name, schema in STRATEGY_SCHEMAS.items():
        if getattr(schema, "_target_", None) == strategy_target and name in by_kind:
            return by_kind[name]
    return None


def check_objective_for_strategy(key: str, strategy_target: str | None) -> None:
    dto = result_type_for(strategy_target)
    if dto is None:  # a strategy from outside the package: some result must have the first segment
        head = key.split(".", 1)[0]
        if not any(head in model.model_fields for model in RESULT_TYPES):
            suggested = ", ".join(f"objective={k}" for k in OBJECTIVES)
            raise ObjectiveError(f"objective={key!r}: {head!r} is not a result field; use e.g. {suggested}")
        return
    problem = _walk(dto, key.split("."))
    if problem is not None:
        suggested = ", ".join(f"objective={k}" for k in OBJECTIVES if _walk(dto, k.split(".")) is None)
        raise ObjectiveError(
            f"objective={key!r}: {problem} in the result of strategy={_kind(dto)}; use e.g. {suggested} "
            "(every field: townlet-train --schema)"
        )


def _walk(model: type[BaseModel], parts: list[str]) -> str | None:
    """None when ``parts`` lead to a number through nested models and float maps, else why not."""
    node: Any = model
    for depth, part in enumerate(parts):
        where = ".".join(parts[: depth + 1])
        if _is_float_map(node):
            return None if depth == len(parts) - 1 else f"{where!r} is a number, not a group"
        if not (isinstance(node, type) and issubclass(node, BaseModel)):
            return f"{'.'.join(parts[:depth])!r} has no fields"
        field = node.model_fields.get(part)
        if field is None:
            return f"{where!r} is not a field"
        node = _unwrap(field.annotation)
    if _is_float_map(node) or (isinstance(node, type) and issubclass(node, BaseModel)):
        return f"{'.'.join(parts)!r} is a group of values, not a number"
    if node not in (int, float):
        return f"{'.'.join(parts)!r} is not a number"
    return None


def _unwrap(annotation: Any) -> Any:
    """``X | None`` and ``Annotated[X, ...]`` → ``X`` (a union of two real types stays as it is)."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin is typing.Union or origin is types.UnionType:
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _is_float_map(node: Any) -> bool:
    return typing.get_origin(node) is dict and typing.get_args(node)[1:] == (float,)


def objective_value(result: Any, key: str, mode: str = "max") -> float:
    """The float at ``key``; null/NaN maps to the worst value for ``mode`` so sweepers rank it last."""
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
    if node is None:
        return worst
    value = float(node)
    return value if math.isfinite(value) else worst
