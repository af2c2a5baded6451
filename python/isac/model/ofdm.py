"""OFDM symbols: QPSK mapping x(m), its ML detection (15), and the delay vector rho(tau) (1)."""

from __future__ import annotations

import numpy as np

#: Gray-mapped unit-energy QPSK constellation; message m in {0,1,2,3} -> bits (b1 b0),
#: x = ((1 - 2 b0) + j (1 - 2 b1)) / sqrt(2).
QPSK = (np.array([1 + 1j, -1 + 1j, 1 - 1j, -1 - 1j]) / np.sqrt(2.0)).astype(np.complex64)


def qpsk_map(messages: np.ndarray) -> np.ndarray:
    """x(m): QPSK symbols (complex64, |x| = 1) for integer messages in {0, 1, 2, 3}."""
    m = np.asarray(messages)
    if m.size and (m.min() < 0 or m.max() > 3):
        raise ValueError("messages must be integers in [0, 3]")
    return QPSK[m.astype(np.intp)]


def random_messages(rng: np.random.Generator, shape) -> np.ndarray:
    """Messages uniform over the QPSK alphabet {0, 1, 2, 3}."""
    return rng.integers(0, 4, size=shape, dtype=np.int64)


def ml_detect(y: np.ndarray, csi: np.ndarray) -> np.ndarray:
    """Subcarrier-wise ML detection (15): argmin_m |y_s - kappa_s x(m)|^2 (int64 messages).

    ``y`` and ``csi`` (kappa) broadcast against each other; non-finite inputs are
    detected as message 0 and should be flagged by the caller."""
    y = np.asarray(y, dtype=np.complex64)
    k = np.asarray(csi, dtype=np.complex64)
    dist = np.abs(y[..., None] - k[..., None] * QPSK) ** 2
    dist = np.where(np.isfinite(dist), dist, np.inf)
    return np.argmin(dist, axis=-1).astype(np.int64)


def delay_vector(delays_s: np.ndarray, subcarriers: int, spacing_hz: float) -> np.ndarray:
    """rho(tau): [rho]_s = exp(-j 2 pi s Delta_f tau), s = 0..S-1.

    ``delays_s`` of shape (...,) gives (..., S) complex64."""
    tau = np.asarray(delays_s, dtype=np.float64)
    s = np.arange(subcarriers, dtype=np.float64)
    return np.exp(-2j * np.pi * spacing_hz * tau[..., None] * s).astype(np.complex64)


def delay_dictionary(delays_s: np.ndarray, subcarriers: int, spacing_hz: float) -> np.ndarray:
    """Phi_d = [rho(tau_1) ... rho(tau_N)] (S x N_tau, complex64), eq. (8b)."""
    return np.ascontiguousarray(delay_vector(delays_s, subcarriers, spacing_hz).T)
