"""The speed CRB of a moving target over M symbols (experiments/crb.py) against a numerical Fisher
information of the model's own echo."""

import math

import numpy as np
import pytest

from gnuradio.isac.config import SPEED_OF_LIGHT, Scenario
from gnuradio.isac.experiments import crb
from gnuradio.isac.model.beamforming import beam_gain
from gnuradio.isac.model.channels_stream import Motion, array_frame, sensing_echo_from_frame
from gnuradio.isac.model.impairments import true_array
from gnuradio.isac.model.ofdm import qpsk_map, random_messages
from gnuradio.isac.model.reciprocal import reciprocal_filter
from gnuradio.isac.model.scene import Scene, sensing_gain_variance
from gnuradio.isac.simulation import baseline_precoder

# --- the speed CRB -------------------------------------------------------------------------------


def echo_fisher(scenario, theta, range_m, speed, psi, seed=5):
    """(J, array, precoder): the 5 x 5 Fisher information (2/N0) Re{G^H G} of (theta [rad], R [m],
    v [m/s], Re psi, Im psi), G by fourth-order central differences of the model's own noiseless
    echo of M symbols (channels_stream.sensing_echo_from_frame, ICI off) after reciprocal
    filtering (3), for one draw of QPSK data through the baseline precoder and the true array."""
    M, S = scenario.ofdm["symbols"], scenario.ofdm["subcarriers"]
    array, f = true_array(scenario), baseline_precoder(scenario)
    x = qpsk_map(random_messages(np.random.default_rng(seed), (M, S)))
    X, motion, n0 = array_frame(f, x), Motion.of(scenario), scenario.scene["noise_power"]

    def mean(eta):
        th, r, v, re, im = eta
        y = sensing_echo_from_frame(
            array, X, Scene([th], [r], [re + 1j * im], [v]), scenario.ofdm["spacing_hz"], n0, None, motion
        )
        return reciprocal_filter(y, x).astype(np.complex128).ravel()

    eta = np.array([theta, range_m, speed, psi.real, psi.imag])
    steps = np.array([2e-5, 2e-3, 2e-2, 1e-2 * abs(psi), 1e-2 * abs(psi)])
    cols = []
    for i, h in enumerate(steps):
        e = np.zeros(5)
        e[i] = h
        cols.append((8 * (mean(eta + e) - mean(eta - e)) - (mean(eta + 2 * e) - mean(eta - 2 * e))) / (12 * h))
    G = np.stack(cols, axis=1)
    return 2.0 / n0 * np.real(G.conj().T @ G), array, f


@pytest.mark.parametrize("symbols, snr_db", [(2, 0.0), (16, 10.0), (64, 20.0)])
def test_speed_crb_closed_form_equals_the_numerical_fisher_information_of_the_echo(symbols, snr_db):
    """The inverse of the echo's numerical 5 x 5 Fisher information (physical unknowns: the gain
    psi, not alpha, and range and speed in m and m/s) has on its diagonal the closed forms of the
    angle, range and speed bounds over M symbols (the default, impaired array), with no correlation
    of the speed with angle or range, although the uncentred J couples them."""
    sc = Scenario.load(None, [f"ofdm.symbols={symbols}", "scene.speed_mps=[-30, 30]"])
    K, S, n0 = sc.array["antennas"], sc.ofdm["subcarriers"], sc.scene["noise_power"]
    theta, r0, v0 = math.radians(-31.3), 87.2, 12.7
    psi = math.sqrt(sensing_gain_variance(snr_db, K, n0)) * np.exp(0.4j)
    J, array, f = echo_fisher(sc, theta, r0, v0, psi)
    C = np.linalg.inv(J)
    alpha_power = abs(psi) ** 2 * float(beam_gain(array, f, np.array([theta]))[0]) / S
    lam, df = sc.wavelength_m, sc.ofdm["spacing_hz"]
    v_theta, v_tau = crb.crb_closed_form(array.positions_m, lam, theta, alpha_power, S, df, n0, symbols=symbols)
    v_speed = crb.crb_speed_closed_form(lam, alpha_power, K, S, symbols, sc.symbol_duration_s, n0)
    assert C[0, 0] == pytest.approx(v_theta, rel=1e-4)
    assert C[1, 1] == pytest.approx((SPEED_OF_LIGHT / 2) ** 2 * v_tau, rel=1e-4)
    assert C[2, 2] == pytest.approx(v_speed, rel=1e-4)
    corr = C / np.sqrt(np.outer(np.diag(C), np.diag(C)))
    assert abs(corr[0, 2]) < 1e-4 and abs(corr[1, 2]) < 1e-4  # the speed decouples ...
    assert abs(J[1, 2]) / math.sqrt(J[1, 1] * J[2, 2]) > 0.5  # ... though J (phase reference m = 0) couples it
    # the scenario's form: (lambda / (4 pi T_O)) sqrt(6 / (SNR_r G M (M^2 - 1))) with |psi| = sigma_r
    G = float(beam_gain(array, f, np.array([theta]))[0])
    expected = sc.wavelength_m / (4 * math.pi * sc.symbol_duration_s)
    expected *= math.sqrt(6 / (10 ** (snr_db / 10) * G * symbols * (symbols**2 - 1)))
    assert crb.crb_speed_at_snr(sc, array, f, theta, snr_db) == pytest.approx(expected, rel=1e-9)
    assert math.sqrt(C[2, 2]) == pytest.approx(expected, rel=1e-4)


def test_fisher_information_doppler_equals_finite_differences_of_its_mean():
    """The closed-form 5 x 5 J of (theta, tau, f_D, Re alpha, Im alpha) against central
    differences (float64) of mu = alpha a(theta) (x) rho(tau) (x) d(f_D), and its inverse against
    the closed forms; one symbol carries no speed information (the bound is infinite)."""
    sc = Scenario.load(None, ["array.spacing_std_m=2e-4", "array.impairment_seed=3"])
    p, lam = true_array(sc).positions_m, sc.wavelength_m
    S, df, M, T = 64, sc.ofdm["spacing_hz"], 8, sc.symbol_duration_s
    theta, tau, fd, alpha, n0 = math.radians(-27.3), 2 * 73.4 / SPEED_OF_LIGHT, 3.1e3, 0.03 * np.exp(0.8j), 1.3
    J = crb.fisher_information_doppler(p, lam, theta, tau, fd, alpha, S, df, M, T, n0)
    s, m = np.arange(S), np.arange(M)

    def mu(eta):
        th, ta, f, re, im = eta
        a = np.exp(-2j * np.pi * p * np.sin(th) / lam)
        rho = np.exp(-2j * np.pi * s * df * ta)
        d = np.exp(2j * np.pi * f * m * T)
        return ((re + 1j * im) * np.einsum("m,k,s->mks", d, a, rho)).ravel()

    eta = np.array([theta, tau, fd, alpha.real, alpha.imag])
    cols = []
    for i, h in enumerate([1e-7, 1e-13, 1e-3, 1e-7, 1e-7]):
        e = np.zeros(5)
        e[i] = h
        cols.append((mu(eta + e) - mu(eta - e)) / (2 * h))
    G = np.stack(cols, axis=1)
    Jn = 2.0 / n0 * np.real(G.conj().T @ G)
    assert np.allclose(J, J.T)
    assert np.allclose(Jn, J, rtol=1e-5, atol=1e-6 * np.abs(J).max())
    C = np.linalg.inv(J)
    K = p.size
    v_theta, v_tau = crb.crb_closed_form(p, lam, theta, abs(alpha) ** 2, S, df, n0, symbols=M)
    v_speed = crb.crb_speed_closed_form(lam, abs(alpha) ** 2, K, S, M, T, n0)
    assert C[0, 0] == pytest.approx(v_theta, rel=1e-6)
    assert C[1, 1] == pytest.approx(v_tau, rel=1e-6)
    assert (lam / 2) ** 2 * C[2, 2] == pytest.approx(v_speed, rel=1e-6)
    assert crb.crb_speed_closed_form(lam, 1.0, K, S, 1, T) == math.inf
