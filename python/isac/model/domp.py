"""Inference (forward) step of differentiable OMP, Sec. IV-B (Fig. 4), numpy reference.

This is the reference that the C++ kernel ``gnuradio.isac.domp`` (streaming receiver,
``domp`` mode) and the torch trainer's dOMP forward are pinned to. Per iteration I
(T iterations, one target each), lines 7-9 of Algorithm 1 are replaced by:

  1. argmax (i0, j0) of the residual angle-delay map L = |Phi_a^H Y~(I) Phi_d^*|^2 on the
     dictionaries' grids (not differentiable; it only places the window), optionally only
     over the grid angles inside the a-priori sector [theta_min, theta_max] of each frame
     (``sector_rad``; the receiver knows it, Sec. II-A, and the trainer restricts its
     argmax the same way, :func:`sector_rows`);
  2. a window of half-widths (wa, wd) pixels around (i0, j0), clipped to the grid. The
     defaults are the resolutions of eq. (16) in pixels, floor(delta_theta / Delta_theta)
     and floor(delta_R / Delta_R) with delta_theta = 2/K rad and delta_R = c / (2 S Delta_f)
     (:func:`window_half_widths`; 7 x 5 pixels for K = 64, N_theta = 720 over [-90, 90] deg,
     S = 256, Delta_f = 120 kHz, N_tau = 200 over [10, 190] m);
  3. softmax over the window cells of (L / L[i0, j0]) / temperature: the map is normalised
     to its maximum (the argmax cell; with a sector, a cell of the window outside the
     sector may exceed it, which the softmax tolerates) because its raw scale
     depends on units and SNR (docs: paper-notes "Receivers"). An all-zero residual map
     gives uniform weights;
  4. weighted sums of the grid angles (rad) and delays (s): off-grid (theta^_I, tau^_I);
  5. atoms recomputed at (theta^_I, tau^_I) from the steering model,
     a_k = exp(-j 2 pi p_k sin(theta) / lambda) (element positions p, wavelength lambda) and
     rho_s = exp(-j 2 pi s Delta_f tau), as complex64;
  6. lines 10-12 of Algorithm 1 on the recomputed atoms: joint LS gains (13) from the t x t
     Gram system G_st = (a_s^H a_t)(rho_s^H rho_t), c_s = a_s^H Y~ rho_s^* (complex128,
     Hermitian pseudo-inverse as model/omp.py), and the residual (14) -- as a map update
     M(Y~(I+1)) = M(Y~) - sum_t alpha_t (Phi_a^H a_t)(Phi_d^H rho_t)^T (the map is linear).

Only step 4 carries gradient in training (Fig. 4); this module computes values only.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import SPEED_OF_LIGHT
from .angle_delay import angle_delay_map_complex
from .array import steering_matrix
from .grids import angle_resolution_rad, range_resolution_m
from .ofdm import delay_vector
from .omp import Dictionaries, OmpResult, joint_ls_gains

#: softmax temperature on the map normalised to its maximum (same default as the trainer).
DEFAULT_TEMPERATURE = 0.1


class DompResult(OmpResult):
    """T iterations on B frames, with OmpResult's fields and stopping rule (``counts``,
    ``detections``): ``angles_rad``, ``delays_s`` (B, T) are the soft (off-grid) estimates,
    ``peaks`` (B, T) the residual map maxima before selection, ``gains`` (B, T, T)
    complex128 (``gains[b, i, :i+1]`` joint LS gains after iteration i), ``angle_index`` /
    ``delay_index`` (B, T) the argmax cells that placed the windows."""


def window_half_widths(antennas: int, subcarriers: int, spacing_hz: float, angles_rad, delays_s) -> tuple[int, int]:
    """Window half-widths (wa, wd) in pixels from the resolutions (16):
    floor(delta_theta / Delta_theta_grid), floor(delta_R / Delta_R_grid), at least 1 each
    (the same rule as the trainer's window_halfwidths; the grids must be uniform)."""
    angles = np.asarray(angles_rad, dtype=np.float64)
    delays = np.asarray(delays_s, dtype=np.float64)
    if angles.size < 2 or delays.size < 2:
        raise ValueError("window_half_widths: the angle and delay grids need >= 2 points each")
    d_theta = float(angles[1] - angles[0])
    d_range = 0.5 * SPEED_OF_LIGHT * float(delays[1] - delays[0])
    wa = int(math.floor(angle_resolution_rad(antennas) / d_theta + 1e-9))
    wd = int(math.floor(range_resolution_m(subcarriers, spacing_hz) / d_range + 1e-9))
    return max(wa, 1), max(wd, 1)


def sector_rows(angles_rad: np.ndarray, sector_rad, batch: int) -> np.ndarray:
    """(B, 2) first and last map rows of the a-priori sector [lo, hi] (rad) per frame, on an
    ascending angle grid: the first grid angle >= lo to the last grid angle <= hi; a sector
    between two grid angles gets the grid angle nearest to its centre (the trainer's rule).
    ``sector_rad``: None (all rows), (lo, hi) for every frame, or (B, 2)."""
    grid = np.asarray(angles_rad, dtype=np.float64)
    if sector_rad is None:
        return np.tile([0, grid.size - 1], (batch, 1))
    if np.any(np.diff(grid) <= 0):
        raise ValueError("domp: sector_rad needs an ascending angle grid (angles_rad)")
    sec = np.asarray(sector_rad, dtype=np.float64)
    if sec.shape == (2,):
        sec = np.tile(sec, (batch, 1))
    if sec.shape != (batch, 2):
        raise ValueError(f"domp: sector_rad must be None, (lo, hi) or shape ({batch}, 2) (rad), got {sec.shape}")
    if not np.all(np.isfinite(sec)) or np.any(sec[:, 0] > sec[:, 1]):
        raise ValueError("domp: sector_rad must be finite with lo <= hi")
    first = np.searchsorted(grid, sec[:, 0], side="left")
    last = np.searchsorted(grid, sec[:, 1], side="right") - 1
    nearest = np.argmin(np.abs(grid[None, :] - sec.mean(axis=1)[:, None]), axis=1)
    empty = last < first
    first = np.where(empty, nearest, first)
    last = np.where(empty, nearest, last)
    return np.stack([first, last], axis=1).astype(np.int64)


def domp_inference(
    y: np.ndarray,
    dictionaries: Dictionaries,
    positions_m: np.ndarray,
    wavelength_m: float,
    spacing_hz: float,
    iterations: int,
    half_widths: tuple[int, int] | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
    sector_rad=None,
) -> DompResult:
    """Run ``iterations`` dOMP inference iterations on frames Y~ (B, K, S) or (K, S).

    ``dictionaries`` holds Phi_a, Phi_d and their grids (angles_rad ascending, delays_s);
    ``positions_m`` (K,), ``wavelength_m`` and ``spacing_hz`` define the steering model of
    the recomputed atoms; ``half_widths`` (wa, wd) default to :func:`window_half_widths`;
    ``sector_rad`` restricts the argmax (:func:`sector_rows`)."""
    y = np.asarray(y, dtype=np.complex64)
    if y.ndim == 2:
        y = y[None]
    if y.ndim != 3:
        raise ValueError(f"domp: Y must be (K, S) or (B, K, S), got shape {y.shape}")
    if iterations < 1:
        raise ValueError(f"domp: iterations must be >= 1, got {iterations}")
    if not np.all(np.isfinite(y)):
        raise ValueError("domp: Y contains NaN or Inf")
    if not (temperature > 0 and np.isfinite(temperature)):
        raise ValueError(f"domp: temperature must be finite and > 0, got {temperature}")
    D = dictionaries
    B, K, S = y.shape
    positions = np.asarray(positions_m, dtype=np.float64)
    if positions.shape != (K,):
        raise ValueError(f"domp: positions_m must have shape ({K},), got {positions.shape}")
    if half_widths is None:
        half_widths = window_half_widths(K, S, spacing_hz, D.angles_rad, D.delays_s)
    wa, wd = (int(w) for w in half_widths)
    if wa < 0 or wd < 0:
        raise ValueError(f"domp: half_widths must be >= 0, got {half_widths}")
    angles = np.asarray(D.angles_rad, dtype=np.float64)
    delays = np.asarray(D.delays_s, dtype=np.float64)
    phi_a_h = D.phi_a.conj().T
    phi_d_h = D.phi_d.conj().T
    m0 = angle_delay_map_complex(y, D.phi_a, D.phi_d)  # (B, Na, Nd)
    Na, Nd = m0.shape[1:]
    rows_ok = sector_rows(angles, sector_rad, B)
    T = iterations
    out = DompResult(
        angle_index=np.zeros((B, T), np.int64),
        delay_index=np.zeros((B, T), np.int64),
        angles_rad=np.zeros((B, T)),
        delays_s=np.zeros((B, T)),
        peaks=np.zeros((B, T)),
        gains=np.zeros((B, T, T), np.complex128),
    )
    for b in range(B):
        residual_map = m0[b]
        atoms_a = np.zeros((T, K), np.complex64)
        atoms_d = np.zeros((T, S), np.complex64)
        proj_a = np.zeros((Na, T), np.complex64)  # Phi_a^H a_t
        proj_d = np.zeros((Nd, T), np.complex64)  # Phi_d^H rho_t
        for it in range(T):
            power = residual_map.real**2 + residual_map.imag**2  # float32
            r0, r1 = rows_ok[b]
            k = int(np.argmax(power[r0 : r1 + 1])) + r0 * Nd  # argmax inside the sector
            i0, j0 = divmod(k, Nd)
            peak = float(power[i0, j0])
            out.angle_index[b, it], out.delay_index[b, it], out.peaks[b, it] = i0, j0, peak
            rows = slice(max(0, i0 - wa), min(Na - 1, i0 + wa) + 1)
            cols = slice(max(0, j0 - wd), min(Nd - 1, j0 + wd) + 1)
            window = power[rows, cols].astype(np.float64)
            if peak > 0 and np.isfinite(peak):
                logits = window / peak / temperature
            else:  # all-zero residual map: uniform weights
                logits = np.zeros_like(window)
            w = np.exp(logits - logits.max())
            w /= w.sum()
            theta = float(w.sum(axis=1) @ angles[rows])
            tau = float(w.sum(axis=0) @ delays[cols])
            out.angles_rad[b, it], out.delays_s[b, it] = theta, tau
            atoms_a[it] = steering_matrix(positions, np.array([theta]), wavelength_m)[:, 0]
            atoms_d[it] = delay_vector(np.array(tau), S, spacing_hz)
            proj_a[:, it] = phi_a_h @ atoms_a[it]
            proj_d[:, it] = phi_d_h @ atoms_d[it]
            t = it + 1
            a = atoms_a[:t].astype(np.complex128)
            r = atoms_d[:t].astype(np.complex128)
            gram = (a.conj() @ a.T) * (r.conj() @ r.T)
            rhs = np.einsum("tk,kt->t", a.conj(), y[b].astype(np.complex128) @ r.conj().T)  # a_t^H Y rho_t^*
            alpha = joint_ls_gains(gram[None], rhs[None])[0]
            out.gains[b, it, :t] = alpha
            residual_map = m0[b] - (proj_a[:, :t] * alpha.astype(np.complex64)) @ proj_d[:, :t].T
    return out
