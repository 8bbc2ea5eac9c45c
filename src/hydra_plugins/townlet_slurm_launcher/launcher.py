"""``hydra.launcher._target_`` of ``launcher=slurm``.

Hydra instantiates a launcher only from a class defined under ``hydra_plugins`` (and found by its
plugin scan, which imports this module on every start), so this module names the class; the behaviour
lives in :mod:`townlet.sweeps.slurm`. Without the ``slurm`` extra (hydra-submitit-launcher) there is
nothing to offer, and the scan must not warn about it on every run.
"""

from __future__ import annotations

try:
    from townlet.sweeps.slurm import TownletSlurmLauncher as _TownletSlurmLauncher
except ImportError:  # pragma: no cover - only without the [slurm] extra
    pass
else:

    class TownletSlurmLauncher(_TownletSlurmLauncher):
        """The SLURM launcher of ``conf/launcher/slurm.yaml`` (see :mod:`townlet.sweeps.slurm`)."""
