"""One interface for everything that acts in the town: scripted, random and the trained network.

Capture, evaluation and PPO rollouts share one loop because every policy answers ``act(obs)`` with
the executed actions, the exact log-probability of each under the policy that chose it, and a value.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from townlet.world.spec import Observation, ObservationSpec


class PolicyOutput(NamedTuple):
    actions: np.ndarray  # int64 [N], the executed actions
    log_probs: np.ndarray  # float32 [N], log pi(action | obs) under the behaviour policy
    values: np.ndarray  # float32 [N], state-value estimates (0 for policies without a critic)
    teacher_actions: np.ndarray | None = None  # int64 [N], scripted teacher's choice when it differs


@runtime_checkable
class BehaviourPolicy(Protocol):
    name: str

    def act(self, obs: Observation) -> PolicyOutput: ...
