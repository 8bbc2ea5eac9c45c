"""PPO loss terms, KL estimators and batch statistics against manual formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from townlet.algorithms.gae import explained_variance, normalise_advantages, pearson_corr  # noqa: E402
from townlet.algorithms.update import (  # noqa: E402
    MEAN_FIELDS,
    MINIBATCH_FIELDS,
    SPREAD_FIELDS,
    MinibatchLog,
    clipped_surrogate,
    clipped_value_loss,
    kl_k1,
    kl_k3,
    log_prob_of,
    masked_entropy,
    teacher_cross_entropy,
)


def test_clipped_surrogate_hand_values() -> None:
    new = torch.log(torch.tensor([0.5, 0.2, 0.33]))
    old = torch.log(torch.tensor([0.25, 0.4, 0.3]))  # ratios 2.0, 0.5, 1.1
    adv = torch.tensor([1.0, -1.0, 2.0])
    loss, ratio, clip_frac = clipped_surrogate(new, old, adv, 0.2)
    np.testing.assert_allclose(ratio.numpy(), [2.0, 0.5, 1.1], rtol=1e-5)
    # min(r A, clip(r) A): min(2, 1.2) = 1.2; min(-0.5, -0.8) = -0.8; min(2.2, 2.2) = 2.2
    assert loss.item() == pytest.approx(-(1.2 - 0.8 + 2.2) / 3, rel=1e-5)
    assert clip_frac.item() == pytest.approx(2 / 3)


def test_clipped_surrogate_gradient_vanishes_outside_trust_region() -> None:
    new = torch.log(torch.tensor([0.5])).requires_grad_()
    loss, _, _ = clipped_surrogate(new, torch.log(torch.tensor([0.25])), torch.tensor([1.0]), 0.2)
    loss.backward()
    assert new.grad is not None and new.grad.abs().item() == 0.0


def test_clipped_value_loss_hand_values() -> None:
    v = torch.tensor([1.0, 0.0])
    old = torch.tensor([0.5, 0.5])
    ret = torch.tensor([2.0, 0.0])
    # unclipped (v-R)^2 = [1, 0]; clipped v = [0.7, 0.3] -> [1.69, 0.09]; 0.5 * mean(max) = 0.5 * 0.89
    assert clipped_value_loss(v, old, ret, 0.2).item() == pytest.approx(0.445, rel=1e-6)
    assert clipped_value_loss(v, old, ret, 0.0).item() == pytest.approx(0.25, rel=1e-6)
    with pytest.raises(ValueError, match="shapes"):
        clipped_value_loss(v, old, torch.zeros(3), 0.2)


def test_entropy_uniform_and_masked() -> None:
    logits = torch.zeros(2, 3)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    ent = masked_entropy(logits, mask)
    np.testing.assert_allclose(ent.numpy(), [math.log(3), math.log(2)], rtol=1e-6)
    # logits that the network already masked with the most negative float: finite, no NaN
    pre_masked = torch.tensor([[0.0, 0.0, torch.finfo(torch.float32).min]])
    assert masked_entropy(pre_masked).item() == pytest.approx(math.log(2), rel=1e-6)
    p = torch.tensor([0.7, 0.2, 0.1])
    assert masked_entropy(p.log().unsqueeze(0)).item() == pytest.approx(float(-(p * p.log()).sum()), rel=1e-6)


def test_log_prob_of_matches_softmax() -> None:
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    lp = log_prob_of(logits, torch.tensor([2, 0]))
    expected = [3.0 - math.log(math.e + math.e**2 + math.e**3), -math.log(3)]
    np.testing.assert_allclose(lp.numpy(), expected, rtol=1e-6)


def test_kl_estimators() -> None:
    old = torch.log(torch.tensor([0.5, 0.25]))
    new = torch.log(torch.tensor([0.25, 0.5]))
    assert kl_k1(old, new).item() == pytest.approx((math.log(2) + math.log(0.5)) / 2, abs=1e-7)
    # k3 = (r - 1) - log r with r = new/old = [0.5, 2]: [-0.5 + ln2, 1 - ln2]
    assert kl_k3(old, new).item() == pytest.approx(((-0.5 + math.log(2)) + (1 - math.log(2))) / 2, rel=1e-6)
    assert kl_k3(old, old).item() == 0.0


def test_k3_is_unbiased_for_true_kl() -> None:
    gen = torch.Generator().manual_seed(0)
    p = torch.tensor([0.6, 0.3, 0.1])
    q = torch.tensor([0.3, 0.3, 0.4])
    samples = torch.multinomial(p, 200_000, replacement=True, generator=gen)
    true_kl = float((p * (p / q).log()).sum())
    assert kl_k3(p.log()[samples], q.log()[samples]).item() == pytest.approx(true_kl, rel=0.02)
    assert kl_k1(p.log()[samples], q.log()[samples]).item() == pytest.approx(true_kl, rel=0.05)


def test_normalise_advantages() -> None:
    a = torch.tensor([1.0, 2.0, 3.0, 6.0])
    n = normalise_advantages(a)
    assert n.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert n.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    nan_in = torch.tensor([1.0, float("nan")])
    assert torch.equal(normalise_advantages(nan_in).isnan(), nan_in.isnan())


def test_explained_variance_and_correlation() -> None:
    ret = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(ret, ret).item() == pytest.approx(1.0)
    assert explained_variance(torch.full((4,), 2.5), ret).item() == pytest.approx(0.0, abs=1e-6)
    assert math.isnan(explained_variance(ret, torch.ones(4)).item())
    x = torch.tensor([0.1, 0.2, 0.3]) * 1e30
    assert pearson_corr(x, x).item() <= 1.0
    assert pearson_corr(x, -x).item() == pytest.approx(-1.0)
    assert pearson_corr(x, torch.ones(3)).item() == 0.0
    a = torch.tensor([1.0, 2.0, 4.0, 3.0])
    b = torch.tensor([2.0, 1.0, 5.0, 7.0])
    assert pearson_corr(a, b).item() == pytest.approx(
        float(np.corrcoef(a.numpy(), b.numpy())[0, 1]), rel=1e-5
    )


def test_minibatch_log_summary() -> None:
    log = MinibatchLog(1, "cpu")  # grows past its capacity
    rows = [
        [1.0, 2.0, 1.0, 3.0, 0.0, 0.1, 1.0, 0.5, 0.01, 0.02, 0.3, 0.0],
        [3.0, 4.0, 2.0, 5.0, 0.5, 0.2, 0.0, 1.5, -0.03, 0.04, 0.1, 0.0],
    ]
    for r in rows:
        log.record(**{name: torch.tensor(x) for name, x in zip(MINIBATCH_FIELDS, r, strict=True)})
    s = log.summarise()
    assert s["updates"] == 2.0
    assert s["loss_policy"] == pytest.approx(2.0)
    assert s["loss_entropy"] == s["batch_entropy_mean"] == pytest.approx(1.5)
    assert s["kl_divergence"] == pytest.approx(0.03) and s["kl_k1"] == pytest.approx(-0.01)
    assert s["loss_bc"] == pytest.approx(0.2)
    assert s["batch_entropy_std"] == pytest.approx(0.5)
    assert s["grad_norm_max"] == pytest.approx(1.5)
    assert s["kl_divergence_max"] == pytest.approx(0.04)
    assert s["clip_triggered_minibatches"] == 1.0 and s["clip_fraction_max"] == pytest.approx(0.5)
    assert s["adv_zero_std_batches"] == 1.0 and s["adv_min_std"] == 0.0
    assert s["nonfinite_count"] == 0.0 and s["first_nonfinite"] == 2.0
    assert s.keys() == {*MEAN_FIELDS, *SPREAD_FIELDS, "batch_entropy_mean", "updates"}


def test_minibatch_log_rows_are_recorded_by_name() -> None:
    log = MinibatchLog(1, "cpu")
    row = {name: torch.tensor(0.0) for name in MINIBATCH_FIELDS}
    with pytest.raises(KeyError, match=r"missing \['kl_divergence'\], unexpected \[\]"):
        log.record(**{k: v for k, v in row.items() if k != "kl_divergence"})
    with pytest.raises(KeyError, match=r"missing \[\], unexpected \['kl_k3'\]"):
        log.record(**row, kl_k3=torch.tensor(0.0))
    assert log.count == 0


def test_teacher_cross_entropy_hand_values_and_masked_teacher_rows() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]]))
    mask = torch.tensor([[True, True, True], [True, True, True], [True, False, True]])
    logits = logits.masked_fill(~mask, -1e9)
    teacher = torch.tensor([0, 1, 1])  # the last row's teacher action is masked: left out
    ce = teacher_cross_entropy(logits, teacher, mask)
    assert ce.item() == pytest.approx(-(math.log(0.5) + math.log(0.6)) / 2, rel=1e-5)
    assert teacher_cross_entropy(logits[2:], teacher[2:], mask[2:]).item() == 0.0  # no valid row
