"""Training result DTOs, one per strategy, and the discriminated ``TrainingResult`` envelope: a result file
is a contract, so every field is typed (conflict statistics live in the typed ``conflict`` map)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, RootModel, field_validator

from townlet.dto.base import TrainingResultBase
from townlet.dto.evaluation import EvaluationBlock

Prob = Annotated[float, Field(ge=0, le=1)]
NonNeg = Annotated[float, Field(ge=0)]


class _RunFields(TrainingResultBase):
    """Fields shared by the strategy-level results (not by anneal stages)."""

    seed: int | None = None
    device: str | None = None
    checkpoint: str | None = Field(default=None, description="path of the best/last checkpoint")
    init_from: str | None = None
    evaluation: EvaluationBlock | None = None


class BCTrainingResultDTO(_RunFields):
    """Behaviour cloning: supervised imitation of the scripted teacher."""

    kind: Literal["bc"] = "bc"
    manifest: str = Field(description="dataset manifest path or dataset label")
    accuracy: Prob = Field(description="accuracy of the reported checkpoint on the training split")
    loss: NonNeg = Field(description="mean cross-entropy of the reported checkpoint on the training split")
    learning_rate: float = Field(gt=0)
    batch_size: int = Field(gt=0)
    epochs: int = Field(gt=0, description="configured maximum number of epochs")
    val_accuracy: Prob | None = None
    val_loss: NonNeg | None = None
    weight_decay: NonNeg | None = None
    epochs_run: int | None = Field(default=None, ge=0)
    best_epoch: int | None = Field(default=None, ge=0)
    early_stopped: bool = False
    train_samples: int | None = Field(default=None, ge=0)
    val_samples: int | None = Field(default=None, ge=0)
    samples_per_sec: NonNeg | None = None
    model: str | None = Field(default=None, description="model kind (conv|mlp)")


class PPOTrainingResultDTO(_RunFields):
    """PPO: the summary of the final update epoch (telemetry 1.2 keys) plus run-level totals."""

    kind: Literal["ppo"] = "ppo"
    # core
    epoch: float = Field(gt=0)
    updates: NonNeg
    transitions: NonNeg
    loss_policy: float
    loss_value: float
    loss_entropy: float = Field(description="mean policy entropy (positive)")
    loss_total: float
    clip_fraction: Prob
    adv_mean: float
    adv_std: NonNeg
    grad_norm: NonNeg
    kl_divergence: float
    lr: float = Field(gt=0)
    steps: NonNeg = Field(description="cumulative transitions trained on")
    telemetry_version: float = 1.2
    # health
    adv_zero_std_batches: NonNeg = 0.0
    adv_min_std: NonNeg = 0.0
    clip_triggered_minibatches: NonNeg = 0.0
    clip_fraction_max: Prob = 0.0
    # timing, data and the event counters
    epoch_duration_sec: NonNeg | None = None
    data_mode: Literal["rollout", "replay", "mixed"] | None = None
    cycle_id: float | None = None
    batch_entropy_mean: float | None = None
    batch_entropy_std: NonNeg | None = None
    grad_norm_max: NonNeg | None = None
    kl_divergence_max: float | None = None
    reward_advantage_corr: float | None = Field(default=None, ge=-1, le=1)
    rollout_ticks: NonNeg | None = None
    log_stream_offset: NonNeg | None = None
    queue_conflict_events: NonNeg | None = None
    queue_conflict_intensity_sum: NonNeg | None = None
    shared_meal_events: NonNeg | None = None
    late_help_events: NonNeg | None = None
    shift_takeover_events: NonNeg | None = None
    chat_success_events: NonNeg | None = None
    chat_failure_events: NonNeg | None = None
    chat_quality_mean: Prob | None = None
    # anneal context
    anneal_cycle: float | None = None
    anneal_stage: str | None = None
    anneal_dataset: str | None = None
    anneal_bc_accuracy: Prob | None = None
    anneal_bc_threshold: Prob | None = None
    anneal_bc_passed: bool | None = None
    anneal_loss_baseline: float | None = None
    anneal_queue_baseline: float | None = None
    anneal_intensity_baseline: float | None = None
    anneal_loss_flag: bool | None = None
    anneal_queue_flag: bool | None = None
    anneal_intensity_flag: bool | None = None
    # baseline (behaviour data)
    baseline_sample_count: NonNeg | None = None
    baseline_reward_mean: float | None = None
    baseline_reward_sum: float | None = None
    baseline_reward_sum_mean: float | None = None
    baseline_log_prob_mean: float | None = None
    # conflict feature statistics of the training data (queue lengths, rivalry, ...)
    conflict: dict[str, float] = Field(default_factory=dict)
    # run-level totals
    iterations: int | None = Field(default=None, ge=0, description="rollout+update iterations")
    env_steps: NonNeg | None = Field(default=None, description="agent-steps collected in rollouts")
    episodes: int | None = Field(default=None, ge=0)
    episode_return_mean: float | None = None
    explained_variance: float | None = None
    target_kl_stops: int | None = Field(default=None, ge=0, description="epochs cut short by target_kl")
    samples_per_sec: NonNeg | None = None
    # the top-level figures are the final iteration's; these say whether an earlier one was better
    best_iteration: int | None = Field(default=None, ge=0, description="iteration of the best checkpoint")
    best: dict[str, float] = Field(default_factory=dict, description="summary of the best iteration")

    @field_validator("reward_advantage_corr", mode="before")
    @classmethod
    def _clamp_corr(cls, value: object) -> object:
        """np.corrcoef can overshoot ±1 by an ulp; clamp that, reject anything larger."""
        if isinstance(value, int | float) and 1.0 < abs(value) <= 1.0 + 1e-6:
            return 1.0 if value > 0 else -1.0
        return value


class AnnealStageResultDTO(TrainingResultBase):
    """One stage (a BC or a PPO block) of an anneal schedule."""

    kind: Literal["anneal_stage"] = "anneal_stage"
    cycle: NonNeg
    mode: Literal["bc", "ppo"]
    epochs: int | None = Field(default=None, ge=0)
    accuracy: Prob | None = None
    loss: NonNeg | None = None
    threshold: Prob | None = None
    passed: bool | None = None
    bc_weight: Prob | None = None
    rolled_back: bool | None = None
    loss_total: float | None = None
    loss_policy: float | None = None
    loss_value: float | None = None
    queue_conflict_events: NonNeg | None = None
    queue_conflict_intensity_sum: NonNeg | None = None
    anneal_loss_flag: bool | None = None
    anneal_queue_flag: bool | None = None
    anneal_intensity_flag: bool | None = None
    # evaluated return of the stage's policy, the reference it was judged against, and the verdict
    mean_return: float | None = None
    return_baseline: float | None = None
    anneal_return_flag: bool | None = None
    bc: BCTrainingResultDTO | None = None
    ppo: PPOTrainingResultDTO | None = None


class AnnealSummaryDTO(_RunFields):
    """The whole anneal schedule: stages, guard-rail verdict and promotion readiness."""

    kind: Literal["anneal"] = "anneal"
    stages: list[AnnealStageResultDTO]
    status: Literal["PASS", "HOLD", "FAIL"]
    dataset_label: str
    baselines: dict[str, dict[str, float]] = Field(default_factory=dict)
    promotion_pass_streak: int | None = Field(default=None, ge=0)
    promotion_candidate_ready: bool | None = None
    promotion_state: str | None = None


# Any strategy-level result (what ``result.json`` holds); ``RESULT_TYPES`` for ``isinstance``.
ResultDTO = BCTrainingResultDTO | PPOTrainingResultDTO | AnnealSummaryDTO
RESULT_TYPES = (BCTrainingResultDTO, PPOTrainingResultDTO, AnnealSummaryDTO)


class TrainingResult(RootModel[Annotated[ResultDTO, Field(discriminator="kind")]]):
    """Envelope for ``result.json``: ``TrainingResult.model_validate_json(text).root`` is the DTO."""

    model_config = {"frozen": True}


def load_result(text: str | bytes) -> ResultDTO:
    """Parse a ``result.json`` payload into the concrete DTO named by its ``kind``."""
    return TrainingResult.model_validate_json(text).root
