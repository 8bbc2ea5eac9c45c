"""Real-cluster sweeps for ``launcher=slurm`` (Slurm 22.05 from ``.ci/slurm/local-cluster.sh``).

Without ``TOWNLET_SLURM_TESTS=1`` the cluster tests skip (they need root to start a cluster). With it
(CI sets it after starting the cluster) a machine where the cluster is not usable FAILS them with the
reason: a skipped SLURM suite in CI would hide exactly the bugs these tests exist for.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SUPPORT = REPO_ROOT / "tests" / "_support"
ENABLE_ENV = "TOWNLET_SLURM_TESTS"
#: Tiny BC jobs: a 64-tick dataset, 2 agents, 32-unit MLP; one CPU per task so two run side by side.
TINY = [
    "strategy=bc",
    "world.num_envs=2",
    "world.num_agents=2",
    "world.episode_length=32",
    "dataset.ticks=64",
    "strategy.epochs=1",
    "strategy.batch_size=64",
    "evaluation.episodes=1",
    "model.hidden_dim=32",
    "objective=accuracy",
    "device.num_threads=1",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
]


def _cluster_problem() -> str | None:
    """Why the cluster cannot run these tests, or None when it can."""
    missing = [
        c for c in ("sbatch", "squeue", "sacct", "scontrol", "srun", "sinfo") if shutil.which(c) is None
    ]
    if missing:
        return f"SLURM commands not on PATH: {', '.join(missing)}"

    def run(*cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)

    try:
        nodes = run("sinfo", "-h", "-o", "%t")
        if nodes.returncode != 0:
            return f"sinfo failed: {nodes.stderr.strip()}"
        if not {s.strip("*~#") for s in nodes.stdout.split()} & {"idle", "mix", "alloc", "comp"}:
            return f"no usable node (sinfo says: {nodes.stdout.split()})"
        acct = run("sacct", "-n", "-X", "-S", "now")
        if acct.returncode != 0:
            return f"accounting is off (sacct: {acct.stderr.strip()}); start with LOCAL_SLURM_ACCOUNTING=1"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"could not ask the cluster ({exc})"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    if os.environ.get(ENABLE_ENV) != "1":
        pytest.skip(
            f"real-cluster SLURM tests: set {ENABLE_ENV}=1 after "
            "`sudo LOCAL_SLURM_ACCOUNTING=1 .ci/slurm/local-cluster.sh` (.ci/run does both)"
        )
    problem = _cluster_problem()
    if problem is not None:
        pytest.fail(
            f"{ENABLE_ENV}=1 but the SLURM cluster is not usable: {problem}. "
            "Start it with `sudo LOCAL_SLURM_ACCOUNTING=1 .ci/slurm/local-cluster.sh`.",
            pytrace=False,
        )


class Sweep:
    """One ``townlet-train -m launcher=slurm`` running in the background, output in files."""

    def __init__(
        self, root: Path, name: str, overrides: list[str], *, sweep_dir: bool = True, tiny: bool = True
    ) -> None:
        self.root = root
        self.dir = root / "sweeps" / name
        self.out, self.err = root / f"{name}.out", root / f"{name}.err"
        train = Path(sys.executable).with_name("townlet-train")
        command = [str(train), "-m", "launcher=slurm", *(TINY if tiny else TINY[-3:]), *overrides]
        if sweep_dir:
            command.append(f"hydra.sweep.dir={self.dir}")
        env = dict(os.environ)
        env.pop("HYDRA_FULL_ERROR", None)
        env.update(
            TOWNLET_ROOT=str(root),
            TOWNLET_ALLOWED_TARGETS="echo_strategy",
            PYTHONPATH=os.pathsep.join([str(SUPPORT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        )
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=err, text=True)
        self.started = time.monotonic()

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the submitter did not return within {timeout} s (hung?); stderr:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8")

    def task_id(self, job: int, timeout: float = 120) -> str:
        """The SLURM id of job ``job`` (``<array>_<job>``), from submitit's folder."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            names = [p.name for p in (self.dir / ".submitit").glob("*_*") if p.is_dir()]
            arrays = {n.split("_")[0] for n in names if n.split("_")[0].isdigit()}
            if arrays:
                return f"{max(arrays, key=int)}_{job}"
            self._check_alive()
            time.sleep(0.5)
        pytest.fail(f"no SLURM array job appeared in {self.dir / '.submitit'}")

    def wait_epochs(self, job: int, n: int, timeout: float = 180) -> None:
        """Block until job ``job`` has logged ``n`` metrics lines (it is training)."""
        path = self.dir / str(job) / "metrics.jsonl"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.is_file() and len(path.read_text(encoding="utf-8").splitlines()) >= n:
                return
            self._check_alive()
            time.sleep(0.2)
        pytest.fail(f"job {job} did not log {n} epochs within {timeout} s; stderr:\n{self.stderr()}")

    def _check_alive(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"the submitter ended early (rc {self.proc.returncode}); stderr:\n{self.stderr()}")

    def record(self, job: int) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.dir / str(job) / "run.json").read_text(encoding="utf-8"))
        return data

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.dir / "sweep_summary.json").read_text(encoding="utf-8"))
        return data


def sacct_state(task_id: str, timeout: float = 20) -> str:
    """The task's final state in accounting (slurmdbd may lag a little behind the controller)."""
    deadline, state = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["sacct", "-n", "-P", "-X", "-j", task_id, "-o", "State"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.splitlines()
        state = out[-1].split()[0] if out and out[-1].strip() else ""  # "CANCELLED by 0"
        if state and state not in ("RUNNING", "PENDING", "COMPLETING", "REQUEUED"):
            return state
        time.sleep(1)
    return state


@pytest.fixture(scope="session")
def slurm_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TOWNLET_ROOT shared by this worker's sweeps, so the tiny dataset is captured once."""
    return tmp_path_factory.mktemp("slurm-root")


@pytest.fixture
def start_sweep(slurm_cluster: None, slurm_root: Path) -> Iterator[Callable[..., Sweep]]:
    started: list[Sweep] = []

    def start(name: str, *overrides: str, sweep_dir: bool = True, tiny: bool = True) -> Sweep:
        sweep = Sweep(slurm_root, name, list(overrides), sweep_dir=sweep_dir, tiny=tiny)
        started.append(sweep)
        return sweep

    yield start
    for sweep in started:  # a failed test must not leave its tasks on the shared cluster
        if sweep.proc.poll() is None:
            sweep.proc.kill()
            sweep.proc.wait()
        folder = sweep.dir / ".submitit"
        jobs = {p.name.split("_")[0] for p in folder.iterdir()} if folder.is_dir() else set()
        for job in sorted(j for j in jobs if j.isdigit()):
            subprocess.run(["scancel", job], capture_output=True, check=False)
