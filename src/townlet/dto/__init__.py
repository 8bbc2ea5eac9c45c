"""Result DTOs and run records: the typed contract between a run and everything that reads it.

Pydantic only; imports nothing else of ours, and never torch.
"""

from townlet.dto.evaluation import EvaluationBlock, PolicyEvaluationDTO
from townlet.dto.policy import (
    RESULT_TYPES,
    AnnealStageResultDTO,
    AnnealSummaryDTO,
    BCTrainingResultDTO,
    PPOTrainingResultDTO,
    ResultDTO,
    TrainingResult,
    load_result,
)
from townlet.dto.run import RunRecord, RunStatus

__all__ = [
    "RESULT_TYPES",
    "AnnealStageResultDTO",
    "AnnealSummaryDTO",
    "BCTrainingResultDTO",
    "EvaluationBlock",
    "PPOTrainingResultDTO",
    "PolicyEvaluationDTO",
    "ResultDTO",
    "RunRecord",
    "RunStatus",
    "TrainingResult",
    "load_result",
]
