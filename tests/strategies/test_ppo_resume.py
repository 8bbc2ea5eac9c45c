"""PPO interrupted by a signal and resumed equals the uninterrupted run: same metrics lines, same result,
same weights. The signal is delivered from inside the run (at a chosen iteration) the way the signal
handler delivers it, so the test needs no subprocess timing."""

from __future__ import annotations

import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from ppo_support import ppo_context  # noqa: E402

from townlet.nets.checkpoints import load_checkpoint  # noqa: E402
from townlet.runs import interrupt  # noqa: E402
from townlet.runs.metrics import MetricsWriter, read_metrics  # noqa: E402
from townlet.strategies.ppo import PPOStrategy  # noqa: E402
from townlet.world import load_world_config  # noqa: E402

SETTINGS: dict[str, Any] = {
    "n_steps": 8,
    "total_steps": 192,  # 6 iterations of 8 ticks x 4 agents; episodes of 12 ticks span iterations
    "minibatch_size": 16,
    "update_epochs": 2,
    "reward_scaling": True,
    "feature_normalisation": True,
}
TIMING = {"duration_sec", "epoch_duration_sec", "samples_per_sec", "update_samples_per_sec"}
TIMING |= {"collect_sec", "update_sec", "sps", "wall_sec"}


class SignalAt(MetricsWriter):
    """A metrics writer that delivers SIGTERM while the given iteration is being logged."""

    def __init__(self, path: Path, iteration: int) -> None:
        super().__init__(path)
        self.iteration = iteration

    def log(self, record: Mapping[str, Any], *, force: bool = False) -> bool:
        written = super().log(record, force=force)
        if record.get("iteration") == self.iteration:
            interrupt.deliver(signal.SIGTERM)
        return written


def _context(run_dir: Path, **kw: Any) -> Any:
    world = load_world_config("default")
    world.num_envs, world.num_agents, world.episode_length = 2, 2, 12
    return ppo_context(run_dir, world=world, model={"kind": "mlp", "hidden_dim": 32}, **kw)


def _lines(run_dir: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(run_dir / "metrics.jsonl")]


def _result(dto: Any) -> dict[str, Any]:
    out = {k: v for k, v in dto.model_dump(mode="json").items() if k not in TIMING}
    out["best"] = {k: v for k, v in (out.get("best") or {}).items() if k not in TIMING}
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    run_dir = tmp_path_factory.mktemp("whole")
    return run_dir, _result(PPOStrategy(**SETTINGS).run(_context(run_dir)))


@pytest.mark.parametrize(("stop_at", "checkpoint_every"), [(1, 1), (4, 1), (2, 4)])
def test_interrupted_and_resumed_equals_uninterrupted(
    tmp_path: Path, uninterrupted: tuple[Path, dict[str, Any]], stop_at: int, checkpoint_every: int
) -> None:
    whole_dir, whole = uninterrupted
    settings = {**SETTINGS, "checkpoint_every": checkpoint_every}
    with pytest.raises(interrupt.TrainingInterrupted) as stopped:
        PPOStrategy(**settings).run(_context(tmp_path, metrics=SignalAt(tmp_path / "metrics.jsonl", stop_at)))
    assert stopped.value.signal_name == "SIGTERM"
    assert interrupt.requested() is None  # honoured, not left pending for the next run
    # the stop wrote a checkpoint of exactly the iterations logged, whatever checkpoint_every says
    assert load_checkpoint(tmp_path, which="last").extra["iteration"] == stop_at
    assert [r["iteration"] for r in _lines(tmp_path)] == list(range(1, stop_at + 1))
    assert {r["strategy"] for r in _lines(tmp_path)} == {"ppo"}  # the CSV's strategy column is filled

    resumed = _result(PPOStrategy(**settings).run(_context(tmp_path, resume=True)))
    assert _lines(tmp_path) == _lines(whole_dir)
    for key in ("checkpoint", "run_dir"):
        resumed.pop(key, None), whole.pop(key, None)
    assert resumed == whole
    a = load_checkpoint(tmp_path, which="last").model_state
    b = load_checkpoint(whole_dir, which="last").model_state
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_signal_outside_a_training_loop_stops_at_once() -> None:
    with pytest.raises(interrupt.TrainingInterrupted, match="SIGINT"):
        interrupt.deliver(signal.SIGINT)
    assert interrupt.requested() is None


def test_resuming_a_finished_run_returns_its_result_again(tmp_path: Path) -> None:
    """What the anneal relies on when a later stage was stopped: a finished stage's result comes back
    built from its last line (not its best), with no iteration run and no line added."""
    first = _result(PPOStrategy(**SETTINGS).run(_context(tmp_path)))
    logged = _lines(tmp_path)
    again = _result(PPOStrategy(**SETTINGS).run(_context(tmp_path, resume=True)))
    assert _lines(tmp_path) == logged
    assert again == first
