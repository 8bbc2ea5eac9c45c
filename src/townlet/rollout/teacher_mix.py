"""Teacher mixing (opt-in): with weight m an agent executes the teacher's action, else samples π; the
exact log-probability of μ = (1 − m)·π + m·1[a = teacher] is recorded, so PPO's ratio is against the
policy that chose. It wraps the rollout service's ``collect``, so PPO does not know who mixes."""

from __future__ import annotations

from typing import Any

import numpy as np

from townlet.behaviour.rules import PolicyOutput, make_behaviour


class TeacherMixError(ValueError):
    """Invalid mixing weight, or a policy that cannot expose its action distribution."""


def mixture_log_prob(
    net_log_prob_of_executed: np.ndarray, executed: np.ndarray, teacher: np.ndarray, mix: float
) -> np.ndarray:
    """log μ(a) = log((1 − m)·π(a) + m·1[a = teacher]) — the pure formula, for tests and docs."""
    p = (1.0 - mix) * np.exp(net_log_prob_of_executed) + mix * (executed == teacher)
    return np.log(p).astype(np.float32)


class TeacherMixPolicy:
    """Wraps the acting network policy (anything with ``forward(obs) -> (logits, values)``)."""

    def __init__(self, policy: Any, teacher: Any, mix: float, seed: int = 0) -> None:
        if not 0.0 <= float(mix) <= 1.0:
            raise TeacherMixError(f"teacher mixing weight (bc_weight) must be in [0, 1], got {mix}")
        self.policy = policy
        self.teacher = teacher
        self.mix = float(mix)
        self.name = f"{getattr(policy, 'name', 'policy')}+teacher{self.mix:g}"
        self._forward: Any = getattr(policy, "forward", None)
        if not callable(self._forward):
            raise TeacherMixError(
                f"{type(policy).__name__} exposes no forward(obs) -> (logits, values); teacher mixing needs "
                "the network's full action distribution to record the mixture's exact log-probability"
            )
        self._rng = np.random.default_rng(int(seed))
        self.generator = getattr(policy, "generator", None)

    def act(self, obs: Any) -> PolicyOutput:
        import torch

        with torch.inference_mode():
            logits, values = self._forward(obs)
            logp_all = torch.log_softmax(logits.float(), dim=-1)
            own = self.generator is not None and self.generator.device == logp_all.device
            net = torch.multinomial(logp_all.exp(), 1, generator=self.generator if own else None).squeeze(-1)
            logp = logp_all.cpu().numpy()
        net_actions = net.cpu().numpy().astype(np.int64)
        teacher = np.asarray(self.teacher.act(obs).actions, dtype=np.int64)
        use_teacher = self._rng.random(net_actions.shape[0]) < self.mix
        executed = np.where(use_teacher, teacher, net_actions)
        rows = np.arange(executed.shape[0])
        log_probs = mixture_log_prob(logp[rows, executed], executed, teacher, self.mix)
        return PolicyOutput(
            actions=executed,
            log_probs=log_probs,
            values=values.float().cpu().numpy().astype(np.float32, copy=False),
            teacher_actions=teacher,
        )

    def value(self, obs: Any) -> np.ndarray:
        """Bootstrap values come from the network's critic, as without mixing."""
        _, values = self._forward(obs)
        return values.float().cpu().numpy()


class TeacherMixRollout:
    """A rollout service whose ``collect`` mixes in the teacher; all else goes to the wrapped one."""

    def __init__(self, inner: Any, mix: float, seed: int = 0) -> None:
        self.inner = inner
        self.mix = float(mix)
        self.seed = int(seed)
        self._teacher: Any = None
        self._calls = 0

    def collect(self, town: Any, policy: Any, ticks: int, **kwargs: Any) -> Any:
        if self.mix <= 0.0:
            return self.inner.collect(town, policy, ticks, **kwargs)
        if self._teacher is None:
            self._teacher = make_behaviour("scripted", town.spec, seed=self.seed)
        self._calls += 1
        mixed = TeacherMixPolicy(policy, self._teacher, self.mix, seed=self.seed * 7919 + self._calls)
        return self.inner.collect(town, mixed, ticks, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
