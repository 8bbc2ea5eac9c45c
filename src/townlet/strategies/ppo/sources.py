"""Where each PPO iteration's data comes from: a rollout, the replay dataset, or both (mixed).
Every source answers ``prepare(it, net) -> (streams, seen)`` (primary stream first), so
``PPORun.iteration`` never branches on the data mode.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from townlet.behaviour.rules import ScriptedPolicy
from townlet.config.schema.strategy_ppo import PPOConfigError
from townlet.replay import ReplayData, StreamingDataset
from townlet.replay.data import epoch_rng
from townlet.rollout.collect import EpisodeTracker
from townlet.runs.seeding import derive_seed
from townlet.strategies.ppo.records import Seen, batch_diagnostics, env_metrics
from townlet.world import make_town
from townlet.world.spec import Observation

if TYPE_CHECKING:
    from townlet.algorithms.gae import PreparedBatch
    from townlet.algorithms.update import Source
    from townlet.strategies.context import TrainingContext
    from townlet.strategies.ppo.state import Normalisers, RunState


class ActingPolicy:
    """The torch policy plus ``value(obs)``, so the shared collect loop records V(final obs) at
    truncations and V(next obs) as the bootstrap (GAE needs both; 0 would bias every return)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:  # act, name, generator and forward (teacher mixing's)
        if name == "inner":  # not set yet (a copy or unpickle): no endless lookup
            raise AttributeError(name)
        return getattr(self.inner, name)

    def value(self, obs: Any) -> np.ndarray:
        _, values = self.inner.forward(obs)
        return values.float().cpu().numpy()


def make_teacher(spec: Any, bc_coef: float) -> Any:
    """The scripted teacher labelling every row for ``loss_bc``, or None if it cannot read this world
    and ``bc_coef`` is 0 (``loss_bc`` is then not measured); with ``bc_coef > 0`` it is required."""
    try:
        return ScriptedPolicy(spec)
    except ValueError as exc:
        if bc_coef > 0:
            raise PPOConfigError(
                f"strategy.bc_coef={bc_coef} needs the scripted teacher, which cannot read this "
                f"world's observations ({exc}); set strategy.bc_coef=0"
            ) from None
        return None


@dataclass
class BatchMaker:
    """How every source turns data into a PPO batch: the run's GAE options, device and teacher."""

    s: Any
    device: Any
    teacher: Any

    def __call__(self, data: ReplayData, where: str, *, recorded: bool, **kw: Any) -> PreparedBatch:
        from townlet.algorithms.gae import prepare_batch

        s, labels = self.s, self.labels(data, recorded=recorded)
        return prepare_batch(
            data,
            self.device,
            gamma=s.gamma,
            lam=s.gae_lambda,
            normalise=s.advantage_normalization,
            faint_is_terminal=s.faint_is_terminal,
            where=where,
            teacher_actions=labels,
            **kw,
        )

    def labels(self, data: ReplayData, *, recorded: bool) -> np.ndarray | None:
        """The teacher's action per row, [T, N]. Rollout rows are labelled by the (deterministic,
        vectorised) teacher itself; replay rows keep the labels a scripted capture recorded (what BC
        trained on), while other behaviours recorded their own actions there, so those are relabelled."""
        if recorded and data.meta.get("behaviour") == "scripted":
            return np.asarray(data.teacher_actions)
        if self.teacher is None:
            return None
        flat = Observation(data.flat("maps"), data.flat("features"), data.flat("action_mask"))
        return np.asarray(self.teacher.teacher(flat), np.int64).reshape(data.actions.shape)


class RolloutSource:
    """The network being trained acts for ``n_steps`` ticks, continuing the episodes it was in."""

    def __init__(
        self, s: Any, service: Any, town: Any, policy: Any, normalisers: Normalisers, make: BatchMaker
    ):
        self.s, self.service, self.town, self.policy = s, service, town, policy
        self.normalisers, self.make = normalisers, make
        self.tracker = EpisodeTracker(town.n_agents)
        self.obs: Any = None  # the observation the next rollout continues from (None: reset the town)

    def first(self) -> ReplayData:
        """A short rollout for the input scaling of a network trained from scratch."""
        return self.service.collect(self.town, self.policy, max(1, min(16, self.s.n_steps)))

    def restore(self, state: RunState, ctx: TrainingContext, world_cfg: Any) -> None:
        """Put back the checkpoint's town state and running episode returns, so a resumed run steps
        the same episodes with the same random streams. A checkpoint without a town (saved by a
        replay-only run) continues in fresh episodes of a town seeded by the iteration."""
        saved = state.rollout
        if "town" not in saved:
            self.town = make_town(world_cfg, derive_seed(ctx.seed, "ppo-town", state.iteration))
            return
        self.town.restore({k: _as_numpy(v) for k, v in dict(saved["town"]).items()})
        self.tracker.returns[:] = _as_numpy(saved["episode_returns"])
        if saved.get("episode_lengths") is not None:
            self.tracker.lengths[:] = _as_numpy(saved["episode_lengths"])
        self.obs = self.town.observe()

    def collect(self, it: int, net: Any, world_cfg: Any) -> tuple[PreparedBatch, Seen]:
        """One rollout as a batch; GAE bootstraps from the values the acting policy recorded."""
        t0 = time.perf_counter()
        data = self.service.collect(self.town, self.policy, self.s.n_steps, start_obs=self.obs)
        self.obs = data.next_obs
        collect_sec = time.perf_counter() - t0
        env = env_metrics(data, self.tracker, world_cfg)
        # running statistics first (PPO's clip bounds the shift they cause in this update)
        scale = self.normalisers.observe(net, data)
        batch = self.make(data, f"dataset=rollout iteration={it}", recorded=False, reward_scale=scale)
        return batch, Seen(env=env, events=dict(data.events), reward_scale=scale, collect_sec=collect_sec,
                           rows_collected=len(batch.batch))  # fmt: skip

    def prepare(self, it: int, net: Any, world_cfg: Any) -> tuple[list[Source], Seen]:
        from townlet.algorithms.update import Source

        batch, seen = self.collect(it, net, world_cfg)
        streams = [Source(batch.batch, self.s.minibatch_rows(len(batch.batch)))]
        return streams, replace(seen, batch=batch_diagnostics([batch]))


class ReplaySource:
    """The replay dataset, re-valued by the current critic every iteration; streamed, one shard an
    iteration in a seeded order per pass (memory bounded by one shard; its last tick self-bootstraps)."""

    def __init__(self, data: ReplayData | StreamingDataset, seed: int, label: str, make: BatchMaker):
        self.data, self.seed, self.label, self.make = data, int(seed), label, make

    @property
    def passes_per_epoch(self) -> int:
        """Iterations that make one pass over the data (the shard count when streamed)."""
        return self.data.num_shards if isinstance(self.data, StreamingDataset) else 1

    def first(self) -> ReplayData:
        """The first iteration's data, for the input scaling of a network trained from scratch."""
        return self.for_iteration(1)

    def for_iteration(self, iteration: int) -> ReplayData:
        if not isinstance(self.data, StreamingDataset):
            return self.data
        n = self.data.num_shards
        visit, slot = divmod(iteration - 1, n)
        return self.data.shard(int(epoch_rng(self.seed, visit).permutation(n)[slot]))

    def revalue(self, it: int, net: Any) -> tuple[ReplayData, PreparedBatch]:
        from townlet.algorithms.gae import critic_values

        data = self.for_iteration(it)
        values, boot = critic_values(net, data, self.make.device)
        where = f"dataset={self.label} iteration={it}"
        kw = {"values": values, "bootstrap": boot, "use_final_values": False}
        return data, self.make(data, where, recorded=True, **kw)

    def prepare(self, it: int, net: Any, world_cfg: Any) -> tuple[list[Source], Seen]:
        from townlet.algorithms.update import Source

        data, batch = self.revalue(it, net)
        streams = [Source(batch.batch, self.make.s.minibatch_rows(len(batch.batch)))]
        return streams, Seen(batch=batch_diagnostics([batch]), events=dict(data.events))


class MixedSource:
    """A rollout and the replay dataset blended inside every minibatch: the replay rows take
    ``mix_ratio`` of each one, the rollout (the primary) the rest."""

    def __init__(self, rollout: RolloutSource, replay: ReplaySource, mix_ratio: float):
        self.rollout, self.replay, self.mix_ratio = rollout, replay, mix_ratio
        self.first = rollout.first

    def prepare(self, it: int, net: Any, world_cfg: Any) -> tuple[list[Source], Seen]:
        from townlet.algorithms.update import Source

        own, seen = self.rollout.collect(it, net, world_cfg)
        _, other = self.replay.revalue(it, net)
        rows = self.rollout.s.minibatch_rows(len(own.batch))
        own_rows = max(1, round(rows * (1.0 - self.mix_ratio)))
        streams = [Source(own.batch, own_rows), Source(other.batch, max(1, rows - own_rows))]
        return streams, replace(seen, batch=batch_diagnostics([own, other]))


def pick_source(
    rollout: RolloutSource | None, replay: ReplaySource | None, mix_ratio: float
) -> RolloutSource | ReplaySource | MixedSource:
    """The run's one source: both blended in mixed mode, else whichever the mode opened."""
    if rollout is not None and replay is not None:
        return MixedSource(rollout, replay, mix_ratio)
    source = rollout or replay
    assert source is not None, "open_data opens a town, a dataset or both"
    return source


def _as_numpy(value: Any) -> Any:
    """Checkpoints store arrays as tensors (``weights_only`` loading); the town wants NumPy."""
    return value.numpy() if hasattr(value, "numpy") else value
