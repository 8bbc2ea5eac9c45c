"""BC strategy on a synthetic teacher: learns, reports honest held-out metrics, checkpoints, resumes.

The teacher is a fixed function of the observation (like the world's scripted policy), so a
network that learns must beat the majority-class baseline on agents it never saw.
"""

from __future__ import annotations

import json
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from townlet.config.schema.device import DeviceConfig, DeviceType
from townlet.config.schema.evaluation import EvaluationConfig
from townlet.replay.data import ReplayData
from townlet.rollout.datasets import ReplayDatasetService
from townlet.runs import interrupt
from townlet.runs.metrics import MetricsWriter
from townlet.runs.rundir import RunDir
from townlet.strategies.bc import BCConfigError, BCStrategy
from townlet.strategies.context import TrainingContext
from townlet.strategies.services import TrainingServices
from townlet.world.config import WorldConfig
from townlet.world.spec import NUM_ACTIONS, Action, ObservationSpec

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


SPEC = ObservationSpec(
    map_channels=("walls", "objects"), window=5, feature_names=("go", "n", "s", "e", "w", "rest")
)
MODEL = {"kind": "conv", "hidden_dim": 32, "conv_channels": [4], "conv_strides": [1]}


def synthetic_data(ticks: int = 48, agents: int = 24, seed: int = 0) -> ReplayData:
    """Teacher: if ``go`` > 0 move towards the largest of n/s/e/w; else USE on an object tile; else NOOP."""
    rng = np.random.default_rng(seed)
    t, n, a = ticks, agents, NUM_ACTIONS
    maps = (rng.random((t, n, *SPEC.map_shape)) < 0.3).astype(np.uint8)
    feats = rng.standard_normal((t, n, SPEC.feature_dim)).astype(np.float32)
    move = 1 + feats[..., 1:5].argmax(-1)
    on_object = maps[:, :, 1, 2, 2] == 1
    teacher = np.where(feats[..., 0] > 0, move, np.where(on_object, int(Action.USE), int(Action.NOOP)))
    mask = np.ones((t, n, a), dtype=bool)
    mask[..., Action.CHAT] = False
    executed = np.where(rng.random((t, n)) < 0.2, rng.integers(0, 7, (t, n)), teacher)
    cols: dict[str, np.ndarray] = {
        "maps": maps,
        "features": feats,
        "action_mask": mask,
        "actions": executed.astype(np.int64),
        "teacher_actions": teacher.astype(np.int64),
        "log_probs": np.zeros((t, n), np.float32),
        "values": np.zeros((t, n), np.float32),
        "final_values": np.zeros((t, n), np.float32),
        "rewards": np.zeros((t, n), np.float32),
        "terminated": np.zeros((t, n), bool),
        "truncated": np.zeros((t, n), bool),
        "env_id": np.broadcast_to(np.arange(n, dtype=np.int32) // 4, (t, n)).copy(),
        "agent_id": np.broadcast_to(np.arange(n, dtype=np.int32) % 4, (t, n)).copy(),
        "episode_id": np.zeros((t, n), np.int32),
        "tick": np.broadcast_to(np.arange(t, dtype=np.int32)[:, None], (t, n)).copy(),
    }
    return ReplayData.from_columns(SPEC, cols, meta={"label": "synthetic"})


@dataclass
class FakeReplay(ReplayDatasetService):
    """Stands in for ReplayDatasetService: always returns the given data."""

    data: ReplayData

    def resolve(self, dataset_cfg: Any, world_cfg: Any, data_dir: Any = None) -> ReplayData:
        return self.data


class InterruptingMetrics(MetricsWriter):
    """Simulates a crash (Ctrl-C) right after the given epoch's checkpoint was written, or, with
    ``signum``, a signal arriving while that epoch is logged (delivered as the handler delivers it)."""

    def __init__(self, path: Path, stop_after: int, signum: int | None = None) -> None:
        super().__init__(path)
        self.stop_after = stop_after
        self.signum = signum

    def log(self, record: Any, *, force: bool = False) -> bool:
        written = super().log(record, force=force)
        if record.get("epoch") == self.stop_after:
            if self.signum is None:
                raise KeyboardInterrupt
            interrupt.deliver(self.signum)
        return written


def make_context(
    tmp: Path, data: ReplayData, *, metrics: MetricsWriter | None = None, **kw: Any
) -> TrainingContext:
    run_dir = RunDir(tmp).prepare(resume=kw.get("resume", False))
    return TrainingContext(
        seed=kw.pop("seed", 3),
        world=WorldConfig(name="synthetic"),
        dataset={"name": "synthetic"},
        model=kw.pop("model", MODEL),
        device="cpu",
        run_dir=run_dir,
        services=TrainingServices(replay=FakeReplay(data)),
        metrics=metrics or MetricsWriter(run_dir.metrics_path),
        log=logging.getLogger("test.bc"),
        evaluation=EvaluationConfig(enabled=False),
        **kw,
    )


@pytest.fixture(scope="module")
def data() -> ReplayData:
    return synthetic_data()


def _weights(path: Path) -> dict[str, Any]:
    return torch.load(path, weights_only=True)["model_state"]


def test_bc_learns_held_out_agents_and_reports_epoch_metrics(tmp_path: Path, data: ReplayData) -> None:
    result = BCStrategy(lr=3e-3, batch_size=128, epochs=6, val_fraction=0.25).run(
        make_context(tmp_path, data)
    )
    teacher = data.teacher_actions
    majority = np.bincount(teacher.ravel()).max() / teacher.size
    assert result.val_accuracy is not None and result.val_accuracy > majority + 0.2
    assert (
        result.val_samples == 6 * 48 and result.train_samples == 18 * 48
    )  # 25% of 24 agents, whole trajectories
    assert result.epochs_run == 6 and result.best_epoch is not None and result.model == "conv"
    lines = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3, 4, 5, 6]
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]
    conf = np.asarray(lines[-1]["confusion_matrix"])
    assert conf.shape == (NUM_ACTIONS, NUM_ACTIONS) and conf.sum() == result.val_samples
    assert np.trace(conf) / conf.sum() == pytest.approx(lines[-1]["val_accuracy"])
    assert lines[-1]["per_action_accuracy"]["chat"] is None  # never the teacher's choice
    assert lines[-1]["samples_per_sec"] > 0
    assert (tmp_path / "checkpoints" / "best.pt").is_file() and (
        tmp_path / "checkpoints" / "last.pt"
    ).is_file()
    assert result.checkpoint == str(tmp_path / "checkpoints" / "best.pt")


def test_reported_train_metrics_describe_the_returned_network(tmp_path: Path) -> None:
    """Regression: with fewer rows than one batch (``experiment=smoke``), ``accuracy``/``loss`` were
    the epoch's running means, taken *before* the only optimiser step: the untrained network's
    0.0 next to the trained one's val accuracy of 1.0. They must describe the checkpoint reported."""
    from townlet.nets.checkpoints import load_checkpoint

    small = synthetic_data(ticks=10, agents=8, seed=1)  # 60 training rows, batch 512
    result = BCStrategy(lr=3e-2, batch_size=512, epochs=1, val_fraction=0.25).run(
        make_context(tmp_path, small)
    )
    train, _ = small.split_by_agent(0.25, seed=3)
    assert result.checkpoint is not None
    net = load_checkpoint(result.checkpoint, SPEC).build_network().eval()
    with torch.no_grad():
        logits, _ = net(
            torch.from_numpy(train.flat("maps")),
            torch.from_numpy(train.flat("features")),
            torch.from_numpy(train.flat("action_mask")),
        )
    targets = torch.from_numpy(train.flat("teacher_actions"))
    assert result.train_samples == targets.shape[0] == 60
    assert result.accuracy == pytest.approx((logits.argmax(1) == targets).double().mean().item())
    assert result.loss == pytest.approx(torch.nn.functional.cross_entropy(logits, targets).item(), rel=1e-5)


def test_validation_never_shares_an_agent_with_training(data: ReplayData) -> None:
    train, val = data.split_by_agent(0.25, seed=3)
    train_ids = set(zip(train.env_id[0], train.agent_id[0], strict=True))
    val_ids = set(zip(val.env_id[0], val.agent_id[0], strict=True))
    assert train_ids and val_ids and not train_ids & val_ids


@pytest.mark.parametrize("signum", [None, signal.SIGTERM, signal.SIGINT])
def test_resume_gives_the_same_final_weights_as_an_uninterrupted_run(
    tmp_path: Path, data: ReplayData, signum: int | None
) -> None:
    strategy = BCStrategy(lr=2e-3, batch_size=256, epochs=4, val_fraction=0.25)
    full = strategy.run(make_context(tmp_path / "full", data))
    crashed = tmp_path / "crashed"
    metrics = InterruptingMetrics(crashed / "metrics.jsonl", 2, signum)
    with pytest.raises(KeyboardInterrupt):  # a signal's TrainingInterrupted is one too
        strategy.run(make_context(crashed, data, metrics=metrics))
    assert torch.load(crashed / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 2
    resumed = strategy.run(make_context(crashed, data, resume=True))
    for k, v in _weights(tmp_path / "full" / "checkpoints" / "last.pt").items():
        assert torch.equal(v, _weights(crashed / "checkpoints" / "last.pt")[k]), k
    assert resumed.val_accuracy == full.val_accuracy and resumed.best_epoch == full.best_epoch
    epochs = [json.loads(s)["epoch"] for s in (crashed / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]


def test_init_from_warm_starts_weights(tmp_path: Path, data: ReplayData) -> None:
    BCStrategy(lr=3e-3, batch_size=128, epochs=4, val_fraction=0.25).run(make_context(tmp_path / "a", data))
    # lr tiny: the warm-started network must already be good after one epoch, a fresh one is not
    slow = BCStrategy(lr=1e-6, batch_size=128, epochs=1, val_fraction=0.25)
    warm = slow.run(make_context(tmp_path / "b", data, init_from=str(tmp_path / "a")))
    cold = slow.run(make_context(tmp_path / "c", data))
    assert warm.init_from == str(tmp_path / "a")
    assert warm.val_accuracy is not None and cold.val_accuracy is not None
    assert warm.val_accuracy > cold.val_accuracy + 0.2


def test_init_from_other_architecture_is_refused(tmp_path: Path, data: ReplayData) -> None:
    from townlet.nets.checkpoints import CheckpointModelMismatchError

    BCStrategy(epochs=1, batch_size=256).run(make_context(tmp_path / "a", data))
    other = {"kind": "mlp", "hidden_dim": 16}
    with pytest.raises(CheckpointModelMismatchError, match="model=conv"):
        BCStrategy(epochs=1).run(
            make_context(tmp_path / "b", data, init_from=str(tmp_path / "a"), model=other)
        )


def test_early_stopping_stops(tmp_path: Path, data: ReplayData) -> None:
    # lr 0 cannot improve after epoch 1: patience 2 stops at epoch 3
    result = BCStrategy(lr=1e-12, epochs=10, early_stopping_patience=2, min_delta=0.01).run(
        make_context(tmp_path, data)
    )
    assert result.early_stopped and result.epochs_run == 3 and result.best_epoch == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.0},
        {"batch_size": 0},
        {"val_fraction": 1.0},
        {"target": "rewards"},
        {"early_stopping_patience": -1},
    ],
)
def test_bad_hyper_parameters_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(BCConfigError):
        BCStrategy(**kwargs)


def test_device_cuda_without_cuda_is_a_clear_error(tmp_path: Path, data: ReplayData) -> None:
    from townlet.runs.device import DeviceUnavailableError, resolve_device

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    ctx = make_context(tmp_path, data)
    ctx.device = DeviceConfig(type=DeviceType.cuda)
    with pytest.raises(DeviceUnavailableError, match=r"device=auto.*device=cpu"):
        BCStrategy(epochs=1).run(ctx)
    assert resolve_device({"type": "auto"}) == "cpu"
