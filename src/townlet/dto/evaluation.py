"""Evaluation results: how a policy does in the town, next to the scripted and random baselines."""

from __future__ import annotations

from pydantic import Field

from townlet.dto.base import FrozenModel


class PolicyEvaluationDTO(FrozenModel):
    """Episode statistics of one policy on one world config (greedy unless ``stochastic``)."""

    policy: str = Field(description="label: 'trained', 'scripted', 'random' or a checkpoint path")
    episodes: int = Field(ge=0)
    agent_ticks: int = Field(default=0, ge=0)
    mean_return: float
    return_std: float = Field(ge=0)
    faint_rate: float = Field(ge=0, description="faints per agent per episode")
    mean_needs: float = Field(ge=0, le=1, description="mean need satisfaction over agents, ticks and needs")
    needs: dict[str, float] = Field(default_factory=dict, description="mean satisfaction per need")
    conflicts_per_100_agent_ticks: float = Field(ge=0)
    scripted_agreement: float | None = Field(
        default=None, ge=0, le=1, description="share of ticks where the policy picked the scripted action"
    )
    events: dict[str, float] = Field(default_factory=dict, description="EVENT_COUNTERS totals")
    seed: int | None = None
    stochastic: bool = False


class EvaluationBlock(FrozenModel):
    """The trained policy against the two baselines, evaluated on the same seeds."""

    policy: PolicyEvaluationDTO
    scripted: PolicyEvaluationDTO | None = None
    random: PolicyEvaluationDTO | None = None
    world: str | None = Field(default=None, description="world config name")
    seed: int | None = None
