"""AnnealStrategy orchestration with scripted stand-ins for BC and PPO (fast, real checkpoints).

The stand-ins write real torch files with distinct weights, so weight flow and rollback are checked
by comparing parameters, and report accuracies/losses chosen by the test, so the status rules,
baselines and promotion can be driven deterministically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest

torch = pytest.importorskip("torch")

from townlet.config.schema.dataset import DatasetConfig  # noqa: E402
from townlet.config.schema.model import ModelConfig  # noqa: E402
from townlet.config.schema.strategy_anneal import AnnealStageConfig, StageMode  # noqa: E402
from townlet.config.schema.strategy_bc import BCStrategyConfig  # noqa: E402
from townlet.config.schema.strategy_ppo import PPOStrategyConfig  # noqa: E402
from townlet.dto import (  # noqa: E402
    AnnealStageResultDTO,
    AnnealSummaryDTO,
    BCTrainingResultDTO,
    EvaluationBlock,
    PolicyEvaluationDTO,
    PPOTrainingResultDTO,
)
from townlet.promotion.baselines import BaselineStore  # noqa: E402
from townlet.promotion.state import PromotionService  # noqa: E402
from townlet.rollout.collect import RolloutCaptureService  # noqa: E402
from townlet.runs.metrics import MetricsWriter  # noqa: E402
from townlet.runs.rundir import RunDir  # noqa: E402
from townlet.strategies.anneal import AnnealConfigError, AnnealStrategy  # noqa: E402
from townlet.strategies.context import TrainingContext  # noqa: E402
from townlet.strategies.services import TrainingServices  # noqa: E402
from townlet.world.config import WorldConfig  # noqa: E402


class Recorder:
    """Shared between the per-stage copies of a stand-in strategy; ``returns`` are the evaluated
    returns the stages report (None: not evaluated)."""

    def __init__(self, values: list[float], returns: list[float] | None = None) -> None:
        self.values = list(values)
        self.returns = list(returns or [])
        self.calls: list[dict[str, Any]] = []

    def evaluation(self, stage: int) -> EvaluationBlock | None:
        if stage >= len(self.returns):
            return None
        row = PolicyEvaluationDTO(
            policy="trained", episodes=2, mean_return=self.returns[stage], return_std=0.0, faint_rate=0.0,
            mean_needs=0.5, conflicts_per_100_agent_ticks=0.0,
        )  # fmt: skip
        scripted = row.model_copy(update={"policy": "scripted", "mean_return": -11.0})
        return EvaluationBlock(policy=row, scripted=scripted, seed=10_000)


def _weights(ctx: TrainingContext, tag: int) -> dict[str, Any]:
    """Start from init_from's weights (as the real strategies do), then move them."""
    state = torch.load(Path(ctx.init_from), weights_only=True) if ctx.init_from else {"w": torch.zeros(4)}
    return {"w": state["w"] + tag}


def _save(ctx: TrainingContext, state: dict[str, Any]) -> str:
    path = ctx.run_dir.checkpoints / "best.pt"
    torch.save(state, path)
    return str(path)


class FakeBC:
    name: ClassVar[str] = "bc"
    requires_torch: ClassVar[bool] = False

    def __init__(self, rec: Recorder) -> None:
        self.rec, self.epochs = rec, 1

    def run(self, ctx: TrainingContext) -> BCTrainingResultDTO:
        n = len(self.rec.calls)
        acc = self.rec.values[n]
        self.rec.calls.append({"init_from": ctx.init_from, "epochs": self.epochs, "eval": ctx.evaluation})
        ckpt = _save(ctx, _weights(ctx, 1))
        ctx.metrics.log({"strategy": "bc", "epoch": 1, "val_accuracy": acc})
        return BCTrainingResultDTO(
            manifest="fake", accuracy=acc, loss=0.1, learning_rate=1e-3, batch_size=8, epochs=self.epochs,
            val_accuracy=acc, val_loss=0.2, checkpoint=ckpt, evaluation=self.rec.evaluation(n),
        )  # fmt: skip


class FakePPO:
    name: ClassVar[str] = "ppo"
    requires_torch: ClassVar[bool] = False

    def __init__(self, rec: Recorder, queue: float = 10.0) -> None:
        self.rec, self.queue = rec, queue
        self.epochs, self.total_steps, self.n_steps, self.teacher_mix = 1, 1, 8, -1.0
        self.bc_coef = -1.0

    def run(self, ctx: TrainingContext) -> PPOTrainingResultDTO:
        n = len(self.rec.calls)
        loss = self.rec.values[n]
        self.rec.calls.append(
            {
                "init_from": ctx.init_from,
                "epochs": self.epochs,
                "teacher_mix": getattr(self, "teacher_mix", None),
                "bc_coef": self.bc_coef,
                "eval": ctx.evaluation,
                "total_steps": self.total_steps,
                "seed": ctx.seed,
            }
        )
        ckpt = _save(ctx, _weights(ctx, 10))
        ctx.metrics.log({"strategy": "ppo", "iteration": 1, "loss_total": loss})
        return PPOTrainingResultDTO(
            epoch=1, updates=1, transitions=64, loss_policy=0.0, loss_value=loss, loss_entropy=1.0,
            loss_total=loss, clip_fraction=0.1, adv_mean=0.0, adv_std=1.0, grad_norm=0.5,
            kl_divergence=0.01, lr=1e-4, steps=64, queue_conflict_events=self.queue,
            queue_conflict_intensity_sum=2 * self.queue, checkpoint=ckpt, evaluation=self.rec.evaluation(n),
        )  # fmt: skip


def make_context(tmp_path: Path, name: str = "run", seed: int = 0) -> TrainingContext:
    run = RunDir(tmp_path / name).prepare()
    return TrainingContext(
        seed=seed,
        world=WorldConfig(num_envs=2, num_agents=3),
        dataset=DatasetConfig(),
        model=ModelConfig(),
        device="cpu",
        run_dir=run,
        services=TrainingServices(promotion=PromotionService(tmp_path / "state")),
        metrics=MetricsWriter(run.metrics_path),
    )


def stage(cycle: int, mode: str, epochs: int = 1, bc_weight: float = 0.0) -> AnnealStageConfig:
    return AnnealStageConfig(cycle=cycle, mode=StageMode(mode), epochs=epochs, bc_weight=bc_weight)


DEFAULT_SCHEDULE = [stage(0, "bc", 3, 1.0), stage(1, "ppo", 2, 0.5), stage(2, "ppo", 2, 0.0)]


def make(
    bc: list[float],
    ppo: list[float],
    schedule: list[AnnealStageConfig] | None = None,
    *,
    returns: tuple[list[float], list[float]] = ([], []),
    **kw: Any,
):
    bc_rec, ppo_rec = Recorder(bc, returns[0]), Recorder(ppo, returns[1])
    strat = AnnealStrategy(
        # the stand-ins duck-type the stage strategies (name, run, the fields stages override)
        bc=cast(BCStrategyConfig, FakeBC(bc_rec)),
        ppo=cast(PPOStrategyConfig, FakePPO(ppo_rec)),
        schedule=schedule or DEFAULT_SCHEDULE,
        **kw,
    )
    return strat, bc_rec, ppo_rec


def load(path: str | Path | None) -> Any:
    assert path is not None
    return torch.load(Path(path), weights_only=True)["w"]


def bc_of(stage: AnnealStageResultDTO) -> BCTrainingResultDTO:
    assert stage.bc is not None, stage
    return stage.bc


def ppo_of(stage: AnnealStageResultDTO) -> PPOTrainingResultDTO:
    assert stage.ppo is not None, stage
    return stage.ppo


def stored(store: BaselineStore, key: str) -> dict[str, float]:
    entry = store.get(key)
    assert entry is not None, key
    return entry


def test_weights_flow_and_bc_weight_reaches_ppo(tmp_path: Path) -> None:
    strat, bc_rec, ppo_rec = make([0.95], [1.0, 1.05])
    ctx = make_context(tmp_path)
    summary = strat.run(ctx)
    assert isinstance(summary, AnnealSummaryDTO)
    assert summary.status == "PASS"
    assert [s.mode for s in summary.stages] == ["bc", "ppo", "ppo"]
    # Each stage starts from the previous stage's checkpoint.
    assert bc_rec.calls[0]["init_from"] is None
    assert ppo_rec.calls[0]["init_from"] == bc_of(summary.stages[0]).checkpoint
    assert ppo_rec.calls[1]["init_from"] == ppo_of(summary.stages[1]).checkpoint
    assert torch.equal(load(summary.checkpoint), torch.full((4,), 21.0))  # 1 (BC) + 10 + 10 (PPO)
    # Stage overrides: BC epochs, PPO epochs, kickstarting weight, iterations sized in agent-steps.
    assert bc_rec.calls[0]["epochs"] == 3
    assert [c["bc_coef"] for c in ppo_rec.calls] == [0.5, 0.0]
    assert [c["teacher_mix"] for c in ppo_rec.calls] == [-1.0, -1.0]  # teacher mixing is opt-in
    assert [s.bc_weight for s in summary.stages[1:]] == [0.5, 0.0]
    assert [c["total_steps"] for c in ppo_rec.calls] == [2 * 2 * 3 * 8] * 2
    assert ppo_rec.calls[0]["seed"] != ppo_rec.calls[1]["seed"]  # no replayed rollouts


def test_ppo_stage_results_carry_the_anneal_fields(tmp_path: Path) -> None:
    strat, _, _ = make([0.93], [2.0, 2.1], accuracy_threshold=0.9, chain_stages=True)
    summary = strat.run(make_context(tmp_path))
    first, second = (ppo_of(s) for s in summary.stages[1:])
    assert (first.anneal_cycle, first.anneal_stage, first.anneal_bc_accuracy) == (1, "ppo", 0.93)
    assert (first.anneal_bc_threshold, first.anneal_bc_passed) == (0.9, True)
    assert first.anneal_dataset is not None and first.anneal_dataset.startswith("scripted/default-")
    assert first.anneal_loss_baseline is None  # nothing stored yet
    baselines = (second.anneal_loss_baseline, second.anneal_queue_baseline, second.anneal_intensity_baseline)
    assert baselines == (2.0, 10.0, 20.0)


def test_failed_bc_stage_fails_and_rolls_back_to_last_passing_weights(tmp_path: Path) -> None:
    schedule = [stage(0, "bc", 2), stage(1, "ppo", 1, 0.5), stage(2, "bc", 1), stage(3, "ppo", 1)]
    strat, _, ppo_rec = make([0.95, 0.40], [1.0, 1.0], schedule)
    ctx = make_context(tmp_path)
    summary = strat.run(ctx)
    assert summary.status == "FAIL"
    assert len(ppo_rec.calls) == 1  # the schedule stopped at the failed BC stage
    failed = summary.stages[-1]
    assert (failed.mode, failed.passed, failed.rolled_back) == ("bc", False, True)
    last_passing = ppo_of(summary.stages[1]).checkpoint
    # The run's final weights are exactly the last passing stage's, not the failed stage's.
    assert torch.equal(load(summary.checkpoint), load(last_passing))
    assert not torch.equal(load(summary.checkpoint), load(bc_of(failed).checkpoint))
    assert torch.equal(load(ctx.run_dir.checkpoints / "last.pt"), load(last_passing))
    results = json.loads((ctx.run_dir.path / "anneal_results.json").read_text())
    assert results["status"] == "FAIL"
    assert results["reasons"] == ["bc_stage_failed_cycle_2"]
    assert results["final_checkpoint"] == summary.checkpoint


def test_first_bc_stage_failing_leaves_no_final_checkpoint(tmp_path: Path) -> None:
    strat, _, ppo_rec = make([0.5], [])
    summary = strat.run(make_context(tmp_path))
    assert (summary.status, summary.checkpoint, ppo_rec.calls) == ("FAIL", None, [])


def test_loss_flag_gives_hold_and_reason(tmp_path: Path) -> None:
    strat, _, _ = make([0.95], [1.0, 1.5], chain_stages=True)  # +50 % > 10 %
    ctx = make_context(tmp_path)
    summary = strat.run(ctx)
    assert summary.status == "HOLD"
    assert summary.stages[2].anneal_loss_flag is True
    assert summary.stages[1].anneal_loss_flag is False  # first stage: no baseline anywhere yet
    results = json.loads((ctx.run_dir.path / "anneal_results.json").read_text())
    assert results["reasons"] == ["loss_flag_cycle_2"]


def test_tolerances_are_configurable(tmp_path: Path) -> None:
    strat, _, _ = make([0.95], [1.0, 1.5], tolerances={"loss": 0.6}, chain_stages=True)
    assert strat.run(make_context(tmp_path)).status == "PASS"
    strat, _, _ = make([0.95], [1.0, 1.5], tolerances={"loss_direction": "drop"}, chain_stages=True)
    assert strat.run(make_context(tmp_path / "fresh")).status == "PASS"  # a rise is not a drop


def test_baselines_persist_per_cycle_to_the_next_run(tmp_path: Path) -> None:
    strat, _, _ = make([0.95], [1.0, 5.0])
    first = strat.run(make_context(tmp_path, "r1"))
    # Default: stages are not chained, so a first-ever run has nothing to compare with.
    assert [ppo_of(s).anneal_loss_baseline for s in first.stages[1:]] == [None, None]
    assert first.status == "PASS"
    store = BaselineStore(tmp_path / "state")
    label = first.dataset_label
    assert stored(store, f"{label}@cycle1")["loss_total"] == pytest.approx(1.0)
    assert stored(store, f"{label}@cycle2")["loss_total"] == pytest.approx(5.0)
    # The next run's stages are judged against the same cycle of the earlier run (like with like).
    strat, _, _ = make([0.95], [1.05, 2.0])
    second = strat.run(make_context(tmp_path, "r2"))
    assert [ppo_of(s).anneal_loss_baseline for s in second.stages[1:]] == [1.0, 5.0]
    assert (second.stages[1].anneal_loss_flag, second.stages[2].anneal_loss_flag) == (False, True)
    assert second.status == "HOLD"
    # A HOLD run does not overwrite the stored baselines (baseline_update=on_pass).
    assert stored(store, f"{label}@cycle2")["loss_total"] == pytest.approx(5.0)
    results = json.loads((tmp_path / "r2" / "anneal_results.json").read_text())
    assert results["stored_baselines"][f"{label}@cycle2"]["loss_total"] == pytest.approx(5.0)
    assert results["baselines"][f"{label}@cycle2"]["loss_total"] == pytest.approx(2.0)


def test_two_pass_runs_make_the_candidate_ready_and_hold_resets(tmp_path: Path) -> None:
    def run(name: str, losses: list[float]) -> AnnealSummaryDTO:
        strat, _, _ = make([0.95], losses, baseline_update="never", chain_stages=True)
        return strat.run(make_context(tmp_path, name))

    assert run("a", [1.0, 1.0]).promotion_candidate_ready is False
    second = run("b", [1.0, 1.0])
    assert (second.promotion_pass_streak, second.promotion_candidate_ready) == (2, True)
    assert second.promotion_state == "ready"
    held = run("c", [1.0, 3.0])
    assert (held.status, held.promotion_pass_streak, held.promotion_candidate_ready) == ("HOLD", 0, False)
    snap = PromotionService(tmp_path / "state").snapshot()
    assert snap["evaluations"] == 3


def test_hold_keeps_the_streak_when_configured(tmp_path: Path) -> None:
    def run(name: str, losses: list[float]) -> AnnealSummaryDTO:
        strat, _, _ = make(
            [0.95],
            losses,
            baseline_update="never",
            chain_stages=True,
            promotion={"hold_resets_streak": False},
        )
        return strat.run(make_context(tmp_path, name))

    run("a", [1.0, 1.0])
    run("b", [1.0, 3.0])
    assert run("c", [1.0, 1.0]).promotion_candidate_ready is True


def test_bc_weight_wraps_the_rollout_service_when_ppo_has_no_teacher_mix(tmp_path: Path) -> None:
    from townlet.rollout.teacher_mix import TeacherMixRollout

    seen: list[Any] = []

    class PlainPPO(FakePPO):
        def __init__(self, rec: Recorder) -> None:
            super().__init__(rec)
            del self.teacher_mix

        def run(self, ctx: TrainingContext) -> PPOTrainingResultDTO:
            seen.append(ctx.services.rollout)
            return super().run(ctx)

    strat = AnnealStrategy(
        # duck-typed stand-ins for the stage strategies, as in ``make``
        bc=cast(BCStrategyConfig, FakeBC(Recorder([0.95]))),
        ppo=cast(PPOStrategyConfig, PlainPPO(Recorder([1.0, 1.0]))),
        schedule=DEFAULT_SCHEDULE,
        teacher_mix=True,
    )
    ctx = make_context(tmp_path)
    ctx.services.rollout = RolloutCaptureService()
    strat.run(ctx)
    assert isinstance(seen[0], TeacherMixRollout)
    assert seen[0].mix == 0.5
    assert seen[1] is ctx.services.rollout  # bc_weight 0: plain PPO rollouts


def test_bc_weight_scales_the_kickstarting_loss_and_teacher_mix_is_opt_in(tmp_path: Path) -> None:
    strat, _, ppo_rec = make([0.95], [1.0, 1.0], bc_loss_coef=2.0, teacher_mix=True)
    strat.run(make_context(tmp_path))
    assert [(c["bc_coef"], c["teacher_mix"]) for c in ppo_rec.calls] == [(1.0, 0.5), (0.0, 0.0)]


def test_return_within_tolerance_passes_and_keeps_the_last_stage(tmp_path: Path) -> None:
    # BC -10, PPO -10.4 (-4 % < 5 %), then -10.3: no flag, no rollback, the last stage is final.
    strat, _, _ = make([0.95], [1.0, 1.0], returns=([-10.0], [-10.4, -10.3]))
    summary = strat.run(make_context(tmp_path))
    assert summary.status == "PASS"
    assert [s.mean_return for s in summary.stages] == [-10.0, -10.4, -10.3]
    assert [s.return_baseline for s in summary.stages] == [None, -10.0, -10.0]  # best passing so far
    assert [s.anneal_return_flag for s in summary.stages] == [None, False, False]
    assert summary.checkpoint is not None
    assert torch.equal(load(summary.checkpoint), load(ppo_of(summary.stages[2]).checkpoint))
    assert summary.evaluation.policy.mean_return == -10.3


def test_return_drop_holds_and_rolls_back_to_the_best_evaluated_stage(tmp_path: Path) -> None:
    # BC -10, PPO -9.8 (better), PPO -10.5 (-7 % vs the best, -9.8): flag, HOLD, back to stage 2.
    strat, _, _ = make([0.95], [1.0, 1.0], returns=([-10.0], [-9.8, -10.5]))
    ctx = make_context(tmp_path)
    summary = strat.run(ctx)
    assert summary.status == "HOLD"
    assert [s.anneal_return_flag for s in summary.stages] == [None, False, True]
    assert summary.stages[2].return_baseline == -9.8
    assert [s.rolled_back for s in summary.stages] == [False, None, True]
    best = ppo_of(summary.stages[1]).checkpoint
    assert torch.equal(load(summary.checkpoint), load(best))
    assert torch.equal(load(ctx.run_dir.checkpoints / "last.pt"), load(best))
    assert not torch.equal(load(summary.checkpoint), load(ppo_of(summary.stages[2]).checkpoint))
    # The run reports the chosen policy next to the last stage's scripted row.
    assert summary.evaluation.policy.mean_return == -9.8
    assert summary.evaluation.scripted is not None
    results = json.loads((ctx.run_dir.path / "anneal_results.json").read_text())
    assert results["reasons"] == ["return_flag_cycle_2"]
    assert results["final_stage_index"] == 1
    stage_file = ctx.run_dir.path / "stages" / "02_c2_ppo" / "stage.json"
    assert json.loads(stage_file.read_text())["rolled_back"] is True


def test_return_flag_then_failed_bc_stage_fails_and_rolls_back_to_the_best(tmp_path: Path) -> None:
    schedule = [stage(0, "bc", 1), stage(1, "ppo", 1, 0.5), stage(2, "bc", 1)]
    strat, _, _ = make([0.95, 0.4], [1.0], schedule, returns=([-10.0, -10.0], [-12.0]))
    summary = strat.run(make_context(tmp_path))
    assert summary.status == "FAIL"
    assert [s.rolled_back for s in summary.stages] == [False, True, True]
    assert torch.equal(load(summary.checkpoint), load(bc_of(summary.stages[0]).checkpoint))


def test_return_tolerance_and_direction_are_configurable(tmp_path: Path) -> None:
    strat, _, _ = make([0.95], [1.0, 1.0], returns=([-10.0], [-10.8, -10.8]), tolerances={"eval_return": 0.1})
    assert strat.run(make_context(tmp_path)).status == "PASS"
    strat, _, _ = make(
        [0.95], [1.0, 1.0], returns=([-10.0], [-9.0, -9.0]), tolerances={"eval_return_direction": "both"}
    )
    summary = strat.run(make_context(tmp_path / "fresh"))
    assert (summary.status, summary.stages[1].anneal_return_flag) == ("HOLD", True)  # +10 % is a move too


def test_stage_evaluation_episodes_override(tmp_path: Path) -> None:
    strat, bc_rec, ppo_rec = make([0.95], [1.0, 1.0], evaluation_episodes=16)
    strat.run(make_context(tmp_path))
    assert [c["eval"].episodes for c in bc_rec.calls + ppo_rec.calls] == [16, 16, 16]
    # Every stage is evaluated on the same seed; only the last one runs the baselines.
    seeds = [c["eval"].seed_offset + 1000 * i for i, c in enumerate(bc_rec.calls + ppo_rec.calls)]
    assert len(set(seeds)) == 1
    assert [c["eval"].baselines for c in bc_rec.calls + ppo_rec.calls] == [False, False, True]


def test_metrics_carry_anneal_tags(tmp_path: Path) -> None:
    strat, _, _ = make([0.95], [1.0, 1.0])
    ctx = make_context(tmp_path)
    strat.run(ctx)
    ctx.metrics.close()
    lines = [json.loads(x) for x in ctx.run_dir.metrics_path.read_text().splitlines()]
    ppo_lines = [x for x in lines if x.get("strategy") == "ppo"]
    tags = [(x["stage_index"], x["stage"], x["anneal_cycle"]) for x in ppo_lines]
    assert tags == [(1, "ppo", 1), (2, "ppo", 2)]
    assert lines[-1]["anneal_status"] == "PASS"
    flags = [x for x in lines if "anneal_loss_flag" in x]
    assert [(x["anneal_cycle"], x["anneal_loss_flag"], x["anneal_bc_weight"]) for x in flags] == [
        (1, False, 0.5),
        (2, False, 0.0),
    ]


def test_schedule_runs_in_cycle_order(tmp_path: Path) -> None:
    schedule = [stage(2, "ppo", 1), stage(0, "bc", 1), stage(1, "ppo", 1)]
    strat, _, _ = make([0.95], [1.0, 1.0], schedule)
    assert [s.cycle for s in strat.stages] == [0, 1, 2]


@pytest.mark.parametrize(
    ("schedule", "kwargs", "match"),
    [
        ([], {}, "schedule is empty"),
        ([{"cycle": 0, "mode": "dagger"}], {}, "mode must be bc or ppo"),
        ([{"cycle": 0, "mode": "ppo", "bc_weight": 1.5}], {}, "bc_weight must be in"),
        ([{"cycle": 0, "mode": "bc", "epochs": 0}], {}, "epochs >= 1"),
        ([{"cycle": 0, "mode": "bc", "epoch": 3}], {}, "unknown key"),
        ([{"cycle": 0, "mode": "bc"}], {"accuracy_threshold": 1.5}, "accuracy_threshold"),
        ([{"cycle": 0, "mode": "bc"}], {"baseline_update": "sometimes"}, "baseline_update"),
        ([{"cycle": 0, "mode": "bc"}], {"tolerances": {"loss": -1}}, "loss"),
        ([{"cycle": 0, "mode": "bc"}], {"tolerances": {"eval_return_direction": "up"}}, "eval_return"),
        ([{"cycle": 0, "mode": "bc"}], {"bc_loss_coef": -1}, "bc_loss_coef"),
        ([{"cycle": 0, "mode": "bc"}], {"evaluation_episodes": 0}, "evaluation_episodes"),
    ],
)
def test_config_errors_are_clear(schedule: list[Any], kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AnnealStrategy(
            # duck-typed stand-ins for the stage strategies, as in ``make``
            bc=cast(BCStrategyConfig, FakeBC(Recorder([]))),
            ppo=cast(PPOStrategyConfig, FakePPO(Recorder([]))),
            schedule=schedule,
            **kwargs,
        )


def test_schema_builds_with_real_stage_strategies(tmp_path: Path) -> None:
    """The config node stays a node (``_recursive_: false``); stages build the real strategies."""
    from omegaconf import OmegaConf

    from townlet.config.instantiate import build
    from townlet.config.schema.strategy_anneal import AnnealStrategyConfig

    strat = build(OmegaConf.structured(AnnealStrategyConfig))
    assert isinstance(strat, AnnealStrategy)
    ctx = make_context(tmp_path)
    bc_stage, ppo_stage = strat.stages[0], strat.stages[1]
    bc = strat.build_stage_strategy(bc_stage, ctx)
    assert (type(bc).__name__, bc.epochs) == ("BCStrategy", bc_stage.epochs)
    ppo = strat.build_stage_strategy(ppo_stage, ctx)
    assert type(ppo).__name__ == "PPOStrategy"
    assert ppo.total_steps == ppo_stage.epochs * 2 * 3 * ppo.n_steps
    assert AnnealConfigError.__mro__[1] is ValueError


def test_a_stage_target_outside_the_allow_list_is_refused_before_any_import() -> None:
    import sys

    from omegaconf import OmegaConf

    from townlet.config.instantiate import TargetNotAllowedError
    from townlet.strategies.anneal.settings import build_stage_strategy

    assert "antigravity" not in sys.modules
    with pytest.raises(TargetNotAllowedError, match="not allowed"):
        build_stage_strategy(OmegaConf.create({"_target_": "antigravity.fly", "epochs": 1}), {"epochs": 2})
    assert "antigravity" not in sys.modules


def test_plan_lists_the_stages_in_run_order() -> None:
    strat, _, _ = make([0.95], [1.0], [stage(2, "ppo", 4), stage(0, "bc", 3)])
    plan = strat.plan(None)
    assert (plan.units, plan.stages) == (7, (("bc", 3), ("ppo", 4)))
