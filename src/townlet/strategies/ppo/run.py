"""One ``strategy=ppo`` run, top to bottom: set-up, the iteration loop, evaluation, the result DTO.

An iteration sets the learning rate and social stage, lets the network being trained act for
``n_steps`` ticks (rollout and mixed mode), turns the rollout and the replay dataset into batches
with GAE advantages, runs the clipped-surrogate update over them, logs one metrics line and
checkpoints. NaN/Inf in a batch or the update raises before the checkpoint, so the last good one
stays in place. The maths (GAE, losses, the minibatch loop) is in ``townlet.algorithms``; the
set-up steps, records and resumable state are in the sibling modules. Torch is imported inside
the methods, so importing the strategy does not need it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from townlet.config.schema.strategy_ppo import PPOConfigError
from townlet.rollout.collect import EpisodeTracker
from townlet.runs import interrupt
from townlet.strategies.base import dataset_label, evaluate_trained, periodic_evaluation
from townlet.strategies.ppo.normalisers import Normalisers
from townlet.strategies.ppo.records import (
    batch_diagnostics,
    env_metrics,
    iteration_record,
    result_dto,
)
from townlet.strategies.ppo.schedules import apply_social_stage, scheduled_value
from townlet.strategies.ppo.settings import PPOSettings
from townlet.strategies.ppo.setup import (
    ActingPolicy,
    configure_metrics,
    normalise_inputs,
    open_town,
    resolve_replay,
    restore_rollout,
    resume,
    shared_spec,
    warm_start_from,
    world_config,
)
from townlet.strategies.ppo.state import RunState, save_checkpoints
from townlet.strategies.ppo.teacher import make_teacher, teacher_labels

if TYPE_CHECKING:
    from townlet.algorithms.gae import PreparedBatch
    from townlet.dto import PPOTrainingResultDTO
    from townlet.strategies.context import TrainingContext

__all__ = ["PPORun"]


class PPORun:
    """One ``strategy=ppo`` run: ``execute`` is ``setup``, then ``iteration`` + ``checkpoint`` per
    iteration, then evaluation. The benchmarks drive ``setup`` and ``iteration`` directly."""

    def __init__(self, strategy: PPOSettings, context: TrainingContext) -> None:
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
                self.checkpoint(it, final=(it == self.iterations))
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
        """Data sources, network, optimiser, warm start / resume, input scaling, iteration budget.

        The order is part of the behaviour: it fixes which random numbers each step consumes.
        """
        import torch

        from townlet.behaviour.torch_policy import TorchPolicy
        from townlet.nets.models import build_network
        from townlet.runs.device import resolve_device
        from townlet.runs.seeding import derive_seed

        s, ctx = self.s, self.ctx
        self.device = torch.device(resolve_device(ctx.device))
        configure_metrics(ctx.metrics, s)
        self.replay = resolve_replay(s, ctx)
        self.world_cfg = world_config(ctx.world, s)
        self.rollout_service, self.town = open_town(s, ctx, self.world_cfg)
        self.spec = shared_spec(self.town, self.replay)
        self.label = "rollout" if self.replay is None else dataset_label(ctx, self.replay, str(s.data_mode))
        self.teacher = make_teacher(self.spec, s.bc_coef)

        torch.manual_seed(ctx.seed)
        self.net = build_network(ctx.model, self.spec).to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=s.lr, eps=1e-5)
        normalised = warm_start_from(ctx, self.net, self.spec, self.device, self.log)
        self.policy: ActingPolicy | None = None
        if self.town is not None:
            seed = derive_seed(ctx.seed, "ppo-policy")
            self.policy = ActingPolicy(TorchPolicy(self.net, self.spec, self.device, greedy=False, seed=seed))
        resumed = resume(ctx, self.net, self.opt, self.spec, self.device, self.policy, self.log)
        self.state, normalised = (resumed, True) if resumed is not None else (self.state, normalised)

        self.normalisers = Normalisers.for_run(s, self.spec, self.town, self.state.normalisers)
        self.tracker: EpisodeTracker | None = None
        self.obs: Any = None  # the observation the next rollout continues from (None: reset the town)
        if self.town is not None:
            if not normalised:
                n_warmup = max(1, min(16, s.n_steps))
                normalise_inputs(self.net, self.rollout_service.collect(self.town, self.policy, n_warmup))
            self.tracker = EpisodeTracker(self.town.n_agents)
            if resumed is not None:  # continue the very episodes the interrupted run was in
                self.town, self.obs = restore_rollout(self.town, self.tracker, resumed, ctx, self.world_cfg)
        elif not normalised and self.replay is not None:
            normalise_inputs(self.net, self.replay.first())
        self.iterations = s.planned_iterations(self.world_cfg, self.replay)

    def iteration(self, it: int) -> dict[str, Any]:
        """Collect (if rolling out), update, log one line; returns the iteration's record."""
        import torch

        from townlet.algorithms.gae import critic_values, prepare_batch
        from townlet.algorithms.update import Source, ppo_update

        s, st, town = self.s, self.state, self.town
        replay = None if self.replay is None else self.replay.for_iteration(it)
        t_start = time.perf_counter()
        lr = scheduled_value(s.lr, s.lr_schedule, it, self.iterations)
        for group in self.opt.param_groups:
            group["lr"] = lr
        stage = apply_social_stage(town, self.world_cfg, s, cycle=it - 1)
        where = f"dataset={self.label} iteration={it}"
        prepared: list[PreparedBatch] = []  # one PreparedBatch per source, for the diagnostics
        sources: list[Source] = []  # rollout first: it sets the number of minibatches per epoch
        env: dict[str, Any] = {}
        events: dict[str, float] = {}
        reward_scale: float | None = None
        t_collect = 0.0

        if town is not None:  # collect a rollout with the network being trained
            assert self.rollout_service is not None and self.tracker is not None
            t0 = time.perf_counter()
            data = self.rollout_service.collect(town, self.policy, s.n_steps, start_obs=self.obs)
            self.obs = data.next_obs
            t_collect = time.perf_counter() - t0
            env = env_metrics(data, self.tracker, self.world_cfg)
            st.episodes += env["episodes_completed"]
            events = dict(data.events)
            # running statistics first (PPO's clip bounds the shift they cause in this update)
            reward_scale = self.normalisers.observe(self.net, data)
            # GAE bootstraps from the values the acting policy recorded at truncations and after the last tick
            batch = prepare_batch(
                data,
                self.device,
                **s.gae_options(),
                where=f"dataset=rollout iteration={it}",
                teacher_actions=teacher_labels(self.teacher, data, recorded=False),
                reward_scale=reward_scale,
            )
            own_rows = s.minibatch_rows(len(batch.batch))
            if replay is not None:  # mixed: the rollout keeps (1 - mix_ratio) of every minibatch
                own_rows = max(1, round(own_rows * (1.0 - s.mix_ratio)))
            prepared.append(batch)
            sources.append(Source(batch.batch, own_rows))
            st.env_steps += len(batch.batch)

        if replay is not None:  # the dataset is re-valued by the current critic every iteration
            values, boot = critic_values(self.net, replay, self.device)
            batch = prepare_batch(
                replay,
                self.device,
                **s.gae_options(),
                where=where,
                values=values,
                bootstrap=boot,
                use_final_values=False,
                teacher_actions=teacher_labels(self.teacher, replay, recorded=True),
            )
            if town is None:
                events = dict(replay.events)
                rows = s.minibatch_rows(len(batch.batch))
            else:  # mixed: replay fills the rest of each minibatch
                rows = max(1, s.minibatch_rows(len(sources[0].batch)) - sources[0].rows_per_minibatch)
            prepared.append(batch)
            sources.append(Source(batch.batch, rows))

        # the PPO update: epochs of shuffled minibatches, reproducible from the seed and iteration
        entropy = scheduled_value(s.entropy_coef, s.entropy_schedule, it, self.iterations)
        hp = replace(
            s.hyper_params(len(sources[0].batch)),
            minibatch_size=sources[0].rows_per_minibatch,
            entropy_coef=entropy,
        )
        gen = torch.Generator().manual_seed(int(self.ctx.seed) * 1_000_003 + it)
        t0 = time.perf_counter()
        summary = ppo_update(self.net, self.opt, sources, hp, gen, where=where)
        diagnostics = batch_diagnostics(prepared)
        t_update = time.perf_counter() - t0
        duration = time.perf_counter() - t_start

        st.iteration = it
        st.steps_last = summary["transitions"] * summary["epochs_run"]
        st.steps += st.steps_last
        st.log_stream_offset += 1
        st.target_kl_stops += int(summary["early_stopped"])
        st.normalisers = self.normalisers.state()
        record = iteration_record(s, st, it, lr, summary, diagnostics, env, events, stage)
        record.update(
            epoch_duration_sec=duration,
            collect_sec=t_collect,
            update_sec=t_update,
            sps=s.n_steps * town.n_agents / duration if town is not None else None,
            update_samples_per_sec=st.steps_last / t_update if t_update > 0 else None,
        )
        record.update(
            self.normalisers.record(reward_scale, entropy if s.entropy_schedule != "constant" else None)
        )
        if st.offer_best(it, record, env):
            record["is_best"] = True
        ctx, net, spec = self.ctx, self.net, self.spec
        record.update(periodic_evaluation(ctx, net, spec, self.device, iteration=it, greedy=s.eval_greedy))
        self.ctx.metrics.log(record)
        st.last = record
        return record

    def checkpoint(self, it: int, *, final: bool) -> None:
        """``last.pt`` every ``checkpoint_every`` iterations and at the end; ``best.pt`` on a new best."""
        args = (self.ctx, self.net, self.opt, self.spec, self.state, it, self.policy)
        save_checkpoints(*args, every=self.s.checkpoint_every, final=final, rollout=(self.town, self.tracker))
