"""Result DTOs and run records: the typed contract between a run and its readers (Pydantic only, no torch)."""

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
    "RESULT_TYPES", "AnnealStageResultDTO", "AnnealSummaryDTO", "BCTrainingResultDTO", "EvaluationBlock",
    "PPOTrainingResultDTO", "PolicyEvaluationDTO", "ResultDTO", "RunRecord", "RunStatus", "TrainingResult",
    "load_result",
]  # fmt: skip
