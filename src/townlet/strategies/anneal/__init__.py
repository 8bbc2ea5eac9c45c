"""Anneal: a schedule of BC and PPO stages that hands the policy from the teacher to the learner.

``run.py`` is the algorithm; the other modules are its steps. ``AnnealStrategy`` is addressed as
``townlet.strategies.anneal.AnnealStrategy`` by ``conf/strategy/anneal.yaml`` and saved snapshots.
"""

from townlet.strategies.anneal.run import AnnealStrategy
from townlet.strategies.anneal.settings import AnnealConfigError

__all__ = ["AnnealConfigError", "AnnealStrategy"]
