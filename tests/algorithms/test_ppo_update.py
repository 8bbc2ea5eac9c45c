"""The PPO update loop on synthetic tensors: epochs, minibatch plan, blending, guards, determinism."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from torch import Tensor, nn  # noqa: E402

from townlet.algorithms.gae import NonFiniteTrainingError, PPOBatch  # noqa: E402
from townlet.algorithms.update import PPOHyperParams, Source, ppo_update  # noqa: E402
from townlet.dto.metrics import PPO_SUMMARY_KEYS  # noqa: E402
from townlet.strategies.ppo import PPOStrategy  # noqa: E402

A = 4


class TinyNet(nn.Module):
    """Same forward contract as the real networks; remembers the sources of the rows it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(3, 16)
        self.pi = nn.Linear(16, A)
        self.v = nn.Linear(16, 1)
        self.seen: list[Tensor] = []

    def forward(self, maps: Tensor, features: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.seen.append(maps[:, 0, 0, 0].clone())  # the synthetic maps carry a source tag
        h = torch.tanh(self.body(features))
        logits = self.pi(h)
        if mask is not None:
            logits = logits.masked_fill(~mask, -1e9)
        return logits, self.v(h).squeeze(-1)


def hp_of(**changes: Any) -> PPOHyperParams:
    """The update's parameters as ``strategy=ppo`` builds them, with ``changes``."""
    strategy = PPOStrategy()
    return replace(strategy.hyper_params(minibatch_size=1024, entropy_coef=strategy.entropy_coef), **changes)


def make_batch(m: int, tag: int, seed: int = 0) -> PPOBatch:
    g = torch.Generator().manual_seed(seed)
    return PPOBatch(
        maps=torch.full((m, 1, 1, 1), tag, dtype=torch.uint8),
        features=torch.randn(m, 3, generator=g),
        action_mask=torch.ones(m, A, dtype=torch.bool),
        actions=torch.randint(0, A, (m,), generator=g),
        old_log_probs=torch.full((m,), -math.log(A)),
        old_values=torch.zeros(m),
        advantages=torch.randn(m, generator=g),
        returns=torch.randn(m, generator=g),
    )


def test_runs_every_epoch_and_visits_each_row_once_per_epoch() -> None:
    torch.manual_seed(0)
    net = TinyNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    out = ppo_update(
        net, opt, make_batch(100, 1), hp_of(update_epochs=3, minibatch_size=32), torch.Generator()
    )
    assert out["epochs_run"] == 3.0
    assert out["minibatches_per_epoch"] == 4.0  # 32 + 32 + 32 + 4
    assert out["updates"] == 12.0
    assert out["transitions"] == 100.0
    assert sum(len(s) for s in net.seen) == 300
    for key in ("loss_total", "grad_norm_max", "kl_divergence", "batch_entropy_std", "clip_fraction_max"):
        assert math.isfinite(out[key])
    assert out["loss_entropy"] == pytest.approx(math.log(A), rel=0.05)  # near-uniform initial policy
    assert out["batch_entropy_mean"] == out["loss_entropy"]  # one value, two keys of the file format


def test_the_summary_carries_every_metrics_line_key_under_its_own_name() -> None:
    net = TinyNet()
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    out = ppo_update(net, opt, make_batch(8, 1), hp_of(update_epochs=1), torch.Generator())
    assert set(PPO_SUMMARY_KEYS) <= out.keys()


def test_blended_sources_share_every_minibatch() -> None:
    net = TinyNet()
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    rollout, replay = make_batch(64, 1), make_batch(10, 2, seed=1)
    hp = hp_of(update_epochs=1, minibatch_size=12)
    ppo_update(net, opt, [Source(rollout, 12), Source(replay, 4)], hp, torch.Generator())
    assert len(net.seen) == 6  # ceil(64 / 12) minibatches
    for tags in net.seen[:-1]:
        assert int((tags == 1).sum()) == 12 and int((tags == 2).sum()) == 4
    assert int((net.seen[-1] == 1).sum()) == 4  # the primary source's remainder


def test_target_kl_stops_after_the_first_epoch() -> None:
    torch.manual_seed(0)
    net = TinyNet()
    opt = torch.optim.Adam(net.parameters(), lr=0.5)
    hp = hp_of(update_epochs=8, minibatch_size=16, target_kl=1e-6, clip_param=0.2)
    out = ppo_update(net, opt, make_batch(64, 1), hp, torch.Generator())
    assert out["epochs_run"] == 1.0 and out["early_stopped"] == 1.0
    assert out["updates"] == 4.0


def test_non_finite_loss_names_the_minibatch() -> None:
    batch = make_batch(64, 1)
    batch.returns[40] = float("nan")  # third minibatch of 16 in an unshuffled order is unknown; any is fine
    net = TinyNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    with pytest.raises(NonFiniteTrainingError, match=r"dataset=x iteration=3 epoch=1 minibatch=\d"):
        ppo_update(
            net,
            opt,
            batch,
            hp_of(minibatch_size=16),
            torch.Generator(),
            where="dataset=x iteration=3",
        )


def test_same_generator_seed_gives_identical_weights() -> None:
    def train() -> list[Tensor]:
        torch.manual_seed(3)
        net = TinyNet()
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        ppo_update(net, opt, make_batch(50, 1), hp_of(minibatch_size=8), torch.Generator().manual_seed(7))
        return [p.detach().clone() for p in net.parameters()]

    for a, b in zip(train(), train(), strict=True):
        assert torch.equal(a, b)


def test_empty_data_is_a_clear_error() -> None:
    net = TinyNet()
    opt = torch.optim.Adam(net.parameters())
    with pytest.raises(ValueError, match="no transitions"):
        ppo_update(net, opt, make_batch(0, 1), hp_of(), torch.Generator())


def test_bc_coef_pulls_the_policy_to_the_teacher_and_loss_bc_is_always_measured() -> None:
    def run(bc_coef: float, labels: bool = True) -> tuple[dict[str, float], dict[str, float]]:
        torch.manual_seed(0)
        net = TinyNet()
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        batch = make_batch(64, 1)
        batch.advantages = torch.zeros(64)  # no policy-gradient signal: only the teacher term moves pi
        batch.teacher_actions = torch.full((64,), 2) if labels else None
        hp = hp_of(update_epochs=1, minibatch_size=64, entropy_coef=0.0, bc_coef=bc_coef)
        first = ppo_update(net, opt, batch, hp, torch.Generator().manual_seed(0))
        for _ in range(10):
            last = ppo_update(net, opt, batch, hp, torch.Generator().manual_seed(0))
        return first, last

    first, last = run(1.0)
    assert last["loss_bc"] < 0.5 * first["loss_bc"]
    first0, last0 = run(0.0)
    assert first0["loss_bc"] == pytest.approx(first["loss_bc"])  # measured, not optimised
    assert last0["loss_bc"] == pytest.approx(first0["loss_bc"], rel=0.05)
    assert math.isnan(run(0.0, labels=False)[1]["loss_bc"])  # no labels: "not measured"
    with pytest.raises(ValueError, match="teacher"):
        run(1.0, labels=False)
