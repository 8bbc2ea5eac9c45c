"""``townlet.load_policy``: a trained policy (run dir, ``.pt`` or torch-free ``.onnx``) for code outside
this package, acting on PettingZoo observations or batches and knowing its world (``policy.world``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from townlet.behaviour.rules import BehaviourPolicy
from townlet.world.spec import Observation, ObservationSpec


def _single(obs: Mapping[str, Any], mask: Any) -> Observation:
    allowed = obs["action_mask"] if mask is None else mask
    return Observation(
        np.asarray(obs["map"])[None],
        np.asarray(obs["features"], dtype=np.float32)[None],
        np.asarray(allowed, dtype=bool)[None],
    )


class TrainedPolicy:
    """A loaded policy: ``act`` for PettingZoo observations or batches; ``behaviour`` for the rollout loop."""

    def __init__(
        self, behaviour: BehaviourPolicy, spec: ObservationSpec, world_config: dict[str, Any] | None
    ):
        self.behaviour = behaviour
        self.spec = spec
        self.world_config = world_config

    @property
    def world(self) -> Any:
        """The ``WorldConfig`` the policy was trained in (the ``default`` world when it is not recorded)."""
        from townlet.world import load_world_config, to_world_config

        return to_world_config(self.world_config) if self.world_config else load_world_config("default")

    def act(self, obs: Any, mask: Any = None) -> Any:
        """One agent's observation dict → an int; ``{agent: dict}`` → ``{agent: int}`` (``mask`` then
        ``{agent: mask}``); an ``Observation`` → int64 [N]. ``mask`` (True = allowed) replaces the own."""
        if isinstance(obs, Observation):
            batch = obs if mask is None else obs._replace(action_mask=np.asarray(mask, dtype=bool))
            return self.behaviour.act(batch).actions
        if isinstance(obs, Mapping) and "map" in obs:
            return int(self.behaviour.act(_single(obs, mask)).actions[0])
        if isinstance(obs, Mapping):
            agents = list(obs)
            if not agents:
                return {}
            masks = mask or {}
            rows = [_single(obs[a], masks.get(a)) for a in agents]
            batch = Observation(*(np.concatenate(parts) for parts in zip(*rows, strict=True)))
            actions = self.behaviour.act(batch).actions
            return {a: int(actions[i]) for i, a in enumerate(agents)}
        raise TypeError(
            "act() takes an Observation, one agent's observation dict or {agent: dict}, "
            f"got {type(obs).__name__}"
        )


def load_policy(
    source: str | Path, *, greedy: bool = True, seed: int = 0, device: str = "cpu", which: str | None = None
) -> TrainedPolicy:
    """A trained policy from a run dir, a ``.pt`` checkpoint or an ``.onnx`` file (``which``: None = the one
    the run's result reports, or "best"/"last"); an unusable ``source`` raises a one-line ValueError."""
    path = Path(source).expanduser()
    if path.suffix == ".onnx":
        from townlet.behaviour.onnx_policy import OnnxPolicy

        onnx_policy = OnnxPolicy(path, greedy=greedy, seed=seed, name="trained")
        return TrainedPolicy(onnx_policy, onnx_policy.spec, onnx_policy.world_config)
    from townlet.nets.checkpoints import load_checkpoint
    from townlet.runs.resolve import resolve_run

    files = resolve_run(path, which)
    ckpt = load_checkpoint(files.checkpoint, None, device)  # needs torch; says so in one line if absent
    from townlet.behaviour.torch_policy import TorchPolicy

    torch_policy = TorchPolicy(
        ckpt.build_network(device), ckpt.spec, device, greedy=greedy, seed=seed, name="trained"
    )
    return TrainedPolicy(torch_policy, ckpt.spec, files.world_config or ckpt.extra.get("world_config"))
