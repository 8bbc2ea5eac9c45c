"""GAE against hand-computed values, including termination (cut) and truncation (bootstrap from final obs)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import Tensor  # noqa: E402

from townlet.algorithms.gae import compute_gae, next_values_for  # noqa: E402

GAMMA, LAM = 0.9, 0.8


def _t(rows: list[list[float]]) -> Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def test_single_step_matches_original_unit_check() -> None:
    # r=1, V=0.5, bootstrap 0.4, gamma .99: delta = 1 + .99*.4 - .5 = 0.896 (upstream test_ppo_utils.py)
    r = _t([[1.0]])
    v = _t([[0.5]])
    nxt = next_values_for(v, torch.tensor([0.4]), torch.zeros(1, 1, dtype=torch.bool), None)
    adv, ret = compute_gae(
        r, v, nxt, torch.zeros(1, 1, dtype=torch.bool), torch.zeros(1, 1, dtype=torch.bool), 0.99, 0.95
    )
    assert adv.item() == pytest.approx(0.896, abs=1e-6)
    assert ret.item() == pytest.approx(1.396, abs=1e-6)


def test_hand_computed_columns() -> None:
    # column 0: no episode end; column 1: faint at t=1, truncation at t=2; column 2: truncation at t=0.
    rewards = _t([[1.0, 1.0, 1.0], [0.0, -1.0, 1.0], [2.0, 0.5, 1.0]])
    values = _t([[0.5, 0.2, 0.5], [0.4, 0.6, 0.5], [0.3, 0.1, 0.5]])
    terminated = torch.tensor([[False, False, False], [False, True, False], [False, False, False]])
    truncated = torch.tensor([[False, False, True], [False, False, False], [False, True, False]])
    final_values = _t([[0.0, 0.0, 0.9], [0.0, 0.0, 0.0], [0.0, 0.7, 0.0]])
    bootstrap = torch.tensor([0.2, 5.0, 0.5])
    nxt = next_values_for(values, bootstrap, truncated, final_values)
    adv, ret = compute_gae(rewards, values, nxt, terminated, truncated, GAMMA, LAM)
    # col 0: d = [0.86, -0.13, 1.88]; A2 = 1.88, A1 = -0.13 + .72 * 1.88, A0 = 0.86 + .72 * A1
    # col 1: d0 = 1 + .9*.6 - .2 = 1.34; d1 = -1 - .6 (no bootstrap after a faint, no carry);
    #        d2 = .5 + .9*.7 - .1 = 1.03 (bootstraps from the final obs value, not the bootstrap 5.0)
    # col 2: d0 = 1 + .9*.9 - .5 = 1.31, cut there; d1 = d2 = .95, A1 = .95 + .72 * .95
    expected = np.array(
        [
            [1.740992, 1.34 + 0.72 * -1.6, 1.31],  # t = 0
            [1.2236, -1.6, 1.634],  # t = 1
            [1.88, 1.03, 0.95],  # t = 2
        ]
    )
    np.testing.assert_allclose(adv.numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(ret.numpy(), expected + values.numpy(), atol=1e-5)


def test_truncation_without_final_values_uses_own_value_not_next_episode() -> None:
    values = _t([[0.3], [9.0]])  # row 1 is the first state of the next episode: must not leak in
    truncated = torch.tensor([[True], [False]])
    nxt = next_values_for(values, torch.tensor([0.0]), truncated, None)
    assert nxt[0, 0].item() == pytest.approx(0.3)


def _scalar_reference(r, v, nv, term, trunc, gamma, lam):
    t_len, n = r.shape
    adv = np.zeros_like(r)
    for j in range(n):
        running = 0.0
        for t in reversed(range(t_len)):
            delta = r[t, j] + gamma * nv[t, j] * (1.0 - term[t, j]) - v[t, j]
            running = delta + gamma * lam * (1.0 - max(term[t, j], trunc[t, j])) * running
            adv[t, j] = running
    return adv


def test_matches_scalar_loop_on_random_data() -> None:
    rng = np.random.default_rng(0)
    t_len, n = 37, 11
    r = rng.normal(size=(t_len, n)).astype(np.float32)
    v = rng.normal(size=(t_len, n)).astype(np.float32)
    term = rng.random((t_len, n)) < 0.1
    trunc = (rng.random((t_len, n)) < 0.05) & ~term
    final = rng.normal(size=(t_len, n)).astype(np.float32)
    boot = rng.normal(size=n).astype(np.float32)
    nv = next_values_for(
        torch.from_numpy(v), torch.from_numpy(boot), torch.from_numpy(trunc), torch.from_numpy(final)
    )
    adv, _ = compute_gae(
        torch.from_numpy(r),
        torch.from_numpy(v),
        nv,
        torch.from_numpy(term),
        torch.from_numpy(trunc),
        0.99,
        0.95,
    )
    ref = _scalar_reference(r, v, nv.numpy(), term.astype(np.float32), trunc.astype(np.float32), 0.99, 0.95)
    np.testing.assert_allclose(adv.numpy(), ref, rtol=1e-4, atol=1e-4)


def test_shape_mismatch_is_a_clear_error() -> None:
    z = torch.zeros(3, 2)
    b = torch.zeros(3, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="values"):
        compute_gae(z, torch.zeros(3, 3), z, b, b, 0.99, 0.95)
    with pytest.raises(ValueError, match=r"\[T, N\]"):
        compute_gae(torch.zeros(3), z, z, b, b, 0.99, 0.95)
