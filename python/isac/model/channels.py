"""Channels: the multi-target MIMO sensing echo (1) and the MISO communication channel (4).

Both use the TRUE (possibly impaired) array: the transmitter's precoder f (K,) is applied
through a_true(theta)^T f. Noise variance N0 per complex sample."""

from __future__ import annotations

import numpy as np

from .array import ArrayModel
from .grids import range_to_delay
from .ofdm import delay_vector
from .scene import Scene, complex_normal


def sensing_echo(
    array: ArrayModel,
    precoder: np.ndarray,
    symbols: np.ndarray,
    scene: Scene,
    spacing_hz: float,
    noise_power: float,
    rng: np.random.Generator | None,
) -> np.ndarray:
    """Received sensing frame Y_r (K x S, complex64), eq. (1):

        Y_r = 1/sqrt(S) sum_t psi_t a(theta_t) a(theta_t)^T f [x (.) rho(tau_t)]^T + W,

    with tau_t = 2 R_t / c, W ~ CN(0, N0). ``rng=None`` gives the noiseless echo."""
    f = np.asarray(precoder, dtype=np.complex128).reshape(-1)
    x = np.asarray(symbols, dtype=np.complex128).reshape(-1)
    K, S = array.antennas, x.shape[0]
    if f.shape[0] != K:
        raise ValueError(f"sensing_echo: precoder has {f.shape[0]} entries, array has K = {K}")
    y = np.zeros((K, S), dtype=np.complex128)
    if scene.count:
        a = array.steering(scene.angles_rad).astype(np.complex128)  # K x T
        alpha = scene.gains * (a.T @ f) / np.sqrt(S)  # (T,)
        rho = delay_vector(range_to_delay(scene.ranges_m), S, spacing_hz).astype(np.complex128)  # T x S
        y = (a * alpha) @ (rho * x)
    if rng is not None:
        y = y + complex_normal(rng, (K, S), noise_power)
    return y.astype(np.complex64)


def comm_tap_variances(taps: int, snr_comm_db: float, subcarriers: int, noise_power: float) -> np.ndarray:
    """sigma_l^2 proportional to exp(-l), l = 0..L-1, normalised so that
    SNR_c = sum_l sigma_l^2 / (S N0) (Sec. II-B, V-A)."""
    pdp = np.exp(-np.arange(taps, dtype=np.float64))
    return pdp * (10.0 ** (snr_comm_db / 10.0) * subcarriers * noise_power / pdp.sum())


def comm_frequency_response(tap_gains: np.ndarray, subcarriers: int) -> np.ndarray:
    """beta: orthonormal S-point DFT of [beta_0..beta_{L-1}, 0, ..., 0] (so E|beta_s|^2 =
    sum sigma_l^2 / S)."""
    return np.fft.fft(np.asarray(tap_gains), n=subcarriers) / np.sqrt(subcarriers)


def comm_channel(
    array: ArrayModel,
    precoder: np.ndarray,
    symbols: np.ndarray,
    comm_angle_rad: float,
    tap_variances: np.ndarray,
    noise_power: float,
    rng: np.random.Generator,
    noiseless: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """MISO downlink (4): y_c = [x (.) beta] f^T a(phi) + n.

    ``symbols`` (S,), or (M, S) for a frame of M OFDM symbols through one channel (the downlink
    user does not move). Returns (y_c, kappa), both of the shape of ``symbols``, complex64, with
    the CSI kappa = beta f^T a(phi) (the same for every symbol)."""
    f = np.asarray(precoder, dtype=np.complex128).reshape(-1)
    x = np.asarray(symbols, dtype=np.complex128)
    x = x.reshape(-1) if x.ndim <= 1 else x
    S = x.shape[-1]
    if f.shape[0] != array.antennas:
        raise ValueError(f"comm_channel: precoder has {f.shape[0]} entries, array has K = {array.antennas}")
    taps = complex_normal(rng, len(tap_variances), 1.0) * np.sqrt(tap_variances)
    beta = comm_frequency_response(taps, S)
    gain = array.steering(np.array([comm_angle_rad]))[:, 0].astype(np.complex128) @ f
    kappa = beta * gain
    y = x * kappa
    if not noiseless:
        y = y + complex_normal(rng, x.shape if x.ndim > 1 else S, noise_power)
    return y.astype(np.complex64), np.broadcast_to(kappa, x.shape).astype(np.complex64)
