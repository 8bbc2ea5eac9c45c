"""JSON-schema export so tools outside Python can validate ``result.json`` and ``run.json``."""

from __future__ import annotations

from typing import Any

from townlet.dto.policy import AnnealStageResultDTO, TrainingResult
from townlet.dto.run import RunRecord


def export_json_schema() -> dict[str, Any]:
    """The ``result`` (TrainingResult union), ``run`` and ``anneal_stage`` schemas in one document."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "townlet-train artefacts",
        "result": TrainingResult.model_json_schema(mode="serialization"),
        "run": RunRecord.model_json_schema(mode="serialization"),
        "anneal_stage": AnnealStageResultDTO.model_json_schema(mode="serialization"),
    }
