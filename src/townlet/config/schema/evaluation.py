"""Schema of the ``evaluation`` block: how a run judges its trained policy at the end."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EvaluationConfig:
    """Episodes on fixed seeds (``seed + seed_offset``), so every policy of a run meets the same towns."""

    enabled: bool = True
    episodes: int = 2
    seed_offset: int = 10_000
    baselines: bool = True
