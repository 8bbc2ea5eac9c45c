"""Schema of the ``evaluation`` block: how a run judges its trained policy at the end."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EvaluationConfig:
    """Episodes on fixed seeds (``seed + seed_offset``), so every policy of a run meets the same towns."""

    enabled: bool = True
    episodes: int = 16  # per policy; 2 episodes left a +-2 spread on the default world's returns
    seed_offset: int = 10_000
    baselines: bool = True
    # also every N PPO iterations (``eval_*`` keys on that metrics line); null = only at the end of the run
    every: int | None = None

    def __post_init__(self) -> None:
        if self.episodes < 1:  # 0 episodes would score every policy -inf: switching off is explicit
            raise ValueError(
                f"evaluation.episodes must be >= 1, got {self.episodes} (evaluation.enabled=false skips it)"
            )
        if self.every is not None and self.every < 1:
            raise ValueError(f"evaluation.every must be >= 1 or null, got {self.every}")
