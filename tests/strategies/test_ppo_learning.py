"""PPO actually learns: from scratch it beats random, and a BC warm start does not fall apart.

Small fast config (8 towns x 4 agents, 100-tick episodes, MLP 64), the default PPO settings.
Measured (seed 0, CPU, 1 thread): from scratch, 64k agent-steps -> trained -1.25 vs random -3.29 vs
scripted -2.39 (225% of the random->scripted gap: past the teacher). A PPO warm start of 8k steps
from a 3-epoch BC clone keeps the clone's return. The assertions leave room: at least 60% of the gap,
and within 10% of BC.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from ppo_support import ppo_context  # noqa: E402

from townlet.config.schema.evaluation import EvaluationConfig  # noqa: E402
from townlet.config.schema.strategy_ppo import LRSchedule  # noqa: E402
from townlet.replay import ReplayData  # noqa: E402
from townlet.rollout.collect import RolloutCaptureService  # noqa: E402
from townlet.rollout.evaluation import EvaluationService  # noqa: E402
from townlet.strategies.context import TrainingContext  # noqa: E402
from townlet.strategies.ppo import PPOStrategy  # noqa: E402
from townlet.world import load_world_config, make_town  # noqa: E402

pytestmark = pytest.mark.slow

MODEL = {"kind": "mlp", "hidden_dim": 64}
PPO: dict[str, Any] = {"n_steps": 50, "minibatch_size": 256}


def small_world() -> Any:
    w = load_world_config("default")
    w.num_envs, w.num_agents, w.episode_length = 8, 4, 100
    return w


def context(run_dir: Path, replay: ReplayData | None = None, **kw: Any) -> TrainingContext:
    return ppo_context(
        run_dir,
        world=small_world(),
        model=MODEL,
        replay=replay,
        evaluation_service=EvaluationService(),
        evaluation=EvaluationConfig(enabled=True, episodes=8, baselines=True),
        **kw,
    )


def test_ppo_from_scratch_beats_random(tmp_path: Path) -> None:
    result = PPOStrategy(**PPO, total_steps=64_000).run(context(tmp_path))  # the default recipe
    ev = result.evaluation
    assert ev is not None and ev.scripted is not None and ev.random is not None
    gap = ev.scripted.mean_return - ev.random.mean_return
    assert gap > 0  # the baselines are ordered as expected in this world
    assert ev.policy.mean_return > ev.random.mean_return + 0.6 * gap


def test_ppo_warm_started_from_bc_keeps_bc_return(tmp_path: Path) -> None:
    from townlet.behaviour.rules import make_behaviour
    from townlet.strategies.bc import BCStrategy

    town = make_town(small_world(), 7)
    data = RolloutCaptureService().collect(
        town, make_behaviour("scripted", town.spec, seed=7, epsilon=0.1), 300
    )
    bc = BCStrategy(epochs=3, batch_size=256).run(context(tmp_path / "bc", replay=data))
    # the settings this was measured with (a gentle fine-tune); the from-scratch defaults explore hard
    gentle = PPOStrategy(
        **PPO,
        lr=3e-4,
        lr_schedule=LRSchedule.constant,
        entropy_coef=0.01,
        gamma=0.99,
        total_steps=8_000,
        eval_greedy=True,
    )
    ppo = gentle.run(context(tmp_path / "ppo", init_from=str(tmp_path / "bc")))
    assert bc.evaluation is not None and ppo.evaluation is not None
    bc_return = bc.evaluation.policy.mean_return
    assert ppo.evaluation.policy.mean_return >= bc_return - 0.1 * abs(bc_return)
