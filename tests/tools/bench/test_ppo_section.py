"""``townlet-bench ppo``: the configured network, its roofline, and where an iteration's time goes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_ppo_section_measures_the_configured_network_threads_and_iteration_shares(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "ppo.json"
    bench = [sys.executable, "-m", "townlet_tools.bench", "ppo", "--quick", "--json", str(out), "model=mlp"]
    proc = subprocess.run([*bench, "device.num_threads=2"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ppo = json.loads(out.read_text())["sections"]["ppo"]
    minibatch, inputs, hidden = ppo["update"]["config"]["gemm"]
    assert minibatch == 1024 and hidden == 256 and inputs > hidden  # the MLP's first layer, not a conv's
    iteration = ppo["iteration"]
    assert iteration["collect_share"] + iteration["update_share"] == pytest.approx(1.0)
    assert iteration["cores_used"] > 0
    assert iteration["config"]["threads"] == 2  # the iteration runs with the configured threads
    assert {row["figure"] for row in ppo["rows"]} >= {"update samples/s", "collect share", "cores used"}


def test_auto_threads_are_the_usable_cores_despite_the_benchs_own_one_thread_pin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """townlet-bench pins OMP_NUM_THREADS=1 for its other sections; this one measures what a run uses."""
    from townlet.config.schema.device import usable_cores
    from townlet_tools.bench import ppo

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(ppo, "_SETUP", {"overrides": []})
    assert ppo._composed().device.num_threads == usable_cores()
    monkeypatch.setattr(ppo, "_SETUP", {"overrides": ["device.num_threads=1"]})
    assert ppo._composed().device.num_threads == 1
