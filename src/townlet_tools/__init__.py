"""Tools that ship beside the runtime package but that no training run uses.

``bench`` (the ``townlet-bench`` sections), ``oracle`` (the plain-Python reference town the tests and
the ``sim`` section check the vectorised town against) and ``legacy`` (the importer of the original
capture layout, plugged into ``townlet-dataset`` as ``import-legacy``). ``townlet`` never imports this
package; it imports ``townlet``.
"""
