"""Behaviour cloning (``strategy=bc``); :mod:`.run` holds the run, the other modules its parts.

``townlet.strategies.bc.BCStrategy`` is the Hydra ``_target_`` in configs and saved run snapshots.
"""

from townlet.config.schema.strategy_bc import BCConfigError
from townlet.strategies.bc.run import BCStrategy

__all__ = ["BCConfigError", "BCStrategy"]
