"""Training losses (trainer/loss.py) against model/metrics.gospa on equal-size sets."""

import itertools

import numpy as np
import pytest
import torch  # a hard dependency (tools/requirements.txt): a missing torch must fail, not skip

from gnuradio.isac.model.metrics import gospa  # noqa: E402
from gnuradio.isac.model.scene import positions as np_positions  # noqa: E402
from gnuradio.isac.trainer.loss import gospa_equal, mse_single, positions  # noqa: E402


def test_positions_match_eq2():
    th = np.array([-0.5, 0.0, 1.2])
    r = np.array([10.0, 55.0, 190.0])
    np.testing.assert_allclose(positions(torch.as_tensor(th), torch.as_tensor(r)).numpy(), np_positions(th, r))


def test_gospa_equal_matches_numpy_gospa_and_brute_force():
    rng = np.random.default_rng(0)
    B, T = 40, 5
    true = rng.uniform(-150, 150, (B, T, 2))
    est = true[:, rng.permutation(T)] + rng.normal(0, 40, (B, T, 2))  # some beyond the cut-off
    counts = rng.integers(0, T + 1, B)
    got = gospa_equal(torch.as_tensor(true), torch.as_tensor(est), torch.as_tensor(counts), 90.0, 2.0).numpy()
    for b in range(B):
        n = counts[b]
        ref = gospa(true[b, :n], est[b, :n], 90.0, 2.0, 2.0)  # |P| = |P^|: no cardinality term, (18)
        assert got[b] == pytest.approx(ref, rel=1e-9, abs=1e-6)
        if 0 < n <= 4:
            d = np.minimum(np.linalg.norm(true[b, :n, None] - est[b, None, :n], axis=-1), 90.0) ** 2
            brute = min(sum(d[i, p[i]] for i in range(n)) for p in itertools.permutations(range(n)))
            assert got[b] == pytest.approx(np.sqrt(brute), rel=1e-9)


def test_gospa_equal_gradient_flows_only_within_the_cutoff():
    true = torch.tensor([[[0.0, 50.0], [100.0, 0.0]]], dtype=torch.float64)
    est = torch.tensor([[[101.0, 1.0], [0.0, 250.0]]], dtype=torch.float64, requires_grad=True)
    d = gospa_equal(true, est, torch.tensor([2]), 90.0)
    d.sum().backward()
    # estimate 0 matches true 1 (distance sqrt(2)); estimate 1 is 200 m from true 0: cut off
    assert d.item() == pytest.approx(np.sqrt(2.0 + 90.0**2))
    assert torch.all(est.grad[0, 1] == 0) and torch.all(est.grad[0, 0] != 0)


def test_mse_single():
    t = torch.tensor([[1.0, 2.0]])
    e = torch.tensor([[4.0, 6.0]])
    assert mse_single(t, e).item() == 25.0
