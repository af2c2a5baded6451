"""Baseline OMP for multi-target sensing, Algorithm 1 (Sec. III-B), numpy reference.

Dictionaries (8): Phi_a = [a(theta_1) .. a(theta_Na)] on the a-priori angle sector and
Phi_d = [rho(tau_1) .. rho(tau_Nd)] on the a-priori range interval. Each iteration picks
the argmax of the residual's angle-delay map (10), appends the atoms (11)-(12), re-fits
all gains jointly by least squares (13) and forms the residual (14).

Implementation (same result as the literal algorithm, see docs/performance.md):
  * the map of the residual is updated, not recomputed: M(Y - sum alpha_t a_t rho_t^T) =
    M(Y) - sum alpha_t (Phi_a^H a_t)(Phi_d^H rho_t)^T, since the map is linear in Y;
  * the joint LS (13) uses the t x t Gram matrix of the separable atoms,
    <a_s rho_s^T, a_t rho_t^T> = (a_s^H a_t)(rho_s^H rho_t), and <a_s rho_s^T, Y> = M(Y)[i_s, j_s].

The stopping rule ``max L > delta`` is applied after the fact: OMP runs T_max iterations
and records the map maximum ("peak") at each, so one run serves every threshold
(calibration, p_fa sweeps). The detected count for threshold delta is the number of
leading iterations whose peak exceeds delta.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .angle_delay import angle_delay_doppler_map_complex, angle_delay_map_complex
from .grids import delay_to_range


@dataclass
class Dictionaries:
    """OMP dictionaries (8) with their grids: angles (rad), delays (s), and for frames of M OFDM
    symbols the Doppler dictionary Phi_v = [d(v_1) .. d(v_Nv)] (M, Nv) on its speed grid (m/s)."""

    angles_rad: np.ndarray  # (Na,)
    delays_s: np.ndarray  # (Nd,)
    phi_a: np.ndarray  # (K, Na) complex64
    phi_d: np.ndarray  # (S, Nd) complex64
    speeds_mps: np.ndarray | None = None  # (Nv,)
    phi_v: np.ndarray | None = None  # (M, Nv) complex64

    @property
    def doppler(self) -> bool:
        """Whether the dictionaries span speeds too (frames of M symbols)."""
        return self.phi_v is not None

    def __post_init__(self) -> None:
        if self.phi_a.shape[1] != self.angles_rad.shape[0]:
            raise ValueError(
                f"Dictionaries: phi_a has {self.phi_a.shape[1]} columns for {self.angles_rad.shape[0]} angles"
            )
        if self.phi_d.shape[1] != self.delays_s.shape[0]:
            raise ValueError(
                f"Dictionaries: phi_d has {self.phi_d.shape[1]} columns for {self.delays_s.shape[0]} delays"
            )
        if (self.phi_v is None) != (self.speeds_mps is None) or (
            self.phi_v is not None and self.phi_v.shape[1] != self.speeds_mps.shape[0]
        ):
            raise ValueError("Dictionaries: phi_v needs one column per speed of speeds_mps")


@dataclass
class OmpResult:
    """T_max OMP iterations on B frames. Index arrays are (B, T_max); ``gains[b, i, :i+1]``
    are the joint LS gains (13) after iteration i."""

    angle_index: np.ndarray
    delay_index: np.ndarray
    angles_rad: np.ndarray
    delays_s: np.ndarray
    peaks: np.ndarray  # map maximum at each iteration, before selection
    gains: np.ndarray  # (B, T_max, T_max) complex
    #: frames of M symbols: the speed grid index and speed (m/s, positive = approaching) of each
    #: iteration's atom (B, T_max); None for one-symbol frames (no speed is measured)
    doppler_index: np.ndarray | None = None
    speeds_mps: np.ndarray | None = None

    @property
    def ranges_m(self) -> np.ndarray:
        return delay_to_range(self.delays_s)

    def counts(self, threshold: float) -> np.ndarray:
        """Detected number of targets per frame for threshold delta: Algorithm 1 stops at
        the first iteration whose map maximum is <= delta."""
        above = self.peaks > threshold
        return np.cumprod(above, axis=-1).sum(axis=-1)

    def detections(self, frame: int, threshold: float) -> dict[str, np.ndarray]:
        """Detections of one frame: angle_rad, range_m, gain (LS gains of the kept set)."""
        n = int(self.counts(threshold)[frame])
        return {
            "angle_rad": self.angles_rad[frame, :n],
            "range_m": self.ranges_m[frame, :n],
            "gain": self.gains[frame, n - 1, :n] if n else np.zeros(0, complex),
            "peak": self.peaks[frame, :n],
            "speed_mps": self.speeds_mps[frame, :n] if self.speeds_mps is not None else np.full(n, np.nan),
        }


def joint_ls_gains(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve the normal equations G alpha = c of the joint LS (13) for a stack (B, t, t).
    A pseudo-inverse keeps a repeated atom (singular G) well defined."""
    return np.einsum("bij,bj->bi", np.linalg.pinv(gram, rcond=1e-6, hermitian=True), rhs)


def _checked_frames(y: np.ndarray, frame_ndim: int, iterations: int) -> np.ndarray:
    """Frames Y~ as a complex64 stack (one frame of ``frame_ndim`` axes gets a batch axis), after
    the checks :func:`omp` and :func:`omp_doppler` share: T_max >= 1, every value finite."""
    y = np.asarray(y, dtype=np.complex64)
    if y.ndim == frame_ndim:
        y = y[None]
    if iterations < 1:
        raise ValueError(f"omp: iterations (T_max) must be >= 1, got {iterations}")
    if not np.all(np.isfinite(y)):
        raise ValueError("omp: Y contains NaN or Inf")
    return y


def omp(y: np.ndarray, dictionaries: Dictionaries, iterations: int) -> OmpResult:
    """Run ``iterations`` (T_max) OMP iterations on reciprocal-filtered frames Y~ of shape
    (B, K, S) or (K, S). See the module docstring for the algorithm."""
    y = _checked_frames(y, 2, iterations)
    D = dictionaries
    B = y.shape[0]
    m0 = angle_delay_map_complex(y, D.phi_a, D.phi_d)  # (B, Na, Nd)
    residual_map = m0.copy()
    Nd = m0.shape[2]
    ai = np.zeros((B, iterations), dtype=np.int64)
    di = np.zeros((B, iterations), dtype=np.int64)
    peaks = np.zeros((B, iterations), dtype=np.float64)
    gains = np.zeros((B, iterations, iterations), dtype=np.complex128)
    # projections of the selected atoms onto the dictionaries: Phi_a^H a_t (B, Na, t), Phi_d^H rho_t (B, Nd, t)
    proj_a = np.zeros((B, D.phi_a.shape[1], iterations), dtype=np.complex64)
    proj_d = np.zeros((B, Nd, iterations), dtype=np.complex64)
    rows = np.arange(B)
    for it in range(iterations):
        power = residual_map.real**2 + residual_map.imag**2
        flat = power.reshape(B, -1)
        k = np.argmax(flat, axis=1)
        peaks[:, it] = flat[rows, k]
        ai[:, it], di[:, it] = np.divmod(k, Nd)
        # Gram products of the selected (dictionary) atoms: columns of Phi^H Phi
        proj_a[:, :, it] = (D.phi_a.conj().T @ D.phi_a[:, ai[:, it]]).T  # (B, Na)
        proj_d[:, :, it] = (D.phi_d.conj().T @ D.phi_d[:, di[:, it]]).T
        t = it + 1
        # G_st = (a_s^H a_t)(rho_s^H rho_t); a_s^H a_t = proj_a[b, i_s, t]
        ga = np.take_along_axis(proj_a[:, :, :t], ai[:, :t, None], axis=1)  # (B, t, t)
        gd = np.take_along_axis(proj_d[:, :, :t], di[:, :t, None], axis=1)
        gram = ga.astype(np.complex128) * gd
        rhs = m0[rows[:, None], ai[:, :t], di[:, :t]].astype(np.complex128)  # (B, t)
        alpha = joint_ls_gains(gram, rhs)
        gains[:, it, :t] = alpha
        # residual map (14): M(Y) - sum_t alpha_t (Phi_a^H a_t)(Phi_d^H rho_t)^T
        residual_map = m0 - np.einsum(
            "bit,bt,bjt->bij", proj_a[:, :, :t], alpha.astype(np.complex64), proj_d[:, :, :t], optimize=True
        )
    return OmpResult(ai, di, D.angles_rad[ai], D.delays_s[di], peaks, gains)


def omp_doppler(y: np.ndarray, dictionaries: Dictionaries, iterations: int) -> OmpResult:
    """Algorithm 1 over angle, delay and speed on frames of M OFDM symbols Y~ (B, M, K, S) or
    (M, K, S): the map of each iteration is angle_delay.angle_delay_doppler_map_complex of the
    residual, updated as in :func:`omp` with separable atoms a (x) rho (x) d, whose Gram products
    factor: <a_s rho_s d_s, a_t rho_t d_t> = (a_s^H a_t)(rho_s^H rho_t)(d_s^H d_t). Returns the
    angles, delays and speeds of the T_max iterations (``OmpResult.speeds_mps``)."""
    y = _checked_frames(y, 3, iterations)
    D = dictionaries
    if not D.doppler:
        raise ValueError("omp_doppler: the dictionaries have no Doppler dictionary phi_v")
    B = y.shape[0]
    m0 = angle_delay_doppler_map_complex(y, D.phi_a, D.phi_d, D.phi_v)  # (B, Na, Nd, Nv)
    residual_map = m0.copy()
    _, Na, Nd, Nv = m0.shape
    ai, di, vi = (np.zeros((B, iterations), dtype=np.int64) for _ in range(3))
    peaks = np.zeros((B, iterations), dtype=np.float64)
    gains = np.zeros((B, iterations, iterations), dtype=np.complex128)
    proj = [np.zeros((B, n, iterations), dtype=np.complex64) for n in (Na, Nd, Nv)]
    atoms = (D.phi_a, D.phi_d, D.phi_v)
    rows = np.arange(B)
    for it in range(iterations):
        power = residual_map.real**2 + residual_map.imag**2
        flat = power.reshape(B, -1)
        k = np.argmax(flat, axis=1)
        peaks[:, it] = flat[rows, k]
        ai[:, it], di[:, it], vi[:, it] = np.unravel_index(k, (Na, Nd, Nv))
        for p, phi, idx in zip(proj, atoms, (ai, di, vi)):
            p[:, :, it] = (phi.conj().T @ phi[:, idx[:, it]]).T  # Phi^H (selected atom): (B, N)
        t = it + 1
        gram = np.ones((B, t, t), dtype=np.complex128)
        for p, idx in zip(proj, (ai, di, vi)):
            gram = gram * np.take_along_axis(p[:, :, :t], idx[:, :t, None], axis=1)
        rhs = m0[rows[:, None], ai[:, :t], di[:, :t], vi[:, :t]].astype(np.complex128)  # (B, t)
        alpha = joint_ls_gains(gram, rhs)
        gains[:, it, :t] = alpha
        residual_map = m0 - np.einsum(
            "bit,bt,bjt,blt->bijl",
            proj[0][:, :, :t],
            alpha.astype(np.complex64),
            proj[1][:, :, :t],
            proj[2][:, :, :t],
            optimize=True,
        )
    return OmpResult(
        ai, di, D.angles_rad[ai], D.delays_s[di], peaks, gains, doppler_index=vi, speeds_mps=D.speeds_mps[vi]
    )
