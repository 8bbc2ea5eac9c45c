"""Hydra's own node cannot make Hydra call anything but the project's callbacks.

Two layers: the snapshot gate (``townlet.config.snapshot``) refuses a saved config's callback or
logging factory before Hydra reads it; Hydra's execution whitelist (``HYDRA_TARGETS``, held around the
entry point) refuses whatever reaches Hydra another way, e.g. a command-line override. Either way: one
line, exit 2, nothing it asked for done.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.slow

TINY = [
    "strategy=bc",
    "strategy.epochs=1",
    "world.num_envs=2",
    "world.num_agents=2",
    "world.episode_length=32",
    "dataset.ticks=64",
    "evaluation.episodes=1",
]


def _callback(marker: Path) -> dict[str, Any]:
    return {"callbacks": {"evil": {"_target_": "shutil.copyfile", "src": __file__, "dst": str(marker)}}}


def _logging_factory(marker: Path) -> dict[str, Any]:
    handler = {"()": "os.system", "command": f"touch {marker}"}
    return {"job_logging": {"version": 1, "handlers": {"x": handler}, "root": {"handlers": ["x"]}}}


@pytest.mark.parametrize("hostile", [_callback, _logging_factory], ids=["callback", "logging_factory"])
def test_a_snapshot_cannot_make_hydra_call_code(
    hostile: Callable[[Path], dict[str, Any]],
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    done = run_cli(*TINY, f"hydra.run.dir={run}", f"paths.data_dir={tmp_path / 'data'}")
    assert done.returncode == 0, done.stderr[-2000:]
    snapshot = run / ".hydra" / "config.yaml"
    config = yaml.safe_load(snapshot.read_text())
    marker = tmp_path / "PWNED"
    snapshot.write_text(yaml.safe_dump({**config, "hydra": hostile(marker)}))

    proc = run_cli("-cp", str(run / ".hydra"), "-cn", "config", f"hydra.run.dir={tmp_path / 'again'}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().count("\n") == 0 and "config error" in proc.stderr
    assert not marker.exists()


def test_hydras_whitelist_refuses_a_callback_from_the_command_line(
    run_cli: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    marker = tmp_path / "PWNED"
    evil = "+hydra.callbacks.evil"
    proc = run_cli(
        *TINY,
        f"hydra.run.dir={tmp_path / 'run'}",
        f"{evil}._target_=shutil.copyfile",
        f"{evil}.src={__file__}",
        f"{evil}.dst={marker}",
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().count("\n") == 0 and "may not be built from a config" in proc.stderr
    assert not marker.exists()
