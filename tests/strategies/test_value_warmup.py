"""BC's value-head warm-up: returns-to-go maths, targets that line up with the BC rows, a value loss
that falls, a policy left exactly as plain imitation trains it, and the metrics it reports."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from townlet.algorithms.returns import cut_bootstrap_values, returns_to_go_parts
from townlet.config.schema.evaluation import EvaluationConfig
from townlet.replay.data import ReplayData
from townlet.rollout.datasets import ReplayDatasetService
from townlet.runs.metrics import MetricsWriter
from townlet.runs.rundir import RunDir
from townlet.strategies.bc import BCConfigError, BCStrategy
from townlet.strategies.context import TrainingContext
from townlet.strategies.services import TrainingServices
from townlet.world.config import WorldConfig
from townlet.world.spec import NUM_ACTIONS, ObservationSpec

SPEC = ObservationSpec(map_channels=("walls",), window=3, feature_names=("need", "go", "rest"))
MODEL = {"kind": "mlp", "hidden_dim": 32}


def returns_to_go(
    rewards: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    gamma: float,
    final_values: np.ndarray | None = None,
    bootstrap_values: np.ndarray | None = None,
) -> np.ndarray:
    """Discounted returns-to-go [T, N] bootstrapped from recorded values (0 where none are given)."""
    parts = returns_to_go_parts(rewards, terminated, truncated, gamma)
    shape = parts.base.shape
    fv = np.zeros(shape) if final_values is None else final_values
    bv = np.zeros(shape[1]) if bootstrap_values is None else bootstrap_values
    return returns_of(parts, cut_bootstrap_values(truncated, fv, bv))


def returns_of(parts: Any, after_cut: np.ndarray) -> np.ndarray:
    """Returns [T, N] given the value after each cut row, ``after_cut`` [T, N] (only cut rows are read)."""
    boot = np.take_along_axis(np.asarray(after_cut, np.float64), parts.cut_row, axis=0)
    return parts.base + parts.discount * boot


def hand_case() -> tuple[np.ndarray, ...]:
    """Two agents, four ticks, gamma 0.5.

    agent 0: rewards 1,2,3,4; faints at t=1 (no bootstrap); the recording ends after t=3 (V after = 10)
      G3 = 4 + .5*10 = 9, G2 = 3 + .5*9 = 7.5, G1 = 2, G0 = 1 + .5*2 = 2
    agent 1: rewards 1,1,1,1; truncated at t=1 (V(final obs) = 4); recording ends (V after = 2)
      G3 = 1 + .5*2 = 2, G2 = 1 + .5*2 = 2, G1 = 1 + .5*4 = 3, G0 = 1 + .5*3 = 2.5
    """
    rewards = np.array([[1, 1], [2, 1], [3, 1], [4, 1]], np.float32)
    terminated = np.zeros((4, 2), bool)
    terminated[1, 0] = True
    truncated = np.zeros((4, 2), bool)
    truncated[1, 1] = True
    final_values = np.zeros((4, 2), np.float32)
    final_values[1, 1] = 4.0
    bootstrap = np.array([10.0, 2.0], np.float32)
    return rewards, terminated, truncated, final_values, bootstrap


def test_returns_to_go_hand_computed() -> None:
    rewards, terminated, truncated, final_values, bootstrap = hand_case()
    got = returns_to_go(rewards, terminated, truncated, 0.5, final_values, bootstrap)
    expected = np.array([[2.0, 2.5], [2.0, 3.0], [7.5, 2.0], [9.0, 2.0]])
    np.testing.assert_allclose(got, expected)


def test_returns_to_go_parts_are_linear_in_the_cut_values() -> None:
    """base + discount * V(after cut): the cuts are agent 0's last row and agent 1's rows 1 and 3."""
    rewards, terminated, truncated, _, _ = hand_case()
    parts = returns_to_go_parts(rewards, terminated, truncated, 0.5)
    np.testing.assert_array_equal(parts.is_cut, [[False, False], [False, True], [False, False], [True, True]])
    np.testing.assert_allclose(parts.discount, [[0.0, 0.25], [0.0, 0.5], [0.25, 0.25], [0.5, 0.5]])
    np.testing.assert_array_equal(parts.cut_row[:, 1], [1, 1, 3, 3])
    after = np.zeros((4, 2))
    after[1, 1], after[3] = 4.0, (10.0, 2.0)
    np.testing.assert_allclose(returns_of(parts, after), [[2.0, 2.5], [2.0, 3.0], [7.5, 2.0], [9.0, 2.0]])
    # with no rewards and nothing recorded, every return is 0; a faint with both flags does not bootstrap
    both = terminated | truncated
    zero = returns_to_go(np.zeros((4, 2)), both, both, 0.9, np.full((4, 2), 5.0), np.zeros(2))
    assert zero[1, 0] == 0.0 and zero[1, 1] == 0.0


def test_returns_to_go_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="time-major"):
        returns_to_go(np.zeros(4), np.zeros(4, bool), np.zeros(4, bool), 0.9)
    with pytest.raises(ValueError, match="gamma"):
        returns_to_go(np.zeros((2, 2)), np.zeros((2, 2), bool), np.zeros((2, 2), bool), 1.5)


# ---------------------------------------------------------------------- BC with the warm-up (torch)


def reward_data(ticks: int = 40, agents: int = 16, seed: int = 0, *, rewards: bool = True) -> ReplayData:
    """Teacher: NOOP when ``go`` <= 0, else move north. Reward = -0.2 * need, so the value is learnable."""
    rng = np.random.default_rng(seed)
    t, n = ticks, agents
    feats = rng.standard_normal((t, n, SPEC.feature_dim)).astype(np.float32)
    feats[..., 0] = np.linspace(-1.0, 1.0, n, dtype=np.float32)[None, :]  # each agent's constant need
    teacher = np.where(feats[..., 1] > 0, 1, 0).astype(np.int64)
    truncated = np.zeros((t, n), bool)
    truncated[t // 2 - 1] = True  # an episode boundary in the middle
    terminated = np.zeros((t, n), bool)
    terminated[5, 0] = True
    cols: dict[str, np.ndarray] = {
        "maps": np.zeros((t, n, *SPEC.map_shape), np.uint8),
        "features": feats,
        "action_mask": np.ones((t, n, NUM_ACTIONS), bool),
        "actions": teacher,
        "teacher_actions": teacher,
        "log_probs": np.zeros((t, n), np.float32),
        "values": np.zeros((t, n), np.float32),
        "final_values": np.zeros((t, n), np.float32),
        "rewards": (-0.2 * feats[..., 0] if rewards else np.zeros((t, n))).astype(np.float32),
        "terminated": terminated,
        "truncated": truncated,
        "env_id": np.broadcast_to(np.arange(n, dtype=np.int32) // 4, (t, n)).copy(),
        "agent_id": np.broadcast_to(np.arange(n, dtype=np.int32) % 4, (t, n)).copy(),
        "episode_id": np.zeros((t, n), np.int32),
        "tick": np.broadcast_to(np.arange(t, dtype=np.int32)[:, None], (t, n)).copy(),
    }
    return ReplayData.from_columns(SPEC, cols, meta={"label": "rewarded"})


@dataclass
class FakeReplay(ReplayDatasetService):
    """Stands in for ReplayDatasetService: always returns the given data."""

    data: ReplayData

    def resolve(self, dataset_cfg: Any, world_cfg: Any, data_dir: Any = None) -> ReplayData:
        return self.data


def context(tmp: Path, data: ReplayData) -> TrainingContext:
    run_dir = RunDir(tmp).prepare(resume=False)
    return TrainingContext(
        seed=1,
        world=WorldConfig(name="synthetic"),
        dataset={"name": "synthetic"},
        model=MODEL,
        device="cpu",
        run_dir=run_dir,
        services=TrainingServices(replay=FakeReplay(data)),
        metrics=MetricsWriter(run_dir.metrics_path),
        log=logging.getLogger("test.value_warmup"),
        evaluation=EvaluationConfig(enabled=False),
    )


def test_value_targets_line_up_with_flat_rows_and_use_recorded_values() -> None:
    torch = pytest.importorskip("torch")
    from townlet.strategies.bc.data import stack_tensors
    from townlet.strategies.bc.value import current_returns, value_targets

    data = reward_data(ticks=8, agents=4)
    expected = returns_to_go(data.rewards, data.terminated, data.truncated, 0.9)
    vt = value_targets(data, 0.9, "cpu")
    assert vt.recorded is None  # a scripted-style capture records no values: the critic bootstraps
    tensors, _ = stack_tensors(data, "teacher_actions", "cpu")

    class ConstantCritic:
        """Stands in for the network: V = 3 everywhere."""

        training = False

        def eval(self) -> None: ...

        def train(self, mode: bool = True) -> None: ...

        def __call__(self, maps: Any, features: Any, mask: Any) -> tuple[Any, Any]:
            return torch.zeros(maps.shape[0], NUM_ACTIONS), torch.full((maps.shape[0],), 3.0)

    critic: Any = ConstantCritic()
    with_critic = current_returns(critic, tensors, vt).numpy().reshape(8, 4)
    parts = returns_to_go_parts(data.rewards, data.terminated, data.truncated, 0.9)
    np.testing.assert_allclose(with_critic, returns_of(parts, np.full((8, 4), 3.0)), rtol=1e-5)
    np.testing.assert_allclose(with_critic - 3.0 * parts.discount, expected, rtol=1e-5, atol=1e-6)

    data.bootstrap_values[:] = 2.0  # recorded values (a capture by a network) are used as they are
    vt_rec = value_targets(data, 0.9, "cpu")
    assert vt_rec.recorded is not None
    recorded = returns_to_go(data.rewards, data.terminated, data.truncated, 0.9, None, data.bootstrap_values)
    got = current_returns(critic, tensors, vt_rec).numpy().reshape(8, 4)
    np.testing.assert_allclose(got, recorded, rtol=1e-5)


def test_value_loss_falls_and_head_only_leaves_the_policy_untouched() -> None:
    torch = pytest.importorskip("torch")
    from townlet.nets.models import build_network
    from townlet.strategies.bc.data import epoch_generator, stack_tensors, train_epoch
    from townlet.strategies.bc.value import current_returns, evaluate_values, value_targets

    data = reward_data()
    tensors, _ = stack_tensors(data, "teacher_actions", "cpu")
    vt = value_targets(data, 0.9, "cpu")

    def fresh() -> tuple[Any, Any]:
        torch.manual_seed(0)
        net = build_network(MODEL, SPEC)
        return net, torch.optim.Adam(net.parameters(), lr=3e-3)

    net, opt = fresh()
    plain, plain_opt = fresh()
    first = evaluate_values(net, tensors, current_returns(net, tensors, vt))[0]
    for epoch in range(1, 16):
        returns = current_returns(net, tensors, vt)
        train_epoch(
            net,
            opt,
            tensors,
            64,
            epoch_generator(0, epoch, torch.device("cpu")),
            returns=returns,
            value_coef=0.5,
        )
        train_epoch(plain, plain_opt, tensors, 64, epoch_generator(0, epoch, torch.device("cpu")))
    last, ev = evaluate_values(net, tensors, current_returns(net, tensors, vt))
    assert last < 0.5 * first
    assert ev is not None and ev > 0.5
    trained, untouched = net.state_dict(), plain.state_dict()
    for name, tensor in untouched.items():
        if name.startswith("value_head"):
            assert not torch.equal(trained[name], tensor), name
        else:
            assert torch.equal(trained[name], tensor), f"{name} changed: the value loss reached the policy"


def test_bc_run_reports_value_metrics(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    result = BCStrategy(
        lr=3e-3,
        batch_size=64,
        epochs=4,
        val_fraction=0.25,
        value_coef=0.5,
        gamma=0.5,
        early_stopping_patience=0,
    ).run(context(tmp_path, reward_data()))
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and all(line["value_coef"] == 0.5 for line in lines)
    losses = [line["train_value_loss"] for line in lines]
    assert losses[-1] < losses[0]
    assert all(line["val_value_loss"] is not None for line in lines)
    assert lines[-1]["value_explained_variance"] is not None
    assert result.val_accuracy is not None and result.val_accuracy > 0.6  # majority class: ~0.5


def test_bc_without_rewards_skips_the_value_head(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    BCStrategy(batch_size=64, epochs=1, val_fraction=0.25).run(context(tmp_path, reward_data(rewards=False)))
    line = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert line["value_coef"] == 0.0 and line["val_value_loss"] is None


@pytest.mark.parametrize("kwargs", [{"value_coef": -1.0}, {"value_coef": float("nan")}, {"gamma": 1.5}])
def test_bad_value_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(BCConfigError, match=r"strategy\.(value_coef|gamma)"):
        BCStrategy(**kwargs)  # type: ignore[arg-type]


def test_anneal_bc_stage_learns_the_critic_at_ppo_gamma(tmp_path: Path) -> None:
    """The warm-up must fit the critic PPO will use, so the anneal's BC stages take PPO's discount."""
    from omegaconf import OmegaConf

    from townlet.config.instantiate import build
    from townlet.config.schema.strategy_anneal import AnnealStrategyConfig

    node = OmegaConf.structured(AnnealStrategyConfig)
    node.ppo.gamma = 0.9
    node.bc.gamma = 0.5  # overridden: a different discount would train the wrong critic
    strat = build(node)
    bc = strat.build_stage_strategy(strat.stages[0], context(tmp_path, reward_data()))
    assert type(bc).__name__ == "BCStrategy" and bc.gamma == 0.9


def test_bc_discount_is_ppo_s_by_construction() -> None:
    from townlet.config.schema.strategy_bc import BCStrategyConfig
    from townlet.config.schema.strategy_ppo import PPOStrategyConfig

    assert BCStrategyConfig().gamma == PPOStrategyConfig().gamma
