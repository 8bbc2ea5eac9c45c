"""A trained network acting in the town, one batched forward per tick; sampling uses its own seeded
generator, so evaluation is reproducible and never disturbs the global torch RNG training relies on."""

from __future__ import annotations

import numpy as np
import torch

from townlet.behaviour.rules import PolicyOutput, check_observation
from townlet.world.spec import Observation, ObservationSpec


class SpecMismatchError(ValueError):
    """The network was built for another observation layout than the world it is asked to act in."""


class TorchPolicy:
    """Wraps a policy network: ``act(obs)`` → actions, exact log-probs and value estimates."""

    name = "torch"

    def __init__(
        self,
        network: torch.nn.Module,
        spec: ObservationSpec,
        device: str | torch.device = "cpu",
        greedy: bool = False,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        self.network = network.to(device).eval()
        self.spec = spec
        self.device = torch.device(device)
        self.greedy = greedy
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))
        if name is not None:
            self.name = name

    @torch.inference_mode()
    def forward(self, obs: Observation) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked logits and values for the whole batch (one forward)."""
        check_observation(obs, self.spec, SpecMismatchError)
        dev = self.device
        maps = torch.from_numpy(np.ascontiguousarray(obs.maps)).to(dev)
        feats = torch.from_numpy(np.ascontiguousarray(obs.features, dtype=np.float32)).to(dev)
        mask = torch.from_numpy(np.ascontiguousarray(obs.action_mask, dtype=bool)).to(dev)
        return self.network(maps, feats, mask)

    @torch.inference_mode()
    def act(self, obs: Observation) -> PolicyOutput:
        logits, values = self.forward(obs)
        log_probs_all = torch.log_softmax(logits.float(), dim=-1)
        if self.greedy:
            actions = log_probs_all.argmax(dim=-1)
        else:
            actions = torch.multinomial(log_probs_all.exp(), 1, generator=self.generator).squeeze(-1)
        log_probs = log_probs_all.gather(1, actions.unsqueeze(1)).squeeze(1)
        return PolicyOutput(
            actions=actions.cpu().numpy().astype(np.int64, copy=False),
            log_probs=log_probs.cpu().numpy().astype(np.float32, copy=False),
            values=values.float().cpu().numpy().astype(np.float32, copy=False),
        )
