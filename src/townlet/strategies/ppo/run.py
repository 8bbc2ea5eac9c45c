"""One ``strategy=ppo`` run, top to bottom: set-up, the iteration loop (schedules -> source prepares
-> ``ppo_update`` -> record -> checkpoint), evaluation, the result DTO. NaN/Inf raises before the
checkpoint, so the last good one stays. Torch is imported inside the methods.
"""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from townlet.config.schema.strategy_ppo import DataMode, LRSchedule, PPOConfigError, schedule_field
from townlet.nets.checkpoints import BEST, LAST, load_checkpoint, save_checkpoint, warm_start
from townlet.nets.models import build_network
from townlet.runs import interrupt
from townlet.runs.device import resolve_device
from townlet.runs.seeding import derive_seed
from townlet.strategies.base import dataset_label, evaluate_trained, periodic_evaluation
from townlet.strategies.ppo.records import iteration_record, result_dto
from townlet.strategies.ppo.sources import (
    ActingPolicy,
    BatchMaker,
    ReplaySource,
    RolloutSource,
    make_teacher,
    pick_source,
)
from townlet.strategies.ppo.state import Normalisers, RunState
from townlet.world import make_town

if TYPE_CHECKING:
    from townlet.dto import PPOTrainingResultDTO
    from townlet.strategies.context import TrainingContext


def scheduled_value(base: float, schedule: str, iteration: int, iterations: int) -> float:
    """Constant, or linear decay from ``base`` at iteration 1 to ``base / iterations`` at the last;
    a pure function of the iteration, so a resumed run picks up exactly where it stopped."""
    if schedule == LRSchedule.linear and iterations > 0:
        return base * (1.0 - (iteration - 1) / iterations)
    return base


def social_stage_for(cycle: int, default: str | None, schedule: list[Any]) -> str | None:
    """Stage for rollout cycle ``cycle``: the default, replaced by every schedule entry with
    ``entry.cycle <= cycle`` in cycle order (the last one wins)."""
    stage = default
    for entry in sorted(schedule, key=lambda e: int(schedule_field(e, "cycle", 0))):
        if int(schedule_field(entry, "cycle", 0)) <= cycle:
            stage = str(schedule_field(entry, "stage", stage))
    return stage


def open_data(s: Any, ctx: TrainingContext, world_cfg: Any) -> tuple[Any, Any, Any]:
    """The rollout service and a freshly seeded town (rollout and mixed mode), and the replay data
    (replay and mixed mode); None for what the mode does not use."""
    service = town = data = None
    if s.data_mode in (DataMode.replay, DataMode.mixed):
        replay_service = getattr(ctx.services, "replay", None)
        if replay_service is None:
            raise PPOConfigError(
                f"strategy.data_mode={s.data_mode} needs the replay dataset service "
                "(TrainingServices.replay is None); use strategy.data_mode=rollout"
            )
        data = replay_service.resolve(ctx.dataset, ctx.world, ctx.data_dir)
    if s.data_mode in (DataMode.rollout, DataMode.mixed):
        service = getattr(ctx.services, "rollout", None)
        if service is None:
            raise PPOConfigError(
                "strategy.data_mode=rollout needs the rollout service (TrainingServices.rollout)"
            )
        town = make_town(world_cfg, derive_seed(ctx.seed, "ppo-town"))
    if town is not None and data is not None:
        diff = town.spec.describe_mismatch(data.spec)
        if diff:
            raise PPOConfigError(
                f"strategy.data_mode=mixed: the replay dataset does not match the world: {diff}"
            )
    return service, town, data


class PPORun:
    """One ``strategy=ppo`` run: ``execute`` is ``setup``, then ``iteration`` + ``checkpoint`` per
    iteration, then evaluation. The benchmarks drive ``setup`` and ``iteration`` directly."""

    def __init__(self, strategy: Any, context: TrainingContext) -> None:
        self.s = strategy
        self.ctx = context
        self.log = context.log
        self.state = RunState()

    def execute(self) -> PPOTrainingResultDTO:
        """Set up, iterate until the step/epoch budget, evaluate, return the DTO."""
        started = time.perf_counter()
        self.setup()
        last_record: dict[str, Any] | None = None
        with interrupt.safe_points():  # a signal stops the run after the checkpoint of an iteration
            for it in range(self.state.iteration + 1, self.iterations + 1):
                last_record = self.iteration(it)
                stop = self.ctx.stop.reached(last_record)
                self.checkpoint(it, final=(it == self.iterations or stop))
                if stop:
                    break
                interrupt.check(partial(self.checkpoint, it, final=True))
        # a finished run resumed returns its result again, built from its last line
        last_record = last_record or dict(self.state.last or self.state.best.summary) or None
        if last_record is None:
            raise PPOConfigError("PPO performed no iteration; raise strategy.total_steps or strategy.epochs")
        evaluation = evaluate_trained(
            self.ctx, self.net, self.spec, str(self.device), greedy=self.s.eval_greedy
        )
        duration = time.perf_counter() - started
        return result_dto(self.ctx, self.state, last_record, evaluation, duration, str(self.device))

    def setup(self) -> None:
        """Data, network, optimiser, warm start / resume, scaling, source, budget (order fixes RNG draws)."""
        import torch

        from townlet.behaviour.torch_policy import TorchPolicy

        s, ctx = self.s, self.ctx
        self.device = torch.device(resolve_device(ctx.device))
        s.configure_metrics(ctx.metrics)
        self.world_cfg = s.world_config(ctx.world)
        service, town, data = open_data(s, ctx, self.world_cfg)
        self.spec = town.spec if town is not None else data.spec
        self.label = "rollout" if data is None else dataset_label(ctx, data, str(s.data_mode))
        make = BatchMaker(s, self.device, make_teacher(self.spec, s.bc_coef))

        torch.manual_seed(ctx.seed)
        self.net = build_network(ctx.model, self.spec).to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=s.lr, eps=1e-5)
        if ctx.init_from:  # a BC or PPO checkpoint, with its input statistics
            src = warm_start(self.net, ctx.init_from, ctx.model, self.spec, str(self.device))
            self.log.info("ppo: warm-started from %s", src.path)
        policy = None
        if town is not None:
            seed = derive_seed(ctx.seed, "ppo-policy")
            policy = ActingPolicy(TorchPolicy(self.net, self.spec, self.device, greedy=False, seed=seed))
        # resume: last.pt's network, optimiser, RNGs, policy generator and counters
        resumed, ckpt_dir = None, ctx.run_dir.checkpoints
        if ctx.resume and (ckpt_dir / LAST).is_file():
            ckpt = load_checkpoint(ckpt_dir, self.spec, str(self.device), which="last")
            self.net.load_state_dict(ckpt.model_state)
            if ckpt.optimizer_state is not None:
                self.opt.load_state_dict(dict(ckpt.optimizer_state))
            ckpt.restore_rng()
            self.state = resumed = RunState.from_extra(ckpt.extra)
            if policy is not None and "policy_rng" in ckpt.extra:
                policy.generator.set_state(ckpt.extra["policy_rng"].cpu())
            self.log.info("ppo: resuming %s after iteration %d", ckpt.path, resumed.iteration)

        self.normalisers = Normalisers(s, self.spec, town, self.state.normalisers)
        self.rollout = (
            None if town is None else RolloutSource(s, service, town, policy, self.normalisers, make)
        )
        self.replay = None if data is None else ReplaySource(data, ctx.seed, self.label, make)
        self.source = pick_source(self.rollout, self.replay, s.mix_ratio)
        if not ctx.init_from and resumed is None:
            # from scratch: map channels scaled by their maxima; features stay as the world scales
            # them (standardising nearly-constant ones from a short rollout blows up the critic)
            maps_max = self.source.first().maps.max(axis=(0, 1, 3, 4)).astype(np.float32)
            self.net.set_input_normalisation(torch.from_numpy(maps_max))
        if self.rollout is not None and resumed is not None:  # continue the very episodes it was in
            self.rollout.restore(resumed, ctx, self.world_cfg)
        self.iterations = s.planned_iterations(self.world_cfg, self.replay)

    def iteration(self, it: int) -> dict[str, Any]:
        """Schedule, prepare this iteration's data, update, log one line; returns the line."""
        import torch

        from townlet.algorithms.update import ppo_update

        s, st = self.s, self.state
        t_start = time.perf_counter()
        schedule = self.schedule(it)
        for group in self.opt.param_groups:
            group["lr"] = schedule["lr"]
        streams, seen = self.source.prepare(it, self.net, self.world_cfg)

        # the PPO update: epochs of shuffled minibatches, reproducible from the seed and iteration
        hp = s.hyper_params(
            minibatch_size=streams[0].rows_per_minibatch, entropy_coef=schedule["entropy_coef"]
        )
        gen = torch.Generator().manual_seed(int(self.ctx.seed) * 1_000_003 + it)
        t0 = time.perf_counter()
        summary = ppo_update(
            self.net, self.opt, streams, hp, gen, where=f"dataset={self.label} iteration={it}"
        )
        timing = {"update": time.perf_counter() - t0, "duration": time.perf_counter() - t_start}

        st.advance(it, summary, seen, self.normalisers.state())
        record = iteration_record(s, st, it, schedule, summary, seen, timing)
        ctx, net, spec = self.ctx, self.net, self.spec
        record.update(periodic_evaluation(ctx, net, spec, self.device, iteration=it, greedy=s.eval_greedy))
        if st.offer_best(it, record, seen.env):
            record["is_best"] = True
        self.ctx.metrics.log(record)
        st.last = record
        return record

    def schedule(self, it: int) -> dict[str, Any]:
        """This iteration's learning rate and entropy weight, and the social reward stage it sets in
        the town (without ``social_reward_stage`` the schedule starts from the world's own stage;
        replay-only runs have no town but still report the stage their schedule names)."""
        s = self.s
        default = s.social_reward_stage
        if default is None:
            default = getattr(getattr(self.world_cfg, "social", None), "stage", None)
        stage = social_stage_for(it - 1, default, s.social_reward_schedule)
        if stage is not None and self.rollout is not None:
            self.rollout.town.set_social_stage(stage)
        return {
            "lr": scheduled_value(s.lr, s.lr_schedule, it, self.iterations),
            "entropy_coef": scheduled_value(s.entropy_coef, s.entropy_schedule, it, self.iterations),
            "stage": stage,
        }

    def checkpoint(self, it: int, *, final: bool) -> None:
        """``last.pt`` every ``checkpoint_every`` iterations and at the end, ``best.pt`` on a new
        best; ``extra`` also holds the rollout's generator, town and episode state, so interrupted
        and resumed equals uninterrupted."""
        ctx, rollout, world_name = self.ctx, self.rollout, getattr(self.ctx.world, "name", None)
        names = [LAST] if final or it % self.s.checkpoint_every == 0 else []
        names += [BEST] if self.state.best.iteration == it else []
        if not names:
            return
        extra = {**self.state.to_extra(), "world_name": world_name, "strategy": "ppo"}
        if rollout is not None:
            extra["policy_rng"] = rollout.policy.generator.get_state()
            extra["rollout"] = {
                "town": rollout.town.snapshot(),
                "episode_returns": rollout.tracker.returns,
                "episode_lengths": rollout.tracker.lengths,
            }
        for name in names:
            save_checkpoint(
                ctx.run_dir.checkpoints / name,
                model=self.net,
                optimizer=self.opt,
                model_cfg=ctx.model,
                spec=self.spec,
                epoch=it,
                config_hash=ctx.metadata.get("config_hash"),
                extra=extra,
            )
