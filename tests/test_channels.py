"""Sensing echo (1), reciprocal filtering (3) and the MISO channel (4)."""

import numpy as np
import pytest

from gnuradio.isac.model import array as arr
from gnuradio.isac.model.channels import comm_channel, comm_frequency_response, comm_tap_variances, sensing_echo
from gnuradio.isac.model.grids import range_to_delay
from gnuradio.isac.model.ofdm import delay_vector, qpsk_map
from gnuradio.isac.model.reciprocal import reciprocal_filter
from gnuradio.isac.model.scene import Scene, fixed_scene, random_scene, sensing_gain_variance

LAM = 299_792_458.0 / 60e9
K, S, DF = 16, 64, 120e3


@pytest.fixture
def setup(rng):
    a = arr.spacing_array(arr.draw_spacings(K, LAM, 2e-4, 3), LAM)
    f = rng.standard_normal(K) + 1j * rng.standard_normal(K)
    f /= np.linalg.norm(f)
    x = qpsk_map(rng.integers(0, 4, S))
    scene = Scene(np.deg2rad([-30.0, -22.5]), [40.0, 150.0], [1 + 0.5j, -0.3j])
    return a, f, x, scene


def test_noiseless_echo_matches_eq1_term_by_term(setup):
    a, f, x, scene = setup
    Y = sensing_echo(a, f, x, scene, DF, 1.0, rng=None)
    ref = np.zeros((K, S), complex)
    for t in range(scene.count):
        at = a.steering(scene.angles_rad[t : t + 1])[:, 0]
        rho = delay_vector(range_to_delay(scene.ranges_m[t]), S, DF)
        ref += scene.gains[t] * np.outer(at, at) @ f[:, None] @ (x * rho)[None, :] / np.sqrt(S)
    np.testing.assert_allclose(Y, ref, atol=1e-5)


def test_reciprocal_filter_gives_eq3_with_alpha(setup):
    a, f, x, scene = setup
    Yt = reciprocal_filter(sensing_echo(a, f, x, scene, DF, 1.0, rng=None), x)
    ref = np.zeros((K, S), complex)
    for t in range(scene.count):
        at = a.steering(scene.angles_rad[t : t + 1])[:, 0]
        alpha = at @ f * scene.gains[t] / np.sqrt(S)  # alpha_t = a^T f psi / sqrt(S)
        ref += alpha * np.outer(at, delay_vector(range_to_delay(scene.ranges_m[t]), S, DF))
    np.testing.assert_allclose(Yt, ref, atol=1e-5)


def test_noise_variance_is_n0_and_unchanged_by_reciprocal_filtering(setup, rng):
    a, f, x, _ = setup
    empty = Scene([], [], [])
    Y = sensing_echo(a, f, x, empty, DF, 2.5, rng)
    for M in (Y, reciprocal_filter(Y, x)):
        assert np.mean(np.abs(M) ** 2) == pytest.approx(2.5, rel=0.05)


def test_reciprocal_filter_handles_zero_and_nonfinite_symbols(setup):
    a, f, x, scene = setup
    Y = sensing_echo(a, f, x, scene, DF, 1.0, rng=None)
    bad = x.copy()
    bad[3] = 0
    bad[7] = np.nan
    with pytest.raises(ValueError, match="zero or non-finite transmitted symbols"):
        reciprocal_filter(Y, bad)
    out = reciprocal_filter(Y, bad, invalid="zero")
    assert np.all(out[:, [3, 7]] == 0) and np.all(np.isfinite(out))
    np.testing.assert_allclose(out[:, 0], Y[:, 0] / x[0], rtol=1e-6)
    with pytest.raises(ValueError, match="disagree"):
        reciprocal_filter(Y[:, :-1], x)


def test_random_scene_follows_the_paper_distribution(rng):
    counts, angles, ranges, gains = [], [], [], []
    var = sensing_gain_variance(15.0, 64, 1.0)
    assert var == pytest.approx(10**1.5 / 64)
    for _ in range(3000):
        s = random_scene(rng, 5, np.deg2rad((-40, -20)), (10, 190), var)
        counts.append(s.count)
        angles += list(s.angles_rad)
        ranges += list(s.ranges_m)
        gains += list(s.gains)
    freq = np.bincount(counts, minlength=6) / 3000
    np.testing.assert_allclose(freq, 1 / 6, atol=0.03)
    assert np.rad2deg(min(angles)) >= -40 and np.rad2deg(max(angles)) <= -20
    assert min(ranges) >= 10 and max(ranges) <= 190
    assert np.mean(np.abs(gains) ** 2) == pytest.approx(var, rel=0.06)
    assert abs(np.mean(gains)) < 0.05


def test_fixed_scene_and_scene_validation(rng):
    s = fixed_scene([-30, -25], [50, 60], gains=[1, 1])
    np.testing.assert_allclose(
        s.positions_m,
        [
            [50 * np.cos(np.deg2rad(-30)), 50 * np.sin(np.deg2rad(-30))],
            [60 * np.cos(np.deg2rad(-25)), 60 * np.sin(np.deg2rad(-25))],
        ],
    )
    with pytest.raises(ValueError, match="equal lengths"):
        Scene([0.1], [10, 20], [1])
    with pytest.raises(ValueError, match="finite"):
        Scene([np.nan], [10], [1])
    with pytest.raises(ValueError, match="gains or an rng"):
        fixed_scene([0], [10])


def test_comm_channel_snr_and_csi(rng):
    Sc = 256
    var = comm_tap_variances(5, 20.0, Sc, 1.0)
    np.testing.assert_allclose(var[1:] / var[:-1], np.exp(-1))
    assert var.sum() / Sc == pytest.approx(100.0)  # SNR_c = sum sigma_l^2 / (S N0)
    a = arr.nominal_array(K, LAM)
    f = np.zeros(K, complex)
    f[0] = 1.0  # |f^T a(phi)| = 1 for a single element: kappa = beta
    x = qpsk_map(rng.integers(0, 4, Sc))
    powers = []
    for _ in range(400):
        y, kappa = comm_channel(a, f, x, 0.7, var, 1.0, rng, noiseless=True)
        np.testing.assert_allclose(y, x * kappa, atol=1e-3)
        powers.append(np.mean(np.abs(kappa) ** 2))
    assert np.mean(powers) == pytest.approx(100.0, rel=0.1)  # E|beta_s|^2 = SNR_c N0
    # kappa = beta f^T a(phi) with beta the orthonormal DFT of the taps
    taps = np.array([1.0, 0.5j, 0, 0, 0])
    np.testing.assert_allclose(comm_frequency_response(taps, 8), np.fft.fft(taps, 8) / np.sqrt(8))
    f2 = rng.standard_normal(K) + 0j
    y, kappa = comm_channel(a, f2, x, 0.7, var, 1.0, np.random.default_rng(5), noiseless=True)
    _, kappa1 = comm_channel(a, f, x, 0.7, var, 1.0, np.random.default_rng(5), noiseless=True)
    a_phi = a.steering(np.array([0.7]))[:, 0]
    beta = kappa1 / a_phi[0]  # f = e_0 gives kappa = beta a_0(phi)
    np.testing.assert_allclose(kappa, beta * (a_phi @ f2), rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="precoder"):
        comm_channel(a, f2[:-1], x, 0.7, var, 1.0, rng)
