"""``townlet-bench wall``: the whole training process under two interpreters, alternating."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TINY = [
    "strategy=ppo",
    "strategy.total_steps=256",
    "strategy.n_steps=32",
    "strategy.minibatch_size=64",
    "world.num_envs=2",
    "world.num_agents=2",
    "world.episode_length=40",
    "evaluation.episodes=1",
]


@pytest.mark.slow
def test_wall_times_both_interpreters_and_reports_their_ratio(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "wall.json"
    bench = [sys.executable, "-m", "townlet_tools.bench", "wall", "--quick", "--json", str(out)]
    proc = subprocess.run(
        [*bench, "--baseline", sys.executable, *TINY], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    section = json.loads(out.read_text())["sections"]["wall"]
    assert [row["name"] for row in section["rows"]] == ["this checkout", "baseline"]
    assert all(row["median_s"] > 0 for row in section["rows"])
    assert section["summary"]["wall_ratio_new_over_baseline"] > 0
    # a training process holds torch and the town: tens of MiB at least, far below a GiB here
    assert all(30 < row["peak_rss_mib"] < 4096 for row in section["rows"])
    assert section["summary"]["peak_rss_ratio_new_over_baseline"] > 0
