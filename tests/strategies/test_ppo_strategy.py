"""PPOStrategy end to end on a tiny town: modes, metrics lines and rotation, checkpoints, resume,
warm start, guards and determinism. Each run is a few iterations of a small MLP (about a second)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ppo_support import ppo_context  # noqa: E402

from townlet.algorithms.gae import NonFiniteTrainingError  # noqa: E402
from townlet.config.schema.strategy_ppo import (  # noqa: E402
    DataMode,
    LRSchedule,
    SocialRewardScheduleEntry,
    SocialStage,
)
from townlet.nets.checkpoints import load_checkpoint  # noqa: E402
from townlet.replay import ReplayData  # noqa: E402
from townlet.rollout.collect import RolloutCaptureService  # noqa: E402
from townlet.runs.metrics import read_metrics  # noqa: E402
from townlet.strategies.context import TrainingContext  # noqa: E402
from townlet.strategies.ppo import PPOConfigError, PPOStrategy  # noqa: E402
from townlet.strategies.ppo.run import scheduled_value, social_stage_for  # noqa: E402
from townlet.world import load_world_config  # noqa: E402

MODEL = {"kind": "mlp", "hidden_dim": 32}
FAST: dict[str, Any] = {
    "n_steps": 8,
    "total_steps": 96,
    "minibatch_size": 16,
    "update_epochs": 2,
}  # 3 x 32 rows
TIMING_KEYS = {
    "duration_sec",
    "epoch_duration_sec",
    "samples_per_sec",
    "update_samples_per_sec",
    "collect_sec",
    "update_sec",
    "sps",
}


def tiny_world() -> Any:
    w = load_world_config("default")
    w.num_envs, w.num_agents, w.episode_length = 2, 2, 12
    return w


def make_context(
    run_dir: Path, *, replay: ReplayData | None = None, rollout: Any = None, **kw: Any
) -> TrainingContext:
    return ppo_context(run_dir, world=tiny_world(), model=MODEL, replay=replay, rollout=rollout, **kw)


@pytest.fixture(scope="module")
def scripted_data() -> ReplayData:
    from townlet.behaviour.rules import make_behaviour
    from townlet.world import make_town

    town = make_town(tiny_world(), 5)
    data = RolloutCaptureService().collect(
        town, make_behaviour("scripted", town.spec, seed=5, epsilon=0.2), 16
    )
    data.meta["label"] = "scripted-tiny"
    return data


def lines(run_dir: Path) -> list[dict[str, Any]]:
    return list(read_metrics(run_dir / "metrics.jsonl"))


# ---------------------------------------------------------------------- pure helpers
def test_social_stage_schedule_last_entry_wins() -> None:
    schedule = [{"cycle": 3, "stage": "C2"}, {"cycle": 1, "stage": "C1"}]
    assert [social_stage_for(c, "OFF", schedule) for c in range(5)] == ["OFF", "C1", "C1", "C2", "C2"]
    assert social_stage_for(0, None, []) is None


def test_linear_lr_schedule() -> None:
    assert [scheduled_value(1.0, "linear", i, 4) for i in (1, 2, 4)] == [1.0, 0.75, 0.25]
    assert scheduled_value(1.0, "constant", 4, 4) == 1.0


@pytest.mark.parametrize(
    ("kw", "key"),
    [
        ({"lr": 0}, "lr"),
        ({"data_mode": "offline"}, "data_mode"),
        ({"mix_ratio": 1.0}, "mix_ratio"),
        ({"social_reward_schedule": [{"cycle": 0, "stage": "C9"}]}, "social_reward_schedule"),
        ({"bc_coef": -0.5}, "bc_coef"),
    ],
)
def test_bad_hyper_parameters_name_the_key(kw: dict[str, Any], key: str) -> None:
    with pytest.raises(PPOConfigError, match=f"strategy.{key}"):
        PPOStrategy(**kw)


# ---------------------------------------------------------------------- rollout mode
def test_rollout_run_writes_one_line_per_iteration_and_checkpoints(tmp_path: Path) -> None:
    result = PPOStrategy(**FAST, lr_schedule=LRSchedule.linear).run(make_context(tmp_path))
    recs = lines(tmp_path)
    assert [r["iteration"] for r in recs] == [1, 2, 3]
    assert result.iterations == 3 and result.env_steps == 96 and result.data_mode == "rollout"
    assert result.epoch == 3 and result.rollout_ticks == 8
    assert result.updates == 4.0  # 2 epochs x 2 minibatches of 16
    assert result.steps == 3 * 2 * 32
    assert [r["log_stream_offset"] for r in recs] == [1, 2, 3]
    assert recs[0]["lr"] > recs[1]["lr"] > recs[2]["lr"]
    for r in recs:  # every telemetry 1.2 field and the env metrics are there, counters included
        for key in (
            "loss_policy",
            "loss_value",
            "loss_entropy",
            "kl_divergence",
            "clip_fraction",
            "grad_norm_max",
            "reward_advantage_corr",
            "queue_conflict_events",
            "chat_quality_mean",
            "faint_rate",
            "reward_per_step_mean",
            "conflicts_per_100_agent_ticks",
            "explained_variance",
            "sps",
        ):
            assert key in r
        assert -1.0 <= r["reward_advantage_corr"] <= 1.0
    assert any(r["episodes_completed"] > 0 for r in recs)  # episodes of 12 ticks complete inside 24 ticks
    ckpt = load_checkpoint(tmp_path, which="last")
    assert ckpt.epoch == 3 and ckpt.extra["strategy"] == "ppo"
    assert (tmp_path / "checkpoints" / "best.pt").is_file()


def test_log_rotation_semantics(tmp_path: Path) -> None:
    run = tmp_path / "rot"
    PPOStrategy(**FAST, max_log_entries=1).run(make_context(run))
    files = [run / "metrics.jsonl", run / "metrics.jsonl.1", run / "metrics.jsonl.2"]
    assert [[json.loads(x)["iteration"] for x in f.read_text().splitlines()] for f in files] == [
        [1],
        [2],
        [3],
    ]
    freq = tmp_path / "freq"
    PPOStrategy(**FAST, log_frequency=2).run(make_context(freq))
    assert [r["iteration"] for r in lines(freq)] == [2]


def test_social_schedule_is_applied_before_each_rollout(tmp_path: Path) -> None:
    schedule = [SocialRewardScheduleEntry(1, SocialStage.OFF), SocialRewardScheduleEntry(2, SocialStage.C2)]
    PPOStrategy(**FAST, social_reward_stage=SocialStage.C1, social_reward_schedule=schedule).run(
        make_context(tmp_path)
    )
    assert [r["social_reward_stage"] for r in lines(tmp_path)] == ["C1", "OFF", "C2"]


def test_bc_coef_kickstarts_towards_the_scripted_teacher(tmp_path: Path) -> None:
    def final_loss_bc(name: str, bc_coef: float) -> float:
        PPOStrategy(**FAST, lr=3e-3, bc_coef=bc_coef).run(make_context(tmp_path / name))
        recs = lines(tmp_path / name)
        assert all(np.isfinite(r["loss_bc"]) and r["bc_coef"] == bc_coef for r in recs)
        return float(recs[-1]["loss_bc"])

    # Rollout rows are labelled by the teacher each iteration, so the term is measured either way.
    assert final_loss_bc("kick", 5.0) < 0.7 * final_loss_bc("plain", 0.0)


def test_replay_rows_use_the_recorded_teacher_labels(tmp_path: Path, scripted_data: ReplayData) -> None:
    PPOStrategy(data_mode=DataMode.replay, epochs=2, minibatch_size=16, bc_coef=1.0).run(
        make_context(tmp_path, replay=scripted_data)
    )
    assert all(np.isfinite(r["loss_bc"]) for r in lines(tmp_path))


def test_same_seed_gives_identical_result_json(tmp_path: Path) -> None:
    def run(name: str) -> dict[str, Any]:
        result = PPOStrategy(**FAST).run(make_context(tmp_path / name))
        data = json.loads(result.model_dump_json())
        data["best"] = {k: v for k, v in data.get("best", {}).items() if k not in TIMING_KEYS}
        return {k: v for k, v in data.items() if k not in TIMING_KEYS | {"checkpoint"}}

    assert run("a") == run("c")


def test_resume_continues_after_the_last_checkpoint(tmp_path: Path) -> None:
    PPOStrategy(**{**FAST, "total_steps": 64}).run(make_context(tmp_path))
    result = PPOStrategy(**{**FAST, "total_steps": 128}).run(make_context(tmp_path, resume=True))
    assert [r["iteration"] for r in lines(tmp_path)] == [1, 2, 3, 4]
    assert result.iterations == 4 and result.env_steps == 128


def test_warm_start_from_a_checkpoint(tmp_path: Path) -> None:
    PPOStrategy(**{**FAST, "total_steps": 32}).run(make_context(tmp_path / "src"))
    src = load_checkpoint(tmp_path / "src", which="last")
    result = PPOStrategy(**{**FAST, "total_steps": 32}).run(
        make_context(tmp_path / "dst", init_from=str(tmp_path / "src" / "checkpoints" / "last.pt"))
    )
    assert result.init_from and result.iterations == 1
    # the input statistics came with the weights (no fresh normalisation on top of them)
    dst = load_checkpoint(tmp_path / "dst", which="last")
    assert torch.equal(src.model_state["map_scale"], dst.model_state["map_scale"])


# ---------------------------------------------------------------------- replay / mixed
def test_replay_mode_uses_recorded_behaviour_log_probs(tmp_path: Path, scripted_data: ReplayData) -> None:
    result = PPOStrategy(data_mode=DataMode.replay, epochs=2, minibatch_size=16).run(
        make_context(tmp_path, replay=scripted_data)
    )
    recs = lines(tmp_path)
    assert [r["data_mode"] for r in recs] == ["replay", "replay"] and result.rollout_ticks == 0
    # ratios against the scripted behaviour (not a fresh net): the first update is already far from 1
    assert recs[0]["kl_divergence"] > 0.05
    assert result.queue_conflict_events is not None and result.chat_quality_mean is not None
    assert result.transitions == scripted_data.num_transitions


def test_mixed_mode_blends_both_streams(tmp_path: Path, scripted_data: ReplayData) -> None:
    result = PPOStrategy(**FAST, data_mode=DataMode.mixed, mix_ratio=0.25).run(
        make_context(tmp_path, replay=scripted_data)
    )
    assert result.data_mode == "mixed" and result.iterations == 3
    # every minibatch: 12 rollout rows + 4 replay rows; 2 minibatches per epoch cover the 32 rollout rows
    assert result.transitions == 32 + 3 * 4


def test_nan_rewards_in_replay_stop_with_a_clear_error(tmp_path: Path, scripted_data: ReplayData) -> None:
    bad = scripted_data.select_agents(np.arange(scripted_data.num_agents))
    bad.rewards[3, 1] = np.nan
    with pytest.raises(NonFiniteTrainingError, match=r"rewards \(dataset=scripted-tiny iteration=1\)"):
        PPOStrategy(data_mode=DataMode.replay, epochs=1).run(make_context(tmp_path, replay=bad))
    assert not (tmp_path / "checkpoints" / "last.pt").exists()


class PoisonedRollout(RolloutCaptureService):
    """Returns NaN rewards from the n-th collect on (counting the warm-up collect)."""

    def __init__(self, poison_from: int) -> None:
        super().__init__()
        self.calls, self.poison_from = 0, poison_from

    def collect(self, *args: Any, **kwargs: Any) -> ReplayData:
        data = super().collect(*args, **kwargs)
        self.calls += 1
        if self.calls >= self.poison_from:
            data.rewards[:] = np.nan
        return data


def test_nan_mid_run_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteTrainingError, match="iteration=3"):
        PPOStrategy(**FAST).run(make_context(tmp_path, rollout=PoisonedRollout(poison_from=4)))
    assert load_checkpoint(tmp_path, which="last").epoch == 2


# ---------------------------------------------------------------------- optional normalisers and schedules
def test_normalisers_and_entropy_schedule_are_logged_and_saved(tmp_path: Path) -> None:
    PPOStrategy(
        **FAST,
        reward_scaling=True,
        feature_normalisation=True,
        entropy_coef=0.01,
        entropy_schedule=LRSchedule.linear,
    ).run(make_context(tmp_path))
    rows = lines(tmp_path)
    assert [r["entropy_coef"] for r in rows] == pytest.approx([0.01, 0.01 * 2 / 3, 0.01 / 3])
    assert all(r["reward_scale"] > 0 and np.isfinite(r["reward_scale"]) for r in rows)
    ckpt = load_checkpoint(tmp_path, which="last")
    assert set(ckpt.extra["normalisers"]) == {"rewards", "features"}
    mean = ckpt.model_state["feature_mean"]
    assert torch.count_nonzero(mean) > 0  # the network carries the statistics it was trained with
    plain = tmp_path / "plain"
    PPOStrategy(**FAST).run(make_context(plain))
    assert not {"entropy_coef", "reward_scale"} & set(lines(plain)[0])  # off: no such metrics


def test_resume_continues_the_normaliser_statistics(tmp_path: Path) -> None:
    """The running statistics are restored from the checkpoint, not started again. (The resumed
    rollouts themselves start in fresh episodes, so later values are not compared.)"""
    opts = {**FAST, "reward_scaling": True, "feature_normalisation": True}
    PPOStrategy(**{**opts, "total_steps": 64}).run(make_context(tmp_path))
    saved = load_checkpoint(tmp_path, which="last").extra["normalisers"]
    PPOStrategy(**opts).run(make_context(tmp_path, resume=True))
    final = load_checkpoint(tmp_path, which="last").extra["normalisers"]
    rows = 32  # 8 ticks x 4 agents per iteration
    assert saved["features"]["count"] == pytest.approx(2 * rows, abs=1e-3)
    assert final["features"]["count"] == pytest.approx(3 * rows, abs=1e-3)
    assert final["rewards"]["moments"]["count"] == pytest.approx(3 * rows, abs=1e-3)


def test_training_lines_show_what_the_agents_live_through(tmp_path: Path) -> None:
    """Return, episode length, needs and faints on every rollout line: learning is visible."""
    PPOStrategy(**{**FAST, "total_steps": 128}).run(make_context(tmp_path))
    recs = lines(tmp_path)
    ended = [r for r in recs if r["episodes_completed"]]
    assert ended, "a 12-tick episode ends within 32 ticks"
    assert all(r["episode_length_mean"] == 12.0 for r in ended)  # tiny_world's episode_length
    assert all(r["episode_length_mean"] is None for r in recs if not r["episodes_completed"])
    assert all(0.0 < r["needs_mean"] <= 1.0 and r["faint_rate"] >= 0.0 for r in recs)


def test_an_evaluated_iteration_is_best_over_unevaluated_ones_then_by_its_return() -> None:
    from townlet.strategies.ppo.state import RunState

    state = RunState()
    env = {"reward_per_step_mean": 0.5}
    assert state.offer_best(1, {"loss_total": 1.0}, env)
    assert state.offer_best(2, {"loss_total": 1.0, "eval_return_mean": -9.0}, {"reward_per_step_mean": 0.1})
    assert not state.offer_best(3, {"loss_total": 1.0}, {"reward_per_step_mean": 9.0})  # not evaluated
    assert not state.offer_best(4, {"loss_total": 1.0, "eval_return_mean": -10.0}, env)
    assert state.offer_best(5, {"loss_total": 1.0, "eval_return_mean": -8.0}, env)
    assert state.best.iteration == 5


def test_the_forwarding_wrappers_copy_and_pickle_without_endless_lookup() -> None:
    """They forward unknown attributes to the object they wrap; a copy or unpickle asks before it is set."""
    import copy
    import pickle

    from townlet.strategies.anneal.stages import TaggedMetrics
    from townlet.strategies.ppo.sources import ActingPolicy

    acting = copy.deepcopy(ActingPolicy(inner=[3]))
    assert acting.inner == [3] and acting.count(3) == 1
    tagged = pickle.loads(pickle.dumps(TaggedMetrics([1], {"stage": "bc"})))
    assert tagged.count(1) == 1
