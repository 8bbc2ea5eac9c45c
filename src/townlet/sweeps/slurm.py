"""``launcher=slurm``: hydra-submitit-launcher's SLURM launcher, with a sweep that always ends in a summary.

The plugin submits and requeues; it raises at the first task that left no result, ending without a
summary. Here such a task becomes a failed ``JobReturn`` and ``job_status.json`` and the summary is
written; sbatch's refusal is one line and exit 2. Inside a task, paths resolve from the submitter's root,
SIGTERM reaches the run's own stop handling, a restarted task resumes, submitit's warning waits for the
run's next safe point, and a failed run leaves the task non-zero so ``sacct`` says FAILED.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from townlet.runs import interrupt
from townlet.runs.atomic import atomic_write_json, read_json_object
from townlet.runs.rundir import RUN_FILE
from townlet.sweeps.jobs import JOB_STATUS_FILE

log = logging.getLogger(__name__)

REFUSAL_EXIT = 2
_HINT = "check hydra.launcher.partition, mem_gb, cpus_per_task, gpus_per_node, timeout_min, account, qos"


class SlurmTasksFailed(RuntimeError):
    """Some tasks of a SLURM sweep did not finish; the message says where the summary is."""


class _Unusable(Exception):
    """submitit refused the launcher's settings before anything was submitted."""


class TownletSlurmLauncher(SlurmLauncher):
    """The ``_target_`` of ``conf/launcher/slurm.yaml``; pickled into every array task."""

    task_function: Any  # the plugin's, set by Hydra through ``setup``

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.task_env: dict[str, str] = {}  # set in the submitter, applied in each task
        self.command: list[str] = []

    # ------------------------------------------------------------------------ submitting side

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and job_overrides
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        with read_write(self.config.hydra.sweep):  # ${now:} once: the tasks and submitit's folder share it
            self.config.hydra.sweep.dir = str(sweep_dir)
        unused = not sweep_dir.exists() or {p.name for p in sweep_dir.iterdir()} <= {"multirun.yaml"}
        root = OmegaConf.select(self.config, "paths.root_dir", default=None)
        self.task_env = {} if root is None else {"TOWNLET_ROOT": str(root)}
        self.command = list(sys.argv)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("SLURM sweep output dir: %s", sweep_dir)
        nums = range(initial_job_idx, initial_job_idx + len(job_overrides))
        for num, overrides in zip(nums, job_overrides, strict=True):
            log.info("\t#%d : %s", num, " ".join(filter_overrides(overrides)))
        from submitit.core.utils import FailedSubmissionError, UncompletedJobError

        said = io.StringIO()
        try:
            executor = self._executor()
            with contextlib.redirect_stderr(said):  # submitit echoes sbatch's complaint; it is said once
                jobs = executor.map_array(
                    self,
                    [list(o) for o in job_overrides],
                    ["hydra.sweep.dir"] * len(nums),
                    list(nums),
                    [f"job_id_for_{n}" for n in nums],
                    [Singleton.get_state()] * len(nums),
                )
        except (UncompletedJobError, FailedSubmissionError, _Unusable) as exc:  # sbatch or submitit said no
            if unused:
                shutil.rmtree(sweep_dir, ignore_errors=True)
            text = str(exc).strip() or said.getvalue().strip()
            why = "; ".join(s.strip().removeprefix("sbatch: error: ") for s in text.splitlines() if s.strip())
            what = "cannot submit" if isinstance(exc, _Unusable) else "sbatch refused the sweep"
            sys.stderr.write(f"townlet-train: error: {what}: {why} ({_HINT})\n")
            raise SystemExit(REFUSAL_EXIT) from None
        return self._collect(jobs, job_overrides, nums, sweep_dir)

    def _executor(self) -> Any:
        """submitit's executor from the plugin's settings, as the plugin maps them."""
        import submitit
        from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

        assert self.config is not None
        params = dict(self.params)
        # the folder under the sweep dir pinned in launch (the plugin's own copy resolved ${now:} apart)
        folder = str(OmegaConf.select(self.config, "hydra.launcher.submitit_folder", default=None) or "")
        folder = folder or params.pop("submitit_folder")
        params.pop("submitit_folder", None)
        requeues = params.pop("max_num_timeout", 0)
        generic = set(OmegaConf.structured(BaseQueueConf).keys())
        # sbatch --export=NONE also reaches the srun inside the job, which would then start the task
        # without submitit's own variables; srun takes the batch script's environment instead
        params["srun_args"] = ["--export=ALL"]
        try:
            executor = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=requeues)
            executor.update_parameters(**{k if k in generic else f"slurm_{k}": v for k, v in params.items()})
        except (RuntimeError, ValueError) as exc:  # no srun on PATH; a setting sbatch does not have
            raise _Unusable(str(exc).splitlines()[0]) from None
        return executor

    def _collect(
        self, jobs: Sequence[Any], job_overrides: Sequence[Sequence[str]], nums: range, sweep_dir: Path
    ) -> list[JobReturn]:
        """Every job's ``JobReturn``; one line, a failed status file and a failed return for each task
        that left no result or an error."""
        from submitit.core.utils import FailedJobError

        returns: list[JobReturn] = []
        problems: list[str] = []
        for job, overrides, num in zip(jobs, job_overrides, nums, strict=True):
            error = job.exception()  # waits for the task; None when it returned its JobReturn
            if error is None:
                returns.append(job.results()[0])  # the first task's, as the plugin does
                continue
            job_dir = self._job_dir(overrides, num)
            left_result = isinstance(error, FailedJobError)  # otherwise SLURM's state is final
            state = None if left_result else next(iter(str(job.state).split()), None)  # "CANCELLED by 0"
            line = problem_line(num, job.job_id, state, job_dir, job)
            problems.append(line)
            mark_failed(job_dir, num, job.job_id, overrides, line)
            failed = JobReturn(overrides=list(overrides), working_dir=str(job_dir))
            failed.status = JobStatus.FAILED
            returns.append(failed)
        assert self.config is not None
        counts = write_final_summary(self.config, sweep_dir)
        if problems:
            for line in problems:
                sys.stderr.write(f"townlet-train: {line}\n")
            sys.stderr.flush()
            failure = SlurmTasksFailed(
                f"{len(problems)} of {len(jobs)} SLURM task(s) did not finish; summary ({counts}): "
                f"{sweep_dir / 'sweep_summary.md'}; rebuild it with: townlet-sweep-report {sweep_dir}"
            )
            for ret in returns:
                if ret.status == JobStatus.FAILED:
                    ret.return_value = failure
        return returns

    def _job_dir(self, overrides: Sequence[str], num: int) -> Path:
        """Where Hydra put (or would have put) job ``num``: composed as in the task."""
        assert self.hydra_context is not None and self.config is not None
        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config):
            config.hydra.job.num = num
        return Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)

    # ------------------------------------------------------------------------ inside the task

    def __call__(
        self,
        sweep_overrides: list[str],
        job_dir_key: str,
        job_num: int,
        job_id: str,
        singleton_state: dict[type, Singleton],
    ) -> JobReturn:
        os.environ.update(self.task_env)
        if self.command:
            sys.argv = list(self.command)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the run installs its stop handler over the default
        if restart_count() > 0:
            # SLURM started this task again (requeue, preemption): the same job continues from its
            # checkpoint; set in the job's config, not as an override, so the sweep still matches
            self.task_function = functools.partial(_resumed, self.task_function)
        ret = self._run_to_safe_point(sweep_overrides, job_dir_key, job_num, job_id, singleton_state)
        if ret.status == JobStatus.FAILED:
            _ = ret.return_value  # raises the run's error: the task exits non-zero, sacct says FAILED
        return ret

    def _run_to_safe_point(self, *args: Any) -> JobReturn:
        """The plugin's task, with submitit's warning (time limit, preemption) held back until the run
        stopped at its next safe point: handled at once it would end the run between a checkpoint and
        its metrics line, and the resumed run would skip or repeat an epoch. submitit's own handler then
        requeues the task (or ends it when ``max_num_timeout`` is used up)."""
        warning = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))
        submitit_handler = signal.getsignal(warning)
        warned: list[int] = []

        def stop_first(signum: int, frame: FrameType | None) -> None:
            if not warned:
                warned.append(signum)
                interrupt.deliver(signum)  # the run records `interrupted` after its checkpoint

        signal.signal(warning, stop_first)
        try:
            return super().__call__(*args)
        except KeyboardInterrupt:
            if not warned or not callable(submitit_handler):
                raise
            submitit_handler(warned[0], None)  # requeues and exits, or raises when it may not
            raise
        finally:
            signal.signal(warning, submitit_handler)


def _resumed(task_function: Any, cfg: DictConfig) -> Any:
    with read_write(cfg), open_dict(cfg):
        cfg.resume = True
    return task_function(cfg)


def restart_count(env: dict[str, str] | None = None) -> int:
    """How many times SLURM has started this task again (``SLURM_RESTART_COUNT``; 0 the first time)."""
    value = (os.environ if env is None else env).get("SLURM_RESTART_COUNT", "")
    return int(value) if value.isdigit() else 0


def problem_line(num: int, task_id: str, state: str | None, job_dir: Path, job: Any) -> str:
    """``job 1 (SLURM 7_1, CANCELLED) interrupted by SIGTERM``: what ``run.json`` says, else the log."""
    record = read_json_object(job_dir / RUN_FILE) or {}
    status, error = record.get("status"), record.get("error")
    where = f"job {num} (SLURM {task_id}{', ' + state if state else ''})"
    if status == "interrupted":
        return f"{where} interrupted by {record.get('signal') or 'a signal'}; continue it with resume=true"
    if status == "failed" and error:
        kind = str(record.get("error_type") or "").rsplit(".", 1)[-1]
        line = " ".join((f"{kind}: {error}" if kind else str(error)).split())
        return f"{where} failed: {line if len(line) <= 300 else line[:299] + '…'}"
    said = f"run.json says {status}" if status else "no run.json"
    return f"{where} ended without a result ({said}); its log: {job.paths.stderr}"


def mark_failed(job_dir: Path, num: int, task_id: str, overrides: Sequence[str], line: str) -> None:
    """A failed ``job_status.json`` for a task whose own callback did not record its failure (it
    stopped on a signal or was killed), so the summary lists it as failed."""
    if (read_json_object(job_dir / JOB_STATUS_FILE) or {}).get("status") == "failed":
        return
    payload = {"num": num, "status": "failed", "overrides": list(overrides), "error": line}
    payload["slurm_id"] = task_id
    try:
        job_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(job_dir / JOB_STATUS_FILE, payload)
    except OSError as exc:
        log.warning("could not write %s in %s: %s", JOB_STATUS_FILE, job_dir, exc)


def write_final_summary(config: DictConfig, sweep_dir: Path) -> str:
    """Write the sweep summary once every task is over; its counts as text."""
    from townlet.sweeps.render import write_summary

    def select(key: str) -> Any:
        return OmegaConf.select(config, key, default=None, throw_on_resolution_failure=False)

    metrics = select("hydra.callbacks.sweep_summary.metrics")
    try:
        summary = write_summary(
            sweep_dir,
            objective=None if select("objective") is None else str(select("objective")),
            mode=None if select("objective_mode") is None else str(select("objective_mode")),
            metrics=None if metrics is None else [str(m) for m in metrics],
        )
    except Exception as exc:  # the sweep's end must be reported even when the summary cannot be
        log.warning("could not write the sweep summary in %s: %s", sweep_dir, exc)
        return "not written"
    c = summary.counts
    return ", ".join(f"{c[k]} {k}" for k in ("ok", "failed", "diverged", "incomplete") if c.get(k))
