"""End to end: the default main job (strategy=anneal) through ``python -m townlet.train``, twice.

Shrunk (fewer ticks, envs, epochs and evaluation episodes) so it fits the CI budget; the full
default run is measured in docs/anneal.md. Checks the acceptance criteria that need real training:
the final policy's evaluated return is at least the BC stage's (same evaluation episodes), and two
PASS runs in a row make the candidate ready, which ``townlet-promote evaluate`` then reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from townlet.dto import AnnealSummaryDTO, TrainingResult

pytest.importorskip("torch")

SMALL = [
    "dataset.ticks=400",
    "world.num_envs=4",
    "evaluation.episodes=1",
    "strategy.schedule=[{cycle:0,mode:bc,epochs:6,bc_weight:1.0},"
    "{cycle:1,mode:ppo,epochs:2,bc_weight:0.5},{cycle:2,mode:ppo,epochs:2,bc_weight:0.0}]",
]


@pytest.mark.slow
def test_default_anneal_twice_promotes(run_cli, cli_env: dict[str, str], tmp_path: Path) -> None:
    paths = [f"paths.state_dir={tmp_path / 'state'}", f"paths.data_dir={tmp_path / 'data'}"]
    summaries: list[AnnealSummaryDTO] = []
    for name in ("r1", "r2"):
        proc = run_cli(f"hydra.run.dir={tmp_path / name}", *paths, *SMALL, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        result = TrainingResult.model_validate_json((tmp_path / name / "result.json").read_text()).root
        assert isinstance(result, AnnealSummaryDTO)
        summaries.append(result)

    first, second = summaries
    assert [s.mode for s in first.stages] == ["bc", "ppo", "ppo"]
    assert first.status == "PASS", first.stages
    bc_stage = first.stages[0]
    assert bc_stage.passed and bc_stage.accuracy is not None and bc_stage.accuracy >= 0.9
    # Weights flowed: each PPO stage warm-started from the stage before it.
    assert first.stages[1].ppo.init_from == bc_stage.bc.checkpoint
    assert first.stages[2].ppo.init_from == first.stages[1].ppo.checkpoint
    # The annealed policy does at least as well as the cloned one on the same evaluation episodes.
    bc_return = bc_stage.bc.evaluation.policy.mean_return
    assert first.evaluation is not None and first.evaluation.scripted is not None
    assert first.evaluation.policy.mean_return >= bc_return - 1e-9
    # Second run: judged against the first run's baselines, PASS again → candidate ready.
    assert second.status == "PASS", second.stages
    assert second.stages[1].ppo.anneal_loss_baseline is not None
    assert (second.promotion_pass_streak, second.promotion_candidate_ready) == (2, True)

    verdict = subprocess.run(
        [sys.executable, "-m", "townlet.cli.promote", "--format", "json", "evaluate", str(tmp_path / "r2")],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    assert json.loads(verdict.stdout)["verdict"] == "PROMOTE"
