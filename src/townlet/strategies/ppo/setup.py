"""Set-up steps of a PPO run: its world, data sources, acting policy, warm start, resume, input scaling.

Each step is one function so that ``PPORun.setup`` reads as the list of them, in the order that
fixes which random numbers each consumes.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

from townlet.config.schema.strategy_ppo import DataMode, PPOConfigError
from townlet.strategies.ppo.replay_source import ReplaySource
from townlet.strategies.ppo.state import RunState

if TYPE_CHECKING:
    import logging

    from townlet.replay import ReplayData
    from townlet.rollout.collect import EpisodeTracker
    from townlet.strategies.context import TrainingContext
    from townlet.strategies.ppo.settings import PPOSettings
    from townlet.world.vectown import VecTown

__all__ = [
    "ActingPolicy",
    "configure_metrics",
    "normalise_inputs",
    "open_town",
    "resolve_replay",
    "restore_rollout",
    "resume",
    "shared_spec",
    "warm_start_from",
    "world_config",
]


class ActingPolicy:
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


def configure_metrics(writer: Any, strategy: PPOSettings) -> None:
    """Apply the strategy's logging overrides; a ``max_log_entries`` <= 0 means unlimited."""
    if strategy.log_frequency is not None:
        writer.log_frequency = int(strategy.log_frequency)
    if strategy.max_log_entries is not None:
        writer.max_log_entries = int(strategy.max_log_entries) if strategy.max_log_entries > 0 else None


def resolve_replay(strategy: PPOSettings, ctx: TrainingContext) -> ReplaySource | None:
    """The replay dataset in replay and mixed mode (None in rollout mode)."""
    if strategy.data_mode not in (DataMode.replay, DataMode.mixed):
        return None
    service = getattr(ctx.services, "replay", None)
    if service is None:
        raise PPOConfigError(
            f"strategy.data_mode={strategy.data_mode} needs the replay dataset service "
            "(TrainingServices.replay is None); use strategy.data_mode=rollout"
        )
    return ReplaySource(service.resolve(ctx.dataset, ctx.world, ctx.data_dir), ctx.seed)


def world_config(world: Any, strategy: PPOSettings) -> Any:
    """A copy of the world config with the strategy's rollout sizes, leaving the context's intact."""
    cfg = copy.deepcopy(world)
    if strategy.num_envs is not None:
        cfg.num_envs = int(strategy.num_envs)
    if strategy.num_agents is not None:
        cfg.num_agents = int(strategy.num_agents)
    return cfg


def open_town(strategy: PPOSettings, ctx: TrainingContext, world_cfg: Any) -> tuple[Any, Any]:
    """The rollout service and a freshly seeded town in rollout and mixed mode; (None, None) in replay."""
    if strategy.data_mode not in (DataMode.rollout, DataMode.mixed):
        return None, None
    from townlet.runs.seeding import derive_seed
    from townlet.world import make_town

    service = getattr(ctx.services, "rollout", None)
    if service is None:
        raise PPOConfigError(
            "strategy.data_mode=rollout needs the rollout service (TrainingServices.rollout)"
        )
    return service, make_town(world_cfg, derive_seed(ctx.seed, "ppo-town"))


def shared_spec(town: Any, replay: ReplaySource | None) -> Any:
    """The observation/action spec the network is built for; in mixed mode both sources must agree."""
    if town is None:
        assert replay is not None
        return replay.spec
    if replay is not None:
        diff = town.spec.describe_mismatch(replay.spec)
        if diff:
            raise PPOConfigError(
                f"strategy.data_mode=mixed: the replay dataset does not match the world: {diff}"
            )
    return town.spec


def warm_start_from(ctx: TrainingContext, net: Any, spec: Any, device: Any, log: logging.Logger) -> bool:
    """Load ``init_from`` (a BC or PPO checkpoint) into ``net``; True if it did.

    A warm-started network keeps the input statistics it was trained with.
    """
    if not ctx.init_from:
        return False
    from townlet.nets.checkpoints import warm_start

    src = warm_start(net, ctx.init_from, ctx.model, spec, str(device))
    log.info("ppo: warm-started from %s", src.path)
    return True


def resume(
    ctx: TrainingContext, net: Any, opt: Any, spec: Any, device: Any, policy: Any, log: logging.Logger
) -> RunState | None:
    """Restore network, optimiser, global RNGs and the policy's generator from ``last.pt``.

    Returns the run state it stored, or None when there is nothing to resume.
    """
    from townlet.nets.checkpoints import LAST, load_checkpoint

    ckpt_dir = ctx.run_dir.checkpoints
    if not (ctx.resume and (ckpt_dir / LAST).is_file()):
        return None
    ckpt = load_checkpoint(ckpt_dir, spec, str(device), which="last")
    net.load_state_dict(ckpt.model_state)
    if ckpt.optimizer_state is not None:
        opt.load_state_dict(dict(ckpt.optimizer_state))
    ckpt.restore_rng()
    state = RunState.from_extra(ckpt.extra)
    if policy is not None and "policy_rng" in ckpt.extra:
        policy.generator.set_state(ckpt.extra["policy_rng"].cpu())
    log.info("ppo: resuming %s after iteration %d", ckpt.path, state.iteration)
    return state


def restore_rollout(
    town: VecTown, tracker: EpisodeTracker, state: RunState, ctx: TrainingContext, world_cfg: Any
) -> tuple[VecTown, Any]:
    """The town and observation a resumed rollout continues from.

    The checkpoint's town state and running episode returns are put back, so the resumed run steps
    the same episodes with the same random streams as an uninterrupted one. A checkpoint that holds
    no town (e.g. saved by a replay-only stage before a mixed one) continues in fresh episodes of a
    town seeded by the iteration, never replaying the run's first episodes.
    """
    from townlet.runs.seeding import derive_seed
    from townlet.world import make_town

    saved = state.rollout
    if "town" not in saved:
        return make_town(world_cfg, derive_seed(ctx.seed, "ppo-town", state.iteration)), None
    town.restore({k: _as_numpy(v) for k, v in dict(saved["town"]).items()})
    tracker.returns[:] = _as_numpy(saved["episode_returns"])
    if saved.get("episode_lengths") is not None:
        tracker.lengths[:] = _as_numpy(saved["episode_lengths"])
    return town, town.observe()


def _as_numpy(value: Any) -> Any:
    """Checkpoints store arrays as tensors (``weights_only`` loading); the town wants NumPy."""
    return value.numpy() if hasattr(value, "numpy") else value


def normalise_inputs(net: Any, data: ReplayData) -> None:
    """Input scaling for a network trained from scratch.

    Map channels are scaled by their observed maxima. Features are left as the world scales
    them (already within about [-1, 1]): standardising by the statistics of a short first
    rollout divides nearly-constant features (wallet, shift flags) by ~1e-3 and blew the
    critic up to 1e9 as soon as they moved. Warm starts keep the BC statistics instead.
    """
    import torch

    maps_max = torch.from_numpy(data.maps.max(axis=(0, 1, 3, 4)).astype(np.float32))
    net.set_input_normalisation(maps_max)
