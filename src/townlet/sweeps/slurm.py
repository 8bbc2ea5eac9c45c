"""``launcher=slurm``: hydra-submitit-launcher's SLURM launcher, made to end every sweep truthfully.

What the plain launcher gets wrong on a real cluster, and where it is handled here:

* **Paths.** ``${townlet_root:}`` was resolved again inside each task, so a task started with
  ``--export=NONE`` wrote into the checkout while the submitter summarised an empty sweep. The
  submitter resolves root, data, state, output and sweep dirs once and pins them in every task.
* **Lost tasks.** It waited on ``sacct`` (forever without accounting) and crashed with a traceback
  on a task that left no result, so the final summary was never written. :mod:`.slurm_queue` watches
  squeue and sacct; a lost task becomes a failed row, the summary is written, and the command exits 1
  with one line per task that did not finish plus the ``townlet-sweep-report`` hint.
* **Rejections and presets.** An sbatch rejection is one line, not a traceback; ``signal_delay_s``
  is capped at half of ``timeout_min`` (otherwise the time-limit warning arrives at once); the
  job is submitted ``--no-requeue`` unless ``max_num_timeout > 0``.
* **Inside the task** (:mod:`.slurm_task`): SIGTERM and SIGUSR2 stop the run as ``interrupted`` with
  the reason (cancelled, timed out, preempted, requeued); a requeued task resumes from its checkpoint
  (``resume=true`` is set for it); a failed run exits non-zero so ``sacct`` says FAILED; ``run.json``
  records the submitter's command (``record.py`` adds the SLURM ids from the task's environment).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides, run_job, setup_globals
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import DictConfig, OmegaConf, open_dict

from townlet.sweeps.slurm_queue import LOST_AFTER_S, TaskOutcome, TaskWatch
from townlet.sweeps.slurm_report import (
    SlurmTaskFailed,
    SweepRefused,
    drop_unused_sweep_dir,
    job_dir_of,
    mark_failed,
    problem_line,
    refused_cleanup,
    write_final_summary,
)
from townlet.sweeps.slurm_task import (
    SlurmTaskStopped,
    StopReason,
    TaskSignals,
    amend_record,
    requeue_self,
    restart_count,
    stop_reason,
)

log = logging.getLogger(__name__)

PATH_KEYS = ("root_dir", "data_dir", "state_dir", "output_root")
#: How much earlier than ``--signal=SIG@delay`` asks SLURM may deliver it (its event resolution).
SLURM_SIGNAL_SLACK_S = 60
#: Environment override of the seconds a task may be unknown to squeue and sacct before it is lost.
LOST_AFTER_ENV = "TOWNLET_SLURM_LOST_AFTER_S"
_BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
_HINT = "check hydra.launcher.partition, mem_gb, cpus_per_task, gpus_per_node, timeout_min, account, qos"


class TownletSlurmLauncher(SlurmLauncher):
    """The ``_target_`` of ``conf/launcher/slurm.yaml``; pickled into every array task."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.pinned_env: dict[str, str] = {}
        self.pinned_paths: dict[str, str] = {}
        self.pinned_sweep_dir: str | None = None
        self.submit_command: list[str] = []
        self.time_limit_s = 0.0
        self.signal_delay_s = 0.0
        self.max_requeues = 0

    # ------------------------------------------------------------------------ submitting side

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        try:
            return self._launch(job_overrides, initial_job_idx)
        except SweepRefused as exc:  # one line and exit 2, whatever the entry point's error formatting
            if self.config is not None:
                drop_unused_sweep_dir(Path(str(self.config.hydra.sweep.dir)))
            sys.stderr.write(f"townlet-train: error: {exc}\n")
            sys.stderr.flush()
            raise SystemExit(exc.exit_code) from None

    def _launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and job_overrides
        params = self._checked_params()
        self._pin(self.config)
        sweep_dir = Path(str(self.pinned_sweep_dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        log.info("SLURM sweep output dir: %s", sweep_dir)
        for i, overrides in enumerate(job_overrides):
            log.info("\t#%d : %s", initial_job_idx + i, " ".join(filter_overrides(overrides)))
        jobs = self._submit(params, job_overrides, initial_job_idx, sweep_dir)
        lost_after = float(os.environ.get(LOST_AFTER_ENV) or LOST_AFTER_S)
        watch = TaskWatch(
            {j.job_id: j.paths.result_pickle for j in jobs}, read_result=_read_result, lost_after_s=lost_after
        )
        outcomes = watch.wait()
        return self._finish(jobs, outcomes, job_overrides, initial_job_idx, sweep_dir)

    def _checked_params(self) -> dict[str, Any]:
        """The launcher settings with the preset guards applied (one clear line when unusable)."""
        params = dict(self.params)
        timeout = params.get("timeout_min")
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
            raise SweepRefused(
                f"hydra.launcher.timeout_min must be a whole number of minutes >= 1 (got {timeout!r})"
            )
        delay = params.get("signal_delay_s", 120)
        requeues = params.get("max_num_timeout", 0)
        for key, value in (("signal_delay_s", delay), ("max_num_timeout", requeues)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise SweepRefused(f"hydra.launcher.{key} must be a whole number >= 0 (got {value!r})")
        # SLURM may send the warning up to a minute early: the cap keeps it in the second half of the run
        cap = max(1, timeout * 60 // 2 - SLURM_SIGNAL_SLACK_S)
        if delay > cap:
            log.info(
                "signal_delay_s %d s capped at %d s for timeout_min=%d (SLURM may signal up to %d s early)",
                delay, cap, timeout, SLURM_SIGNAL_SLACK_S,
            )  # fmt: skip
            delay = cap
        extra = dict(params.get("additional_parameters") or {})
        if not {"requeue", "no-requeue", "no_requeue"} & set(extra):
            extra["requeue" if requeues > 0 else "no-requeue"] = True  # SLURM requeues only when asked to
        if "export" in extra and "srun_args" not in params:
            # sbatch --export=NONE also reaches the srun inside the job, which would then start the
            # task without even SUBMITIT_EXECUTOR; the task gets the batch script's environment
            params["srun_args"] = ["--export=ALL"]
        params.update(signal_delay_s=delay, additional_parameters=extra)
        self.time_limit_s, self.signal_delay_s, self.max_requeues = 60.0 * timeout, float(delay), requeues
        return params

    def _pin(self, config: DictConfig) -> None:
        """Resolve the paths once, here, so every task writes where the submitter summarises."""
        for key in PATH_KEYS:
            value = OmegaConf.select(config, f"paths.{key}", default=None)
            if value is not None:
                self.pinned_paths[key] = str(value)
        if "root_dir" in self.pinned_paths:
            self.pinned_env["TOWNLET_ROOT"] = self.pinned_paths["root_dir"]
        self.pinned_sweep_dir = str(Path(str(config.hydra.sweep.dir)).resolve())
        self.submit_command = list(sys.argv)

    def _executor(self, params: dict[str, Any]) -> Any:
        import submitit
        from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

        base = set(OmegaConf.structured(BaseQueueConf).keys())
        try:
            executor = submitit.AutoExecutor(
                cluster="slurm", folder=params["submitit_folder"], slurm_max_num_timeout=self.max_requeues
            )
            executor.update_parameters(
                **{
                    key if key in base else f"slurm_{key}": value
                    for key, value in params.items()
                    if key not in ("submitit_folder", "max_num_timeout")
                }
            )
        except RuntimeError as exc:  # no srun on PATH
            raise SweepRefused(
                f"launcher=slurm needs SLURM's commands (srun, sbatch) on PATH: {exc}"
            ) from None
        except ValueError as exc:  # a setting sbatch does not have
            raise SweepRefused(f"hydra.launcher: {str(exc).splitlines()[0]}") from None
        return executor

    def _submit(
        self, params: dict[str, Any], job_overrides: Sequence[Sequence[str]], first: int, sweep_dir: Path
    ) -> list[Any]:
        from submitit.core.utils import FailedSubmissionError, UncompletedJobError

        executor = self._executor(params)
        job_params = [
            (list(o), "hydra.sweep.dir", first + i, f"job_id_for_{first + i}", Singleton.get_state())
            for i, o in enumerate(job_overrides)
        ]
        submitit_dir = sweep_dir / ".submitit"
        before = set(submitit_dir.iterdir()) if submitit_dir.is_dir() else set()
        said = io.StringIO()
        try:
            with contextlib.redirect_stderr(said):  # submitit prints sbatch's complaint; we say it once
                return list(executor.map_array(self, *zip(*job_params, strict=True)))
        except (UncompletedJobError, FailedSubmissionError) as exc:
            refused_cleanup(sweep_dir, before)
            said_lines = str(exc).strip().splitlines() or said.getvalue().strip().splitlines()
            text = "; ".join(
                line.strip().removeprefix("sbatch: error: ") for line in said_lines if line.strip()
            )
            raise SweepRefused(f"sbatch refused the sweep: {text} ({_HINT})") from None

    def _finish(
        self,
        jobs: list[Any],
        outcomes: dict[str, TaskOutcome],
        job_overrides: Sequence[Sequence[str]],
        first: int,
        sweep_dir: Path,
    ) -> list[JobReturn]:
        returns: list[JobReturn] = []
        problems: list[str] = []
        for i, (job, overrides) in enumerate(zip(jobs, job_overrides, strict=True)):
            outcome = outcomes[job.job_id]
            result = outcome.result
            if (
                outcome.kind == "success"
                and isinstance(result, JobReturn)
                and result.status == JobStatus.COMPLETED
            ):
                returns.append(result)
                continue
            num = first + i
            job_dir = job_dir_of(self.hydra_context, self.config, overrides, num, sweep_dir)
            line = problem_line(num, job.job_id, outcome, job_dir)
            problems.append(line)
            mark_failed(job_dir, num, job.job_id, outcome, overrides, line)
            returns.append(
                JobReturn(
                    overrides=list(overrides),
                    working_dir=str(job_dir),
                    status=JobStatus.FAILED,
                    _return_value=SlurmTaskFailed(line),
                )
            )
        assert self.config is not None
        counts = write_final_summary(self.config, sweep_dir)
        if problems:
            for line in problems:
                sys.stderr.write(f"townlet-train: {line}\n")
            sys.stderr.write(
                f"townlet-train: {len(problems)} of {len(jobs)} SLURM task(s) did not finish; "
                f"summary ({counts}): {sweep_dir / 'sweep_summary.md'}; "
                f"rebuild it with: townlet-sweep-report {sweep_dir}\n"
            )
            sys.stderr.flush()
            if str(OmegaConf.select(self.config, "hydra.sweeper._target_", default="")) == _BASIC_SWEEPER:
                raise SystemExit(1)  # the grid sweeper would re-raise the first failure as a traceback
        return returns

    # ------------------------------------------------------------------------ inside the task

    def __call__(
        self,
        sweep_overrides: list[str],
        job_dir_key: str,
        job_num: int,
        job_id: str,
        singleton_state: dict[type, Singleton],
    ) -> JobReturn:
        import submitit

        assert self.hydra_context is not None and self.config is not None and self.task_function is not None
        os.environ.update(self.pinned_env)
        if self.submit_command:
            sys.argv = list(self.submit_command)  # run.json records the user's command, not _submit.py
        signals = TaskSignals(self.time_limit_s, self.signal_delay_s).install()
        Singleton.set_state(singleton_state)
        setup_globals()
        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(sweep_overrides))
        with open_dict(config):
            config.hydra.job.id = submitit.JobEnvironment().job_id
            config.hydra.job.num = job_num
            self._apply_pins(config)
            if restart_count() > 0:
                config.resume = True  # a requeued task continues from its checkpoint
        run_dir = Path(str(OmegaConf.select(config, job_dir_key))) / str(config.hydra.sweep.subdir)
        try:
            ret = run_job(
                hydra_context=self.hydra_context,
                task_function=self.task_function,
                config=config,
                job_dir_key=job_dir_key,
                job_subdir_key="hydra.sweep.subdir",
            )
        except KeyboardInterrupt as exc:
            self._stopped(exc, signals, run_dir)
        if ret.status == JobStatus.FAILED:  # non-zero exit, so sacct says FAILED
            raise ret._return_value
        return ret

    def _apply_pins(self, config: DictConfig) -> None:
        for key, value in self.pinned_paths.items():
            if str(OmegaConf.select(config, f"paths.{key}", default=None)) != value:
                OmegaConf.update(config, f"paths.{key}", value)
        if self.pinned_sweep_dir is not None and str(config.hydra.sweep.dir) != self.pinned_sweep_dir:
            config.hydra.sweep.dir = self.pinned_sweep_dir

    def _stopped(self, exc: KeyboardInterrupt, signals: TaskSignals, run_dir: Path) -> NoReturn:
        """Record why the run stopped; leave without a result when SLURM will run the task again."""
        reason = stop_reason(exc, signals, self.max_requeues)
        amend_record(run_dir, reason)
        requeued = reason.requeued_by_slurm
        if reason.requeue_self:
            complaint = requeue_self()
            requeued = complaint is None
            if complaint is not None:
                reason = StopReason(f"{reason.text.split(':')[0]}: requeue refused by SLURM ({complaint})")
                amend_record(run_dir, reason)
        log.warning("task stopped: %s", reason.text)
        if requeued:
            raise SystemExit(0)  # no result file: the submitter waits for the restarted task
        raise SlurmTaskStopped(reason.text) from None


def _read_result(path: Path) -> tuple[str, Any]:
    """submitit's result file: ("success", JobReturn) or ("error", traceback text)."""
    import time

    from submitit.core.utils import pickle_load

    for attempt in range(3):
        try:
            kind, value = pickle_load(path)
            return str(kind), value
        except EOFError:  # still being written on a slow filesystem
            if attempt == 2:
                raise
            time.sleep(2)
    raise AssertionError("unreachable")
