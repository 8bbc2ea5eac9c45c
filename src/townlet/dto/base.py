"""Base of every DTO: frozen, strict about unknown keys, never NaN. Undefined statistics (std of one sample,
a diverged loss) become ``None`` in optional fields, keeping files strict JSON; required fields refuse."""

from __future__ import annotations

import math
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = "2.0.0"


def newer_schema(data: Any) -> str | None:
    """The ``schema_version`` of a record newer than the one this code writes, else None: such a record
    may hold fields this code does not know, which reading or rewriting would drop, so callers refuse it."""
    version = data.get("schema_version") if isinstance(data, dict) else None
    parts = str(version).split(".")
    if version is None or not all(p.isdigit() for p in parts):
        return None
    ours = [int(p) for p in SCHEMA_VERSION.split(".")]
    return str(version) if [int(p) for p in parts] > ours else None


def _scrub_mapping(value: dict[Any, Any]) -> dict[Any, Any]:
    """Drop non-finite float entries (recursively): a metric map has no slot for ``None``."""
    return {
        key: _scrub_mapping(item) if isinstance(item, dict) else item
        for key, item in value.items()
        if not (isinstance(item, float) and not math.isfinite(item))
    }


class FrozenModel(BaseModel):
    """Frozen, ``extra="forbid"``, finite floats only; the root of all our DTOs."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, ser_json_inf_nan="null")

    @model_validator(mode="before")
    @classmethod
    def _non_finite_to_none(cls, data: Any) -> Any:
        """Turn NaN/Inf into None for optional fields and inside float dicts (see module doc)."""
        if not isinstance(data, dict):
            return data
        cleaned = dict(data)
        for name, field in cls.model_fields.items():
            value = cleaned.get(name)
            optional = type(None) in typing.get_args(field.annotation)
            if isinstance(value, float) and not math.isfinite(value) and optional:
                cleaned[name] = None
            elif isinstance(value, dict):
                cleaned[name] = _scrub_mapping(value)
        return cleaned


class TrainingResultBase(FrozenModel):
    schema_version: str = SCHEMA_VERSION
    duration_sec: float | None = Field(default=None, ge=0)
    stop_reason: str | None = Field(
        default=None,
        description="why training ended before its budget (max_wall_sec, target_return: the stop settings)",
    )
