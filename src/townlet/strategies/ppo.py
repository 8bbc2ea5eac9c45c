"""PPO: the current network acts in vectorised towns, and learns from what it did.

Fixes over the original (upstream §1.2-§1.9, §7): the network that is trained is the one that acts
(the original captured with the scripted controller and computed ratios against an unrelated random
net); ``update_epochs`` is used; replay mode takes ratios against the dataset's *recorded* behaviour
log-probs; mixed mode blends rollout and replay rows inside every minibatch; GAE is vectorised with
a real bootstrap at truncation; every iteration is summarised over all its epochs (not just the
last), checkpointed, and logged as one JSONL line; NaN/Inf anywhere stops the run with a message
naming where, leaving the last good checkpoint in place.

Torch is imported only inside functions; the maths lives in ``algorithms``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from townlet.config.schema.strategy_ppo import DataMode, LRSchedule, SocialStage
from townlet.strategies.base import StrategyBase, dataset_label, evaluate_trained
from townlet.world.spec import EVENT_COUNTERS

if TYPE_CHECKING:
    from townlet.dto import PPOTrainingResultDTO
    from townlet.replay import ReplayData
    from townlet.strategies.context import TrainingContext

TELEMETRY_VERSION = 1.2
# The DTO carries the per-event counts; chat quality is reported as a mean (event_counters).
COUNTERS = tuple(name for name in EVENT_COUNTERS if name != "chat_quality_sum")


class PPOConfigError(ValueError):
    """A PPO hyper-parameter outside its valid range; the message names the key and the range."""


def social_stage_for(cycle: int, default: str | None, schedule: list[Any]) -> str | None:
    """Stage for rollout cycle ``cycle``: the default, replaced by every schedule entry with
    ``entry.cycle <= cycle`` in cycle order (the last one wins), as in upstream §1.7."""
    stage = default
    for entry in sorted(schedule, key=lambda e: int(_get(e, "cycle", 0))):
        if int(_get(entry, "cycle", 0)) <= cycle:
            stage = str(_get(entry, "stage", stage))
    return None if stage is None else str(stage)


def _get(obj: Any, key: str, default: Any) -> Any:
    return obj.get(key, default) if isinstance(obj, dict) else getattr(obj, key, default)


def learning_rate_at(base: float, schedule: str, iteration: int, iterations: int) -> float:
    """Constant, or linear decay from ``base`` at iteration 1 to ``base / iterations`` at the last."""
    if schedule == LRSchedule.linear and iterations > 0:
        return base * (1.0 - (iteration - 1) / iterations)
    return base


@dataclass
class EpisodeTracker:
    """Running per-agent returns across iterations; an episode completes at a truncation."""

    returns: np.ndarray
    completed: list[float] = field(default_factory=list)

    def update(self, rewards: np.ndarray, truncated: np.ndarray) -> list[float]:
        done_now: list[float] = []
        for t in range(rewards.shape[0]):
            self.returns += rewards[t]
            if truncated[t].any():
                done_now.extend(self.returns[truncated[t]].tolist())
                self.returns[truncated[t]] = 0.0
        self.completed.extend(done_now)
        return done_now


@dataclass
class _Best:
    iteration: int = 0
    score: float = -math.inf
    summary: dict[str, Any] = field(default_factory=dict)


class PPOStrategy(StrategyBase):
    """``strategy=ppo``; constructor keywords are the fields of ``PPOStrategyConfig``."""

    name = "ppo"
    requires_torch = True

    def __init__(
        self,
        lr: float = 3e-4,
        clip_param: float = 0.2,
        value_loss_coef: float = 0.5,
        entropy_coef: float = 0.01,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        max_grad_norm: float = 0.5,
        value_clip: float = 0.2,
        advantage_normalization: bool = True,
        update_epochs: int = 4,
        minibatch_size: int = 512,
        num_minibatches: int | None = None,
        data_mode: str = "rollout",
        num_envs: int | None = None,
        num_agents: int | None = None,
        n_steps: int = 64,
        total_steps: int = 65_536,
        epochs: int = 1,
        mix_ratio: float = 0.5,
        lr_schedule: str = "constant",
        target_kl: float | None = None,
        bc_coef: float = 0.0,
        social_reward_stage: str | None = None,
        social_reward_schedule: list[Any] | None = None,
        checkpoint_every: int = 1,
        log_frequency: int | None = None,
        max_log_entries: int | None = None,
        eval_greedy: bool = False,
    ) -> None:
        def check(ok: bool, key: str, rule: str, value: Any) -> None:
            if not ok:
                raise PPOConfigError(f"strategy.{key} must be {rule}, got {value!r}")

        check(lr > 0, "lr", "> 0", lr)
        check(0 <= clip_param <= 1, "clip_param", "in [0, 1]", clip_param)
        check(value_loss_coef >= 0, "value_loss_coef", ">= 0", value_loss_coef)
        check(entropy_coef >= 0, "entropy_coef", ">= 0", entropy_coef)
        check(0 <= gamma <= 1, "gamma", "in [0, 1]", gamma)
        check(0 <= gae_lambda <= 1, "gae_lambda", "in [0, 1]", gae_lambda)
        check(max_grad_norm >= 0, "max_grad_norm", ">= 0 (0 disables clipping)", max_grad_norm)
        check(0 <= value_clip <= 1, "value_clip", "in [0, 1] (0 disables it)", value_clip)
        check(1 <= update_epochs <= 64, "update_epochs", "in [1, 64]", update_epochs)
        check(minibatch_size >= 1, "minibatch_size", ">= 1", minibatch_size)
        check(
            num_minibatches is None or num_minibatches >= 1,
            "num_minibatches",
            ">= 1 or null",
            num_minibatches,
        )
        modes = [m.value for m in DataMode]
        check(str(data_mode) in modes, "data_mode", f"one of {modes}", data_mode)
        check(num_envs is None or num_envs >= 1, "num_envs", ">= 1 or null", num_envs)
        check(num_agents is None or num_agents >= 1, "num_agents", ">= 1 or null", num_agents)
        check(n_steps >= 1, "n_steps", ">= 1", n_steps)
        check(total_steps >= 1, "total_steps", ">= 1", total_steps)
        check(epochs >= 1, "epochs", ">= 1", epochs)
        check(0 < mix_ratio < 1, "mix_ratio", "in (0, 1) (the replay share of each minibatch)", mix_ratio)
        schedules = [s.value for s in LRSchedule]
        check(str(lr_schedule) in schedules, "lr_schedule", f"one of {schedules}", lr_schedule)
        check(target_kl is None or target_kl > 0, "target_kl", "> 0 or null", target_kl)
        check(math.isfinite(bc_coef) and bc_coef >= 0, "bc_coef", ">= 0", bc_coef)
        stages = [s.value for s in SocialStage]
        check(
            social_reward_stage is None or str(social_reward_stage) in stages,
            "social_reward_stage",
            f"one of {stages} or null",
            social_reward_stage,
        )
        for entry in social_reward_schedule or []:
            check(
                str(_get(entry, "stage", "")) in stages and int(_get(entry, "cycle", 0)) >= 0,
                "social_reward_schedule",
                f"a list of {{cycle >= 0, stage in {stages}}}",
                entry,
            )
        check(checkpoint_every >= 1, "checkpoint_every", ">= 1", checkpoint_every)
        check(log_frequency is None or log_frequency >= 1, "log_frequency", ">= 1 or null", log_frequency)

        self.lr = float(lr)
        self.clip_param = float(clip_param)
        self.value_loss_coef = float(value_loss_coef)
        self.entropy_coef = float(entropy_coef)
        self.gamma = float(gamma)
        self.gae_lambda = float(gae_lambda)
        self.max_grad_norm = float(max_grad_norm)
        self.value_clip = float(value_clip)
        self.advantage_normalization = bool(advantage_normalization)
        self.update_epochs = int(update_epochs)
        self.minibatch_size = int(minibatch_size)
        self.num_minibatches = None if num_minibatches is None else int(num_minibatches)
        self.data_mode = str(data_mode)
        self.num_envs = num_envs
        self.num_agents = num_agents
        self.n_steps = int(n_steps)
        self.total_steps = int(total_steps)
        self.epochs = int(epochs)
        self.mix_ratio = float(mix_ratio)
        self.lr_schedule = str(lr_schedule)
        self.target_kl = None if target_kl is None else float(target_kl)
        self.bc_coef = float(bc_coef)
        self.social_reward_stage = None if social_reward_stage is None else str(social_reward_stage)
        self.social_reward_schedule = list(social_reward_schedule or [])
        self.checkpoint_every = int(checkpoint_every)
        self.log_frequency = log_frequency
        self.max_log_entries = max_log_entries
        self.eval_greedy = bool(eval_greedy)

    # ------------------------------------------------------------------ helpers
    def minibatch_rows(self, rows: int) -> int:
        """The original's rule: ``min(minibatch_size, rows // num_minibatches)`` if num_minibatches is set."""
        if self.num_minibatches is None:
            return max(1, min(self.minibatch_size, rows))
        return max(1, min(self.minibatch_size, rows // min(self.num_minibatches, max(rows, 1))))

    def hyper_params(self, rows: int) -> Any:
        from townlet.algorithms.update import PPOHyperParams

        return PPOHyperParams(
            clip_param=self.clip_param,
            value_loss_coef=self.value_loss_coef,
            entropy_coef=self.entropy_coef,
            max_grad_norm=self.max_grad_norm,
            value_clip=self.value_clip,
            update_epochs=self.update_epochs,
            minibatch_size=self.minibatch_rows(rows),
            target_kl=self.target_kl,
            bc_coef=self.bc_coef,
        )

    def planned_iterations(self, rows_per_iteration: int) -> int:
        if self.data_mode == DataMode.replay:
            return self.epochs
        return max(1, math.ceil(self.total_steps / max(rows_per_iteration, 1)))

    # ------------------------------------------------------------------ the run
    def run(self, context: TrainingContext) -> PPOTrainingResultDTO:
        self.ensure_torch()
        return PPORun(self, context).execute()


def event_counters(events: dict[str, float]) -> dict[str, float]:
    """The eight DTO counters from a dataset's/rollout's EVENT_COUNTERS totals (present for replay too)."""
    out = {name: float(events.get(name, 0.0)) for name in COUNTERS}
    succ = float(events.get("chat_success_events", 0.0))
    quality = float(events.get("chat_quality_sum", 0.0)) / succ if succ else 0.0
    out["chat_quality_mean"] = min(max(quality, 0.0), 1.0)
    return out


__all__ = [
    "EVENT_COUNTERS",
    "PPOConfigError",
    "PPOStrategy",
    "event_counters",
    "learning_rate_at",
    "social_stage_for",
]


@dataclass
class _State:
    """What survives a resume (stored in ``checkpoints/last.pt`` extra)."""

    iteration: int = 0
    steps: float = 0.0  # transitions trained on (rows x epochs run), cumulative
    env_steps: float = 0.0  # agent-steps collected in rollouts
    log_stream_offset: int = 0
    episodes: int = 0
    target_kl_stops: int = 0
    best: _Best = field(default_factory=_Best)
    steps_last: float = 0.0  # transitions trained on in the latest iteration (not persisted)

    def to_extra(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "steps": self.steps,
            "env_steps": self.env_steps,
            "log_stream_offset": self.log_stream_offset,
            "episodes": self.episodes,
            "target_kl_stops": self.target_kl_stops,
            "best": {
                "iteration": self.best.iteration,
                "score": self.best.score,
                "summary": self.best.summary,
            },
        }

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> _State:
        best = extra.get("best", {}) or {}
        return cls(
            iteration=int(extra.get("iteration", 0)),
            steps=float(extra.get("steps", 0.0)),
            env_steps=float(extra.get("env_steps", 0.0)),
            log_stream_offset=int(extra.get("log_stream_offset", 0)),
            episodes=int(extra.get("episodes", 0)),
            target_kl_stops=int(extra.get("target_kl_stops", 0)),
            best=_Best(
                int(best.get("iteration", 0)),
                float(best.get("score", -math.inf)),
                dict(best.get("summary", {})),
            ),
        )


class _ActingPolicy:
    """The torch policy plus ``value(obs)``, so the shared collect loop records V(final obs) at
    truncations and V(next obs) as the bootstrap (GAE needs both; 0 would bias every return)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.generator = inner.generator

    def act(self, obs: Any) -> Any:
        return self.inner.act(obs)

    def value(self, obs: Any) -> np.ndarray:
        _, values = self.inner.forward(obs)
        return values.float().cpu().numpy()


class PPORun:
    """One ``strategy=ppo`` run: set-up, the iteration loop, and the result DTO."""

    def __init__(self, strategy: PPOStrategy, context: TrainingContext) -> None:
        self.s = strategy
        self.ctx = context
        self.log = context.log
        self.state = _State()

    # ------------------------------------------------------------------ set-up
    def _world_config(self) -> Any:
        import copy

        cfg = copy.deepcopy(self.ctx.world)
        if self.s.num_envs is not None:
            cfg.num_envs = int(self.s.num_envs)
        if self.s.num_agents is not None:
            cfg.num_agents = int(self.s.num_agents)
        return cfg

    def _replay(self) -> ReplayData:
        service = getattr(self.ctx.services, "replay", None)
        if service is None:
            raise PPOConfigError(
                f"strategy.data_mode={self.s.data_mode} needs the replay dataset service "
                "(TrainingServices.replay is None); use strategy.data_mode=rollout"
            )
        return service.resolve(self.ctx.dataset, self.ctx.world, self.ctx.data_dir)

    def _configure_metrics(self) -> None:
        writer = self.ctx.metrics
        if self.s.log_frequency is not None:
            writer.log_frequency = int(self.s.log_frequency)
        if self.s.max_log_entries is not None:
            writer.max_log_entries = int(self.s.max_log_entries) if self.s.max_log_entries > 0 else None

    def _apply_social_stage(self, town: Any, world_cfg: Any, cycle: int) -> str | None:
        default = self.s.social_reward_stage
        if default is None:
            default = getattr(getattr(world_cfg, "social", None), "stage", None)
        stage = social_stage_for(cycle, default, self.s.social_reward_schedule)
        if stage is not None and town is not None:
            town.set_social_stage(stage)
        return stage

    # ------------------------------------------------------------------ run
    def execute(self) -> PPOTrainingResultDTO:
        """Set up, iterate until the step/epoch budget, evaluate, return the DTO."""
        started = time.perf_counter()
        self.setup()
        last_record: dict[str, Any] | None = None
        for it in range(self.state.iteration + 1, self.iterations + 1):
            last_record = self.iteration(it)
            self._checkpoint(it, self.policy, final=(it == self.iterations))
        if last_record is None:  # resumed a finished run
            last_record = dict(self.state.best.summary) if self.state.best.summary else None
        if last_record is None:
            raise PPOConfigError("PPO performed no iteration; raise strategy.total_steps or strategy.epochs")
        evaluation = evaluate_trained(
            self.ctx, self.net, self.spec, str(self.device), greedy=self.s.eval_greedy
        )
        return self._result(last_record, evaluation, time.perf_counter() - started, str(self.device))

    def setup(self) -> None:
        """Data sources, network, optimiser, warm start / resume, input scaling, iteration budget."""
        import torch

        from townlet.behaviour.torch_policy import TorchPolicy
        from townlet.nets.checkpoints import LAST, load_checkpoint, warm_start
        from townlet.nets.models import build_network
        from townlet.runs.device import resolve_device
        from townlet.runs.seeding import derive_seed

        s, ctx = self.s, self.ctx
        device = torch.device(resolve_device(ctx.device))
        self.device = device
        self._configure_metrics()
        mode = s.data_mode
        replay = self._replay() if mode in (DataMode.replay, DataMode.mixed) else None
        world_cfg = self._world_config()
        town = None
        rollout_service = None
        if mode in (DataMode.rollout, DataMode.mixed):
            from townlet.world import make_town

            rollout_service = getattr(ctx.services, "rollout", None)
            if rollout_service is None:
                raise PPOConfigError(
                    "strategy.data_mode=rollout needs the rollout service (TrainingServices.rollout)"
                )
            town = make_town(world_cfg, derive_seed(ctx.seed, "ppo-town"))
            spec = town.spec
        else:
            assert replay is not None
            spec = replay.spec
        if replay is not None and town is not None:
            diff = spec.describe_mismatch(replay.spec)
            if diff:
                raise PPOConfigError(
                    f"strategy.data_mode=mixed: the replay dataset does not match the world: {diff}"
                )
        self.spec = spec
        self.label = "rollout" if replay is None else dataset_label(ctx, replay, mode)
        self.teacher = self._make_teacher(spec)

        torch.manual_seed(ctx.seed)
        net = build_network(ctx.model, spec).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=s.lr, eps=1e-5)
        self.net, self.opt = net, opt
        ckpt_dir = ctx.run_dir.checkpoints
        normalised = False
        if ctx.init_from:
            src = warm_start(net, ctx.init_from, ctx.model, spec, str(device))
            normalised = True
            self.log.info("ppo: warm-started from %s", src.path)
        policy_seed = derive_seed(ctx.seed, "ppo-policy")
        policy = (
            _ActingPolicy(TorchPolicy(net, spec, device, greedy=False, seed=policy_seed))
            if town is not None
            else None
        )
        if ctx.resume and (ckpt_dir / LAST).is_file():
            ckpt = load_checkpoint(ckpt_dir, spec, str(device), which="last")
            net.load_state_dict(ckpt.model_state)
            if ckpt.optimizer_state is not None:
                opt.load_state_dict(dict(ckpt.optimizer_state))
            ckpt.restore_rng()
            self.state = _State.from_extra(ckpt.extra)
            normalised = True
            if town is not None:  # the town's state is not checkpointed: continue in fresh episodes
                town = make_town(world_cfg, derive_seed(ctx.seed, "ppo-town", self.state.iteration))
            if policy is not None and "policy_rng" in ckpt.extra:
                policy.generator.set_state(ckpt.extra["policy_rng"].cpu())
            self.log.info("ppo: resuming %s after iteration %d", ckpt.path, self.state.iteration)

        tracker = None
        self.obs = None  # the observation the next rollout continues from (None: reset the town)
        if town is not None:
            assert rollout_service is not None and policy is not None
            if not normalised:
                warmup = rollout_service.collect(town, policy, max(1, min(16, s.n_steps)))
                self._normalise_from(warmup)
            tracker = EpisodeTracker(np.zeros(town.n_agents, np.float64))
        elif not normalised and replay is not None:
            self._normalise_from(replay)

        rows_per_iter = (
            s.n_steps * town.n_agents if town is not None else (replay.num_transitions if replay else 0)
        )
        self.iterations = s.planned_iterations(rows_per_iter)
        self.town, self.world_cfg, self.policy = town, world_cfg, policy
        self.rollout_service, self.replay, self.tracker = rollout_service, replay, tracker

    def _make_teacher(self, spec: Any) -> Any:
        """The scripted teacher that labels rows for ``loss_bc`` (None if the world cannot feed it)."""
        from townlet.behaviour.rules import ScriptedPolicy

        try:
            return ScriptedPolicy(spec)
        except ValueError as exc:
            if self.s.bc_coef > 0:
                raise PPOConfigError(
                    f"strategy.bc_coef={self.s.bc_coef} needs the scripted teacher, which cannot read this "
                    f"world's observations ({exc}); set strategy.bc_coef=0"
                ) from None
            return None

    def _teacher_labels(self, data: ReplayData, *, recorded: bool) -> np.ndarray | None:
        """The teacher's action for every row, [T, N], for the kickstarting loss and ``loss_bc``.

        Rollout rows are labelled by the teacher itself: it is a deterministic, vectorised function
        of the observation, so one call per iteration costs next to nothing. Replay rows keep the
        labels recorded at capture (what BC trained on) when a scripted teacher recorded them; other
        behaviours (random) recorded their own actions there, so those rows are labelled afresh.
        """
        if recorded and data.meta.get("behaviour") == "scripted":
            return np.asarray(data.teacher_actions)
        if self.teacher is None:
            return None
        from townlet.world.spec import Observation

        flat = Observation(data.flat("maps"), data.flat("features"), data.flat("action_mask"))
        return np.asarray(self.teacher.teacher(flat), np.int64).reshape(data.actions.shape)

    def _normalise_from(self, data: ReplayData) -> None:
        """Input scaling for a network trained from scratch.

        Map channels are scaled by their observed maxima. Features are left as the world scales
        them (already within about [-1, 1]): standardising by the statistics of a short first
        rollout divides nearly-constant features (wallet, shift flags) by ~1e-3 and blew the
        critic up to 1e9 as soon as they moved. Warm starts keep the BC statistics instead.
        """
        import torch

        maps_max = torch.from_numpy(data.maps.max(axis=(0, 1, 3, 4)).astype(np.float32))
        self.net.set_input_normalisation(maps_max)

    # ------------------------------------------------------------------ one iteration
    def iteration(self, it: int) -> dict[str, Any]:
        """Collect (if rolling out), update, log one line; returns the iteration's record."""
        import torch

        from townlet.algorithms.batches import critic_values, prepare_batch
        from townlet.algorithms.stats import explained_variance, pearson_corr
        from townlet.algorithms.update import Source, ppo_update

        s = self.s
        town, world_cfg, replay, tracker = self.town, self.world_cfg, self.replay, self.tracker
        t_start = time.perf_counter()
        lr = learning_rate_at(s.lr, s.lr_schedule, it, self.iterations)
        for group in self.opt.param_groups:
            group["lr"] = lr
        cycle = it - 1
        stage = self._apply_social_stage(town, world_cfg, cycle)
        where = f"dataset={self.label} iteration={it}"
        env: dict[str, Any] = {}
        sources = []
        rewards_all = []
        values_all = []
        returns_all = []
        raw_adv: list[tuple[Any, Any, int]] = []
        t_collect = 0.0
        events: dict[str, float] = {}
        if town is not None:
            assert self.rollout_service is not None and tracker is not None
            t0 = time.perf_counter()
            data = self.rollout_service.collect(town, self.policy, s.n_steps, start_obs=self.obs)
            self.obs = data.next_obs
            t_collect = time.perf_counter() - t0
            env = self._env_metrics(data, tracker, world_cfg)
            events = dict(data.events)
            prepared = prepare_batch(
                data,
                self.device,
                gamma=s.gamma,
                lam=s.gae_lambda,
                normalise=s.advantage_normalization,
                where=f"dataset=rollout iteration={it}",
                teacher_actions=self._teacher_labels(data, recorded=False),
            )
            rows = len(prepared.batch)
            own_rows = s.minibatch_rows(rows)
            if replay is not None:  # mixed: the rollout keeps (1 - mix_ratio) of every minibatch
                own_rows = max(1, round(own_rows * (1.0 - s.mix_ratio)))
            sources.append(Source(prepared.batch, own_rows))
            rewards_all.append(prepared.rewards)
            values_all.append(prepared.batch.old_values)
            returns_all.append(prepared.batch.returns)
            raw_adv.append((prepared.raw_adv_mean, prepared.raw_adv_std, rows))
            self.state.env_steps += rows
        if replay is not None:
            values, boot = critic_values(self.net, replay, self.device)
            prepared_r = prepare_batch(
                replay,
                self.device,
                gamma=s.gamma,
                lam=s.gae_lambda,
                normalise=s.advantage_normalization,
                where=where,
                values=values,
                bootstrap=boot,
                use_final_values=False,
                teacher_actions=self._teacher_labels(replay, recorded=True),
            )
            if town is None:
                events = dict(replay.events)
                rows_r = s.minibatch_rows(len(prepared_r.batch))
            else:
                rows_r = max(1, s.minibatch_rows(len(sources[0].batch)) - sources[0].rows_per_minibatch)
            sources.append(Source(prepared_r.batch, rows_r))
            rewards_all.append(prepared_r.rewards)
            values_all.append(prepared_r.batch.old_values)
            returns_all.append(prepared_r.batch.returns)
            raw_adv.append((prepared_r.raw_adv_mean, prepared_r.raw_adv_std, len(prepared_r.batch)))
        hp = replace(s.hyper_params(len(sources[0].batch)), minibatch_size=sources[0].rows_per_minibatch)
        gen = torch.Generator().manual_seed(int(self.ctx.seed) * 1_000_003 + it)
        t0 = time.perf_counter()
        summary = ppo_update(self.net, self.opt, sources, hp, gen, where=where)
        advantages = torch.cat([src.batch.advantages for src in sources])
        rewards = torch.cat(rewards_all)
        ev, corr, adv_mean, adv_std = torch.stack(
            [
                explained_variance(torch.cat(values_all), torch.cat(returns_all)),
                pearson_corr(rewards, advantages),
                *_pooled_moments(raw_adv),
            ]
        ).tolist()
        t_update = time.perf_counter() - t0
        duration = time.perf_counter() - t_start
        st = self.state
        st.iteration = it
        st.steps_last = summary["transitions"] * summary["epochs_run"]
        st.steps += st.steps_last
        st.log_stream_offset += 1
        st.target_kl_stops += int(summary["early_stopped"])
        record = self._record(it, lr, summary, env, events, stage, ev, corr, adv_mean, adv_std)
        record.update(
            epoch_duration_sec=duration,
            collect_sec=t_collect,
            update_sec=t_update,
            sps=s.n_steps * town.n_agents / duration if town is not None else None,
            update_samples_per_sec=st.steps_last / t_update if t_update > 0 else None,
        )
        score = env.get("reward_per_step_mean") if env else None
        score = float(score) if score is not None else -float(record["loss_total"])
        if score > st.best.score:
            st.best = _Best(it, score, dict(record))
            record["is_best"] = True
        self.ctx.metrics.log(record)
        return record

    def _env_metrics(self, data: ReplayData, tracker: EpisodeTracker, world_cfg: Any) -> dict[str, Any]:
        rewards = data.rewards.astype(np.float64)
        done = tracker.update(rewards, data.truncated)
        self.state.episodes += len(done)
        t_len, n = rewards.shape
        ep_len = max(int(getattr(world_cfg, "episode_length", None) or t_len), 1)
        episodes_equiv = n * t_len / ep_len
        faints = float(data.terminated.sum())
        conflicts = float(data.events.get("queue_conflict_events", 0.0))
        return {
            "episodes_completed": len(done),
            "episode_return_mean": float(np.mean(done)) if done else None,
            "episode_return_std": float(np.std(done)) if done else None,
            "reward_per_step_mean": float(rewards.mean()),
            "return_estimate": float(rewards.mean()) * ep_len,
            "faint_rate": faints / episodes_equiv if episodes_equiv else 0.0,
            "faints": faints,
            "conflicts_per_100_agent_ticks": 100.0 * conflicts / max(t_len * n, 1),
        }

    def _record(
        self,
        it: int,
        lr: float,
        summary: dict[str, float],
        env: dict[str, Any],
        events: dict[str, float],
        stage: str | None,
        ev: float,
        corr: float,
        adv_mean: float,
        adv_std: float,
    ) -> dict[str, Any]:
        s, st, ctx = self.s, self.state, self.ctx
        record: dict[str, Any] = {
            "epoch": it,
            "iteration": it,
            "updates": summary["updates"],
            "transitions": summary["transitions"],
            "loss_policy": summary["mean_loss_policy"],
            "loss_value": summary["mean_loss_value"],
            "loss_entropy": summary["mean_entropy"],
            "loss_total": summary["mean_loss_total"],
            "clip_fraction": summary["mean_clip_fraction"],
            "adv_mean": adv_mean,
            "adv_std": adv_std,
            "grad_norm": summary["mean_grad_norm"],
            "kl_divergence": summary["mean_kl_k3"],
            "kl_k1": summary["mean_kl_k1"],
            "loss_bc": summary["mean_loss_bc"],
            "bc_coef": s.bc_coef,
            "telemetry_version": TELEMETRY_VERSION,
            "lr": lr,
            "steps": st.steps,
            "adv_zero_std_batches": summary["adv_zero_std"],
            "adv_min_std": summary["adv_min_std"],
            "clip_triggered_minibatches": summary["clip_triggered"],
            "clip_fraction_max": summary["clip_fraction_max"],
            "data_mode": s.data_mode,
            "cycle_id": it - 1,
            "batch_entropy_mean": summary["mean_entropy"],
            "batch_entropy_std": summary["entropy_std"],
            "grad_norm_max": summary["grad_norm_max"],
            "kl_divergence_max": summary["kl_max"],
            "reward_advantage_corr": corr,
            "rollout_ticks": s.n_steps if s.data_mode != DataMode.replay else 0,
            "log_stream_offset": st.log_stream_offset,
            **event_counters(events),
            "explained_variance": ev,
            "epochs_run": summary["epochs_run"],
            "target_kl_stopped": bool(summary["early_stopped"]),
            "env_steps": st.env_steps,
            "social_reward_stage": stage,
            **env,
        }
        anneal = ctx.anneal
        if anneal is not None:
            record.update(
                anneal_cycle=anneal.cycle,
                anneal_stage=anneal.stage,
                anneal_dataset=anneal.dataset_label,
                anneal_bc_accuracy=anneal.bc_accuracy,
                anneal_bc_threshold=anneal.bc_threshold,
                anneal_bc_passed=anneal.bc_passed,
                anneal_loss_baseline=anneal.loss_baseline,
                anneal_queue_baseline=anneal.queue_baseline,
                anneal_intensity_baseline=anneal.intensity_baseline,
            )
        return record

    def _checkpoint(self, it: int, policy: Any, *, final: bool) -> None:
        from townlet.nets.checkpoints import BEST, LAST, save_checkpoint

        st = self.state
        is_best = st.best.iteration == it
        if not (final or is_best or it % self.s.checkpoint_every == 0):
            return
        extra = {**st.to_extra(), "world_name": getattr(self.ctx.world, "name", None), "strategy": "ppo"}
        if policy is not None:
            extra["policy_rng"] = policy.generator.get_state()
        names = ([LAST] if (final or it % self.s.checkpoint_every == 0) else []) + ([BEST] if is_best else [])
        for name in names:
            save_checkpoint(
                self.ctx.run_dir.checkpoints / name,
                model=self.net,
                optimizer=self.opt,
                model_cfg=self.ctx.model,
                spec=self.spec,
                epoch=it,
                config_hash=self.ctx.metadata.get("config_hash"),
                extra=extra,
            )

    # ------------------------------------------------------------------ end of run
    def _result(
        self, record: dict[str, Any], evaluation: Any, duration: float, device: str
    ) -> PPOTrainingResultDTO:
        from townlet.dto import PPOTrainingResultDTO
        from townlet.nets.checkpoints import LAST

        st = self.state
        values = {k: v for k, v in record.items() if k in PPOTrainingResultDTO.model_fields}
        values.update(
            duration_sec=duration,
            seed=self.ctx.seed,
            device=device,
            checkpoint=str(self.ctx.run_dir.checkpoints / LAST),
            init_from=str(self.ctx.init_from) if self.ctx.init_from else None,
            evaluation=evaluation,
            iterations=st.iteration,
            env_steps=st.env_steps,
            episodes=st.episodes,
            target_kl_stops=st.target_kl_stops,
            samples_per_sec=record.get("sps") or record.get("update_samples_per_sec"),
        )
        values.update(
            best_iteration=st.best.iteration,
            best={k: float(v) for k, v in st.best.summary.items() if _is_number(v)},
        )
        return PPOTrainingResultDTO(**values)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))


def _pooled_moments(parts: list[tuple[Any, Any, int]]) -> list[Any]:
    """Mean and (biased) std of the pre-normalisation advantages pooled over the sources."""
    import torch

    n = sum(p[2] for p in parts)
    mean = sum(p[0] * p[2] for p in parts) / n
    second = sum((p[1].pow(2) + p[0].pow(2)) * p[2] for p in parts) / n
    return [mean, torch.sqrt(torch.clamp(second - mean.pow(2), min=0.0))]
