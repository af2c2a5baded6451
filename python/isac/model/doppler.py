"""Moving targets over a frame of M OFDM symbols: the Doppler phase across the symbols, the
Doppler dictionary of the sensing receiver, and inter-carrier interference (ICI).

Convention (everywhere in gr-isac): a target's radial speed v is positive when it approaches,
so its echo is compressed in time and its Doppler shift is positive,

    f_D = 2 v f_c / c   (Hz).

Symbol m = 0 .. M-1 of a frame starts at m T_O, T_O = (1 + cp) / Delta_f (cyclic prefix
included). Over one symbol the target moves v T_O (< 1 mm at 100 m/s), far below the range
resolution, so its delay is held over the frame and the motion shows as the phase

    [d(v)]_m = exp(j 2 pi f_D m T_O),

the "slow-time" steering vector: the echo of symbol m is the echo (1) of that symbol's data
times [d(v_t)]_m for each target t. Its phase step 2 pi f_D T_O is unambiguous for
|f_D| <= 1 / (2 T_O), |v| <= lambda / (4 T_O), and M symbols resolve speeds lambda / (2 M T_O)
apart (the Rayleigh resolution of an M-point DFT).

Within a symbol the phase keeps turning, by 2 pi f_D / Delta_f = 2 pi eps over the useful part:
the subcarriers are no longer orthogonal. With the samples of the useful part n = 0 .. S-1 at
t_n = m T_O + T_cp + n / (S Delta_f), the received spectrum of a unit subcarrier k is

    Y[k'] = (1/S) sum_n exp(j 2 pi f_D t_n) exp(j 2 pi (k - k') n / S),

whose own-carrier term has the amplitude |D(eps)| = |sin(pi eps) / (S sin(pi eps / S))| and
whose other carriers receive the rest of its power (Parseval: the rotation has unit modulus),
so for data of equal power on every subcarrier the ICI carries the fraction 1 - |D(eps)|^2 of
the echo's power (P. H. Moose, "A technique for orthogonal frequency division multiplexing
frequency offset correction", IEEE Trans. Commun. 42(10), 1994, for the frequency offset of a
link; here eps is the target's normalised Doppler). :func:`time_domain_echo` simulates it.
"""

from __future__ import annotations

import numpy as np

from ..config import SPEED_OF_LIGHT


def doppler_hz(speed_mps, carrier_hz: float) -> np.ndarray:
    """f_D = 2 v f_c / c (Hz) of radial speeds v (m/s, positive = approaching)."""
    return 2.0 * np.asarray(speed_mps, dtype=np.float64) * float(carrier_hz) / SPEED_OF_LIGHT


def speed_mps(doppler, carrier_hz: float) -> np.ndarray:
    """v = c f_D / (2 f_c) (m/s): the inverse of :func:`doppler_hz`."""
    return np.asarray(doppler, dtype=np.float64) * SPEED_OF_LIGHT / (2.0 * float(carrier_hz))


def doppler_phases(speeds_mps, symbols: int, symbol_duration_s: float, carrier_hz: float) -> np.ndarray:
    """The slow-time steering vectors d(v): exp(j 2 pi f_D m T_O), m = 0 .. M-1, of speeds
    (...,) -> (..., M) complex128 (phases computed in float64)."""
    fd = doppler_hz(speeds_mps, carrier_hz)
    m = np.arange(int(symbols), dtype=np.float64)
    return np.exp(2j * np.pi * (fd[..., None] * float(symbol_duration_s)) * m)


def doppler_dictionary(speeds_mps, symbols: int, symbol_duration_s: float, carrier_hz: float) -> np.ndarray:
    """Phi_v = [d(v_1) .. d(v_Nv)] (M, Nv) complex64: the Doppler atoms of the sensing
    receiver's angle-delay-Doppler dictionary."""
    v = np.asarray(speeds_mps, dtype=np.float64).reshape(-1)
    return doppler_phases(v, symbols, symbol_duration_s, carrier_hz).T.astype(np.complex64)


def speed_grid(interval_mps: tuple[float, float], points: int) -> np.ndarray:
    """Uniform grid of ``points`` speeds (m/s) over [v_min, v_max] inclusive; a one-speed
    interval [v, v] is the grid [v]."""
    lo, hi = float(interval_mps[0]), float(interval_mps[1])
    if points < 1:
        raise ValueError(f"speed grid points must be >= 1, got {points}")
    if not lo <= hi:
        raise ValueError(f"speed interval must satisfy min <= max (m/s), got [{lo}, {hi}]")
    return np.array([lo]) if hi == lo else np.linspace(lo, hi, int(points))


def ici_own_carrier(eps, subcarriers: int) -> np.ndarray:
    """The own-carrier factor of a subcarrier rotated by eps = f_D / Delta_f over the useful
    part of a symbol: D(eps) = (1/S) sum_n exp(j 2 pi eps n / S)
    = exp(j pi eps (S-1)/S) sin(pi eps) / (S sin(pi eps / S)) (complex; 1 at eps = 0)."""
    e = np.asarray(eps, dtype=np.float64)
    S = int(subcarriers)
    num = np.sin(np.pi * e)
    den = S * np.sin(np.pi * e / S)
    with np.errstate(invalid="ignore", divide="ignore"):
        amp = np.where(np.abs(den) < 1e-300, 1.0, num / np.where(den == 0, 1.0, den))
    return amp * np.exp(1j * np.pi * e * (S - 1) / S)


def ici_power_fraction(eps, subcarriers: int) -> np.ndarray:
    """The fraction of an echo's power that leaks to the other subcarriers, 1 - |D(eps)|^2,
    for data of equal power on every subcarrier (eps = f_D / Delta_f)."""
    return 1.0 - np.abs(ici_own_carrier(eps, subcarriers)) ** 2


def time_domain_echo(
    spectrum: np.ndarray, doppler: float, symbol: int, symbol_duration_s: float, cp_fraction: float, spacing_hz: float
) -> np.ndarray:
    """The received spectrum of one symbol of one target's echo simulated in time: the
    frequency-domain echo ``spectrum`` (..., S) (data, delay and gains applied) to the samples
    of the useful part (orthonormal IFFT), each turned by exp(j 2 pi f_D t_n),
    t_n = m T_O + T_cp + n / (S Delta_f), and back (orthonormal FFT). At f_D = 0 it returns the
    spectrum itself (to float precision); otherwise the subcarriers leak into each other (ICI)."""
    X = np.asarray(spectrum, dtype=np.complex128)
    S = X.shape[-1]
    t = symbol * symbol_duration_s + cp_fraction / spacing_hz + np.arange(S) / (S * spacing_hz)
    rot = np.exp(2j * np.pi * float(doppler) * t)
    samples = np.fft.ifft(X, axis=-1, norm="ortho") * rot
    return np.fft.fft(samples, axis=-1, norm="ortho")


__all__ = [
    "doppler_dictionary",
    "doppler_hz",
    "doppler_phases",
    "ici_own_carrier",
    "ici_power_fraction",
    "speed_grid",
    "speed_mps",
    "time_domain_echo",
]
