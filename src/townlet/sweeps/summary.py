"""Sweep summaries: one table per multirun, rebuilt from what each job left on disk.

Why from disk: a sweep's jobs may run in this process (basic launcher), in loky workers (joblib), in
submitit processes or on a SLURM node, and the sweep may die half-way. The only thing all of those share
is the sweep directory, so the summary is a pure function of it: every job dir's ``run.json`` /
``result.json`` (written by the runner), its ``.hydra/overrides.yaml`` and the small ``job_status.json``
that :class:`SweepSummaryCallback` drops after each job. ``townlet-sweep-report <sweep dir>`` calls the
same :func:`write_summary`.

This module is the public face of the package; the work is done by :mod:`townlet.sweeps.jobs` (one job
dir → one row), :mod:`townlet.sweeps.aggregate` (rows → summary), :mod:`townlet.sweeps.render`
(summary → files), :mod:`townlet.sweeps.plots` (summary → PNGs), :mod:`townlet.sweeps.text` (the
``townlet-report`` view) and :mod:`townlet.sweeps.callback`. ``townlet.sweeps.summary.SweepSummaryCallback``
stays importable here because it is the ``_target_`` in conf/hydra/default.yaml and in every saved
run snapshot.
"""

from __future__ import annotations

from townlet.sweeps.aggregate import (
    DEFAULT_METRICS,
    SeedGroup,
    SweepReportError,
    SweepSummary,
    build_summary,
)
from townlet.sweeps.callback import SweepSummaryCallback
from townlet.sweeps.jobs import (
    DIVERGED,
    FAILED,
    INCOMPLETE,
    JOB_STATUS_FILE,
    OK,
    RESULT_FILE,
    RUN_RECORD_FILE,
    JobRow,
    discover_job_dirs,
    read_job,
)
from townlet.sweeps.render import LOCK_FILE, SUMMARY_STEM, render_csv, render_markdown, write_summary

__all__ = [
    "DEFAULT_METRICS",
    "DIVERGED",
    "FAILED",
    "INCOMPLETE",
    "JOB_STATUS_FILE",
    "LOCK_FILE",
    "OK",
    "RESULT_FILE",
    "RUN_RECORD_FILE",
    "SUMMARY_STEM",
    "JobRow",
    "SeedGroup",
    "SweepReportError",
    "SweepSummary",
    "SweepSummaryCallback",
    "build_summary",
    "discover_job_dirs",
    "read_job",
    "render_csv",
    "render_markdown",
    "write_summary",
]
