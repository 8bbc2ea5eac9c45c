"""Benchmarks run by ``townlet-bench <section>``; each is ``townlet.bench.<section>.run(args) -> dict``.

Sections measure with the shared protocol in ``townlet.bench.protocol`` (quiet gating, ABAB
alternation, median/best of >= 5 reps, ``contended`` marking). Speed lives here, never in tests.
"""
