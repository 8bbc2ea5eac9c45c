"""Result DTOs and run records: the typed contract between a run and everything that reads it.

Pydantic only; imports nothing else of ours, and never torch.
"""

from townlet.dto.base import SCHEMA_VERSION, FrozenModel, TrainingResultBase
from townlet.dto.evaluation import EvaluationBlock, PolicyEvaluationDTO
from townlet.dto.policy import (
    RESULT_TYPES,
    AnnealStageResultDTO,
    AnnealSummaryDTO,
    AnyTrainingResult,
    BCTrainingResultDTO,
    PPOTrainingResultDTO,
    ResultDTO,
    TrainingResult,
    load_result,
)
from townlet.dto.run import RunRecord, RunStatus

__all__ = [
    "RESULT_TYPES",
    "SCHEMA_VERSION",
    "AnnealStageResultDTO",
    "AnnealSummaryDTO",
    "AnyTrainingResult",
    "BCTrainingResultDTO",
    "EvaluationBlock",
    "FrozenModel",
    "PPOTrainingResultDTO",
    "PolicyEvaluationDTO",
    "ResultDTO",
    "RunRecord",
    "RunStatus",
    "TrainingResult",
    "TrainingResultBase",
    "load_result",
]
