"""QPSK mapping, ML detection (15) and the delay vector rho(tau) (1)."""

import numpy as np
import pytest
from scipy.special import erfc

from gnuradio.isac.model.ofdm import QPSK, delay_dictionary, delay_vector, ml_detect, qpsk_map


def test_qpsk_is_unit_energy_gray_mapped():
    x = qpsk_map(np.arange(4))
    np.testing.assert_allclose(np.abs(x), 1.0, atol=1e-7)
    assert np.mean(x) == pytest.approx(0, abs=1e-7)
    # Gray: neighbours (distance sqrt 2) differ in exactly one bit
    for a in range(4):
        for b in range(4):
            if abs(abs(x[a] - x[b]) - np.sqrt(2)) < 1e-6:
                assert bin(a ^ b).count("1") == 1
    with pytest.raises(ValueError, match="messages"):
        qpsk_map(np.array([4]))


def test_ml_detection_inverts_the_channel_and_matches_nearest_equalised_symbol(rng):
    m = rng.integers(0, 4, 1000)
    kappa = (rng.standard_normal(1000) + 1j * rng.standard_normal(1000)).astype(np.complex64)
    y = kappa * qpsk_map(m)
    np.testing.assert_array_equal(ml_detect(y, kappa), m)
    # with noise, (15) equals the nearest constellation point of y / kappa
    yn = y + 0.3 * (rng.standard_normal(1000) + 1j * rng.standard_normal(1000))
    nearest = np.argmin(np.abs((yn / kappa)[:, None] - QPSK[None]), axis=1)
    np.testing.assert_array_equal(ml_detect(yn, kappa), nearest)


@pytest.mark.parametrize("snr_db", [0.0, 6.0, 10.0])
def test_qpsk_ser_over_awgn_matches_closed_form(rng, snr_db):
    n = 200_000
    snr = 10 ** (snr_db / 10)
    m = rng.integers(0, 4, n)
    noise = np.sqrt(1 / (2 * snr)) * (rng.standard_normal(n) + 1j * rng.standard_normal(n))
    ser = np.mean(ml_detect(qpsk_map(m) + noise, np.ones(n)) != m)
    q = 0.5 * erfc(np.sqrt(snr) / np.sqrt(2))  # Q(sqrt(Es/N0)) per quadrature
    expect = 2 * q - q * q
    sigma = np.sqrt(expect * (1 - expect) / n)
    assert abs(ser - expect) < 5 * sigma


def test_delay_vector_and_dictionary():
    S, df = 256, 120e3
    tau = np.array([0.0, 1e-7, 6.6e-7])
    r = delay_vector(tau, S, df)
    s = np.arange(S)
    np.testing.assert_allclose(r, np.exp(-2j * np.pi * s[None] * df * tau[:, None]), atol=2e-6)
    D = delay_dictionary(tau, S, df)
    assert D.shape == (S, 3) and D.flags.c_contiguous
    np.testing.assert_array_equal(D, r.T)
    # delays one unambiguous period apart (1/df) give the same vector
    np.testing.assert_allclose(delay_vector(tau + 1 / df, S, df), r, atol=2e-3)
