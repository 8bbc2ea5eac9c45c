"""Anneal: a schedule of BC and PPO stages that hands the policy from the teacher to the learner.

``run.py`` is the algorithm; the other modules are its steps. ``AnnealStrategy`` is addressed as
``townlet.strategies.anneal.AnnealStrategy`` by ``conf/strategy/anneal.yaml`` and saved snapshots.
"""

from townlet.strategies.anneal.persist import baseline_key, default_dataset_label
from townlet.strategies.anneal.progress import STAGE_FILE
from townlet.strategies.anneal.run import AnnealStrategy
from townlet.strategies.anneal.schedule import AnnealConfigError, Stage
from townlet.strategies.anneal.settings import BASELINE_UPDATES
from townlet.strategies.anneal.stages import STAGES_DIR, TaggedMetrics
from townlet.strategies.anneal.summary import RESULTS_FILE

__all__ = [
    "BASELINE_UPDATES",
    "RESULTS_FILE",
    "STAGES_DIR",
    "STAGE_FILE",
    "AnnealConfigError",
    "AnnealStrategy",
    "Stage",
    "TaggedMetrics",
    "baseline_key",
    "default_dataset_label",
]
