"""What the stages run so far have produced: the checkpoint to go on from, and the candidates to end with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from townlet.runs.atomic import atomic_write_json

if TYPE_CHECKING:
    from townlet.dto import AnnealStageResultDTO
    from townlet.promotion.rules import GuardrailMetrics
    from townlet.strategies.context import TrainingContext


@dataclass(frozen=True)
class Passing:
    """A stage whose policy the run may end with: its index, evaluated return, checkpoint, evaluation."""

    index: int
    mean_return: float | None
    checkpoint: str | None
    evaluation: Any


def improves(value: float | None, best: Passing | None) -> bool:
    """At least as good as the best so far (ties go to the later, longer-trained stage)."""
    if value is None:
        return best is None
    return best is None or best.mean_return is None or value >= best.mean_return


@dataclass
class Progress:
    """What the stages run so far have left for the next one and for the end of the run."""

    checkpoint: str | None  # what the next stage starts from
    last_passing: Passing  # where a failed BC stage rolls back to
    best: Passing | None = None  # the best-evaluated passing stage: where a return flag rolls back to
    evaluation: Any = None  # the latest stage evaluation
    bc_accuracy: float | None = None
    bc_passed: bool = True
    previous: GuardrailMetrics | None = None  # the PPO stages' metrics so far (chain_stages baseline)
    observed: dict[int, GuardrailMetrics] = field(default_factory=dict)  # per cycle: next baselines
    results: list[AnnealStageResultDTO] = field(default_factory=list)
    stage_dirs: list[Path] = field(default_factory=list)

    def record(self, result: AnnealStageResultDTO, child: TrainingContext) -> None:
        """Keep the stage's verdict and write it to its ``stage.json``."""
        self.results.append(result)
        self.stage_dirs.append(child.run_dir.path)
        write_stage(child.run_dir.path, result)

    def advance(self, index: int, result: AnnealStageResultDTO, dto: Any) -> None:
        """Move past a stage the run may end with: the next stage starts from its checkpoint."""
        self.checkpoint = getattr(dto, "checkpoint", None) or self.checkpoint
        self.evaluation = getattr(dto, "evaluation", None) or self.evaluation
        self.last_passing = Passing(index, result.mean_return, self.checkpoint, self.evaluation)
        if not result.anneal_return_flag and improves(result.mean_return, self.best):
            self.best = self.last_passing


STAGE_FILE = "stage.json"


def write_stage(stage_dir: Path, result: AnnealStageResultDTO) -> None:
    """``stage.json``: the stage's result, rewritten if a later rollback marks it."""
    atomic_write_json(stage_dir / STAGE_FILE, result.model_dump(mode="json"))
