"""Hydra takes launchers only from the ``hydra_plugins`` namespace: see :mod:`townlet.sweeps.slurm`."""
