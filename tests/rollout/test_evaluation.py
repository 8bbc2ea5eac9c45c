"""EvaluationService and townlet-eval: episodes in a real (tiny) town, baselines side by side."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from townlet.behaviour.rules import make_behaviour
from townlet.rollout.evaluation import EvaluationError, EvaluationService, episode_plan
from townlet.world import build_spec, load_world_config
from townlet.world.spec import ObservationSpec

TINY = {"num_envs": 3, "episode_length": 60}


@pytest.fixture(scope="module")
def world():
    return load_world_config("default", TINY)


@pytest.mark.parametrize(
    ("envs", "episodes", "plan"), [(16, 2, (2, 1)), (16, 16, (16, 1)), (4, 5, (3, 2)), (3, 9, (3, 3))]
)
def test_episode_plan_covers_the_request_with_whole_rounds(
    envs: int, episodes: int, plan: tuple[int, int]
) -> None:
    towns, rounds = episode_plan(envs, episodes)
    assert (towns, rounds) == plan and towns <= envs and towns * rounds >= episodes


def test_scripted_agrees_with_itself_and_beats_random(world) -> None:
    service = EvaluationService()
    spec = build_spec(world)
    block = service.compare(make_behaviour("scripted", spec), world, episodes=5, seed=4)
    scripted, rnd, same = block.scripted, block.random, block.policy
    assert scripted is not None and rnd is not None
    assert same.mean_return == scripted.mean_return  # same policy, same seed → same episodes
    assert (
        scripted.scripted_agreement == 1.0
        and rnd.scripted_agreement is not None
        and rnd.scripted_agreement < 0.6
    )
    assert scripted.episodes == 6 and scripted.agent_ticks == 6 * 60 * world.num_agents  # 3 towns x 2 rounds
    assert scripted.mean_return > rnd.mean_return and scripted.mean_needs > rnd.mean_needs
    assert set(scripted.needs) == {"hunger", "hygiene", "energy"}
    assert block.world == "default" and block.seed == 4
    assert np.isfinite(scripted.conflicts_per_100_agent_ticks)


def test_conflicts_and_faints_are_counted(world) -> None:
    result = EvaluationService().evaluate(
        make_behaviour("random", build_spec(world), seed=1), world, 3, seed=1
    )
    ticks = result.agent_ticks
    assert result.conflicts_per_100_agent_ticks == pytest.approx(
        100 * result.events["queue_conflict_events"] / ticks
    )
    assert result.faint_rate >= 0 and result.stochastic


def test_bad_requests_are_clear(world) -> None:
    spec = build_spec(world)
    with pytest.raises(EvaluationError, match="at least one episode"):
        EvaluationService().evaluate(make_behaviour("scripted", spec), world, episodes=0)

    other_spec = ObservationSpec(map_channels=("x",), window=3, feature_names=spec.feature_names)

    class OtherLayout:
        name = "other"
        spec = other_spec

        def act(self, obs):
            raise AssertionError("must be refused before acting")

    with pytest.raises(EvaluationError, match="another observation spec"):
        EvaluationService().evaluate(OtherLayout(), world, episodes=1)


def test_evaluation_and_cli_import_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import townlet.rollout.evaluation, townlet.cli.evaluate, townlet.nets.checkpoints\n"
        "import townlet.strategies.bc, townlet.nets.models\n"
        "from townlet.cli.evaluate import main\n"
        "assert main(['/nonexistent']) == 2\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "needs PyTorch" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.torch
def test_townlet_eval_cli_on_a_checkpoint(tmp_path, world, capsys) -> None:
    torch = pytest.importorskip("torch")
    from townlet.cli.evaluate import main
    from townlet.nets.checkpoints import save_checkpoint
    from townlet.nets.models import build_network
    from townlet.rollout.collect import world_config_dict

    spec = build_spec(world)
    cfg = {"kind": "mlp", "hidden_dim": 16}
    torch.manual_seed(0)
    save_checkpoint(
        tmp_path / "checkpoints" / "best.pt",
        model=build_network(cfg, spec),
        optimizer=None,
        model_cfg=cfg,
        spec=spec,
        epoch=1,
        extra={"world_name": "default", "world_config": world_config_dict(world)},
    )
    json_path = tmp_path / "eval.json"
    assert main([str(tmp_path), "episodes=1", "seed=2", "--json", str(json_path)]) == 0
    out = capsys.readouterr().out
    assert "trained" in out and "scripted" in out and "random" in out
    assert '"world": "default"' in json_path.read_text()
    assert main([str(tmp_path), "world.window=7"]) == 2
    err = capsys.readouterr().err
    assert "different observation spec" in err and "window" in err
    assert main([str(tmp_path), "episodes=zero"]) == 2
    assert main([str(tmp_path), "colour=blue"]) == 2
    err = capsys.readouterr().err
    assert "could not be converted to Integer" in err and "Key 'colour' not in" in err


def test_a_run_is_evaluated_the_way_its_result_was() -> None:
    from townlet.cli.evaluate import eval_settings

    unset = dict.fromkeys(("episodes", "seed", "greedy", "baselines"))
    anneal = {"seed": 3, "strategy": {"bc": {"eval_greedy": True}, "ppo": {"eval_greedy": False}}}
    sampled = {"evaluation": {"policy": {"stochastic": True}}}
    settings = eval_settings(unset, anneal, sampled)
    assert settings["greedy"] is False and settings["seed"] == 3 + 10_000
    # an anneal that rolled back to its BC stage ends with that stage's argmax evaluation
    assert eval_settings(unset, anneal, {"evaluation": {"policy": {"stochastic": False}}})["greedy"] is True
    # without a result.json the config says it; an argument overrides both
    assert eval_settings(unset, {"strategy": {"eval_greedy": False}})["greedy"] is False
    assert eval_settings({**unset, "greedy": True}, anneal, sampled)["greedy"] is True
