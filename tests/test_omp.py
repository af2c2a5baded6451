"""Baseline OMP, Algorithm 1: detection, joint LS gains (13), residual (14), resolutions (16)."""

import numpy as np
import pytest

from gnuradio.isac.model import array as arr
from gnuradio.isac.model.angle_delay import angle_delay_map, angle_delay_map_complex, map_argmax
from gnuradio.isac.model.grids import (
    angle_grid,
    angle_resolution_rad,
    delay_grid,
    delay_to_range,
    range_resolution_m,
    range_to_delay,
)
from gnuradio.isac.model.ofdm import delay_dictionary, delay_vector
from gnuradio.isac.model.omp import Dictionaries, omp

LAM = 299_792_458.0 / 60e9
K, S, DF = 64, 256, 120e3
NOMINAL = arr.nominal_array(K, LAM)


def dictionaries(n_angles=720, n_delays=200, array=NOMINAL):
    angles = angle_grid(np.deg2rad((-40.0, -20.0)), n_angles)
    delays = delay_grid((10.0, 190.0), n_delays)
    return Dictionaries(angles, delays, array.steering(angles), delay_dictionary(delays, S, DF))


def echo(angles_rad, ranges_m, alphas, array=NOMINAL):
    """Y~ = sum_t alpha_t a(theta_t) rho(tau_t)^T, eq. (3) without noise."""
    A = array.steering(np.asarray(angles_rad))
    R = delay_vector(range_to_delay(np.asarray(ranges_m)), S, DF)
    return (A * np.asarray(alphas)) @ R


def literal_omp(Y, D, iterations):
    """Algorithm 1 written out literally: full map of the explicit residual each iteration,
    joint LS (13) on vectorised atoms, residual (14)."""
    res = Y.astype(np.complex128)
    atoms, picks, peaks, gains = [], [], [], None
    for _ in range(iterations):
        L = np.abs(D.phi_a.conj().T @ res @ D.phi_d.conj()) ** 2
        i, j = np.unravel_index(np.argmax(L), L.shape)
        peaks.append(L[i, j])
        picks.append((i, j))
        atoms.append(np.outer(D.phi_a[:, i], D.phi_d[:, j]).ravel())
        U = np.stack(atoms, axis=1)
        gains, *_ = np.linalg.lstsq(U, Y.ravel(), rcond=None)
        res = Y - (U @ gains).reshape(Y.shape)
    return picks, np.array(peaks), gains


def test_map_product_orders_agree(rng):
    D = dictionaries(90, 50)
    Y = (rng.standard_normal((3, K, S)) + 1j * rng.standard_normal((3, K, S))).astype(np.complex64)
    paper_order = np.stack([(D.phi_a.conj().T @ y) @ D.phi_d.conj() for y in Y])
    np.testing.assert_allclose(angle_delay_map_complex(Y, D.phi_a, D.phi_d), paper_order, rtol=2e-3, atol=2e-2)
    L = angle_delay_map(Y, D.phi_a, D.phi_d)
    i, j, v = map_argmax(L)
    for b in range(3):
        assert (i[b], j[b]) == np.unravel_index(np.argmax(L[b]), L[b].shape) and v[b] == L[b].max()
    with pytest.raises(ValueError, match="Phi_a must be K x N_theta with K = 64"):
        angle_delay_map(Y, D.phi_a[:-1], D.phi_d)
    with pytest.raises(ValueError, match="Phi_d must be S x N_tau with S = 256"):
        angle_delay_map(Y, D.phi_a, D.phi_d[:-1])


def test_noiseless_target_on_grid_is_found_with_its_gain():
    D = dictionaries()
    alpha = 0.7 - 0.2j
    Y = echo([D.angles_rad[333]], [delay_to_range(D.delays_s[77])], [alpha])
    r = omp(Y, D, 2)
    assert (r.angle_index[0, 0], r.delay_index[0, 0]) == (333, 77)
    assert r.gains[0, 0, 0] == pytest.approx(alpha, abs=1e-4)
    assert r.peaks[0, 0] == pytest.approx(abs(alpha * K * S) ** 2, rel=1e-4)  # |alpha a^H a rho^T rho*|^2
    assert r.peaks[0, 1] < 1e-6 * r.peaks[0, 0]  # the residual is empty
    assert r.counts(0.5 * r.peaks[0, 0])[0] == 1


def test_noiseless_multi_target_on_grid_recovered_exactly():
    D = dictionaries()
    ia, idl = [50, 400, 650], [20, 120, 180]
    alphas = [1.0, 0.5j, -0.8 + 0.1j]
    Y = echo(D.angles_rad[ia], delay_to_range(D.delays_s[idl]), alphas)
    r = omp(Y, D, 4)
    assert set(zip(r.angle_index[0, :3], r.delay_index[0, :3])) == set(zip(ia, idl))
    order = [ia.index(i) for i in r.angle_index[0, :3]]
    np.testing.assert_allclose(r.gains[0, 2, :3], np.array(alphas)[order], atol=1e-4)
    assert r.peaks[0, 3] < 1e-6 * r.peaks[0, 2]
    np.testing.assert_allclose(r.angles_rad[0, :3], D.angles_rad[r.angle_index[0, :3]])
    np.testing.assert_allclose(r.ranges_m[0, :3], delay_to_range(D.delays_s[r.delay_index[0, :3]]))


def test_fast_omp_equals_literal_algorithm_1(rng):
    D = dictionaries(120, 60)
    for trial in range(4):
        th = rng.uniform(np.deg2rad(-40), np.deg2rad(-20), 3)
        Y = echo(th, rng.uniform(10, 190, 3), rng.standard_normal(3) + 1j * rng.standard_normal(3))
        Y = Y + 0.05 * (rng.standard_normal((K, S)) + 1j * rng.standard_normal((K, S)))
        picks, peaks, gains = literal_omp(Y, D, 5)
        r = omp(Y, D, 5)
        assert list(zip(r.angle_index[0], r.delay_index[0])) == picks
        np.testing.assert_allclose(r.peaks[0], peaks, rtol=2e-3)
        np.testing.assert_allclose(r.gains[0, 4], gains, rtol=2e-3, atol=2e-4)


def test_batched_equals_per_frame(rng):
    D = dictionaries(100, 40)
    Ys = [echo(rng.uniform(-0.7, -0.35, 2), rng.uniform(10, 190, 2), [1, 1j]) for _ in range(3)]
    rb = omp(np.stack(Ys), D, 3)
    for b, Y in enumerate(Ys):
        r = omp(Y, D, 3)
        np.testing.assert_array_equal(rb.angle_index[b], r.angle_index[0])
        np.testing.assert_allclose(rb.gains[b], r.gains[0], rtol=1e-4, atol=1e-6)


def test_high_snr_off_grid_errors_are_below_the_resolutions_16(rng):
    D = dictionaries()
    d_theta, d_range = angle_resolution_rad(K), range_resolution_m(S, DF)
    assert d_range == pytest.approx(4.8795, abs=1e-3)
    errors_a, errors_r = [], []
    for _ in range(10):
        th = rng.uniform(np.deg2rad(-38), np.deg2rad(-22), 2)
        rg = np.array([rng.uniform(20, 80), rng.uniform(120, 180)])  # resolvable in range
        Y = echo(th, rg, [1.0, 0.8j]) + 0.1 * (rng.standard_normal((K, S)) + 1j * rng.standard_normal((K, S)))
        r = omp(Y, D, 2)
        for t in range(2):
            k = np.argmin(np.abs(r.ranges_m[0] - rg[t]))
            errors_a.append(abs(r.angles_rad[0, k] - th[t]))
            errors_r.append(abs(r.ranges_m[0, k] - rg[t]))
    assert max(errors_a) < d_theta / 4 and max(errors_r) < d_range / 4


def test_bad_input_is_named():
    D = dictionaries(10, 10)
    Y = np.zeros((K, S), np.complex64)
    Y[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        omp(Y, D, 1)
    with pytest.raises(ValueError, match="iterations"):
        omp(np.zeros((K, S)), D, 0)
    with pytest.raises(ValueError, match="phi_a has 10 columns for 9 angles"):
        Dictionaries(D.angles_rad[:-1], D.delays_s, D.phi_a, D.phi_d)
