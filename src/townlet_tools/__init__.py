"""Tools that ship beside the runtime package but that no training run uses.

``bench`` (the ``townlet-bench`` sections), ``oracle`` (the plain-Python reference town the tests and
the ``sim`` section check the vectorised town against), ``legacy`` (the importer of the original
capture layout, plugged into ``townlet-dataset`` as ``import-legacy``) and ``sb3`` (the town as a
Stable-Baselines3 ``VecEnv``, to compare against a third-party learner). ``townlet`` never imports
this package; it imports ``townlet``.
"""
