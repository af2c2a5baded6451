"""ISAC transmitter (Secs. II-C, III-A): LS beampattern synthesis (6)-(7) and the
multi-beam ISAC precoder (5)."""

from __future__ import annotations

import numpy as np

from .array import ArrayModel
from .grids import full_angle_grid


def desired_beampattern(grid_rad: np.ndarray, interval_rad: tuple[float, float], antennas: int) -> np.ndarray:
    """b of eq. (6): K on grid angles inside [min, max] (rad, inclusive), 0 elsewhere."""
    lo, hi = interval_rad
    if not lo < hi:
        raise ValueError(f"beam interval must satisfy min < max (rad), got [{lo}, {hi}]")
    g = np.asarray(grid_rad)
    return np.where((g >= lo) & (g <= hi), float(antennas), 0.0)


def ls_beam(steering: np.ndarray, desired: np.ndarray, rcond: float = 0.1) -> np.ndarray:
    """Least-squares beampattern synthesis: argmin_f ||b - A^T f||^2, eq. (7).

    ``steering`` A is K x N_theta (the transmitter's array model on the synthesis grid),
    ``desired`` b is (N_theta,). Solved by truncated-SVD least squares: singular values of
    A^T below ``rcond`` times the largest are dropped. With a well-conditioned A (the
    nominal ULA) nothing is dropped and this equals (A* A^T)^-1 A* b exactly; with an
    ill-conditioned A (large spacing errors) it stays well-posed (docs/model.md).
    Returns f_bs (K,), complex128, not normalised."""
    A = np.asarray(steering, dtype=np.complex128)
    b = np.asarray(desired, dtype=np.complex128)
    if A.ndim != 2 or b.shape != (A.shape[1],):
        raise ValueError(f"ls_beam: steering must be K x N and desired (N,), got {A.shape} and {b.shape}")
    f, *_ = np.linalg.lstsq(A.T, b, rcond=rcond)
    return f


def normalise(f: np.ndarray, power: float = 1.0) -> np.ndarray:
    """sqrt(P) f / ||f||."""
    norm = np.linalg.norm(f)
    if not np.isfinite(norm) or norm == 0:
        raise ValueError("precoder has zero or non-finite norm")
    return np.sqrt(power) * f / norm


def sector_beam(
    array: ArrayModel, interval_rad: tuple[float, float], grid_points: int = 720, rcond: float = 0.1
) -> np.ndarray:
    """Unit-norm LS beam (6)-(7) of ``array`` towards an angular interval (rad), synthesised
    on a uniform grid of ``grid_points`` angles over [-pi/2, pi/2]."""
    grid = full_angle_grid(grid_points)
    b = desired_beampattern(grid, interval_rad, array.antennas)
    return normalise(ls_beam(array.steering(grid), b, rcond))


def isac_beam(f_sensing: np.ndarray, f_comm: np.ndarray, eta: float, phi_rad: float, power: float = 1.0) -> np.ndarray:
    """ISAC precoder of eq. (5):

    f = sqrt(P) (sqrt(eta) f_r + sqrt(1-eta) e^{j phi} f_c) / ||sqrt(eta) f_r + sqrt(1-eta) e^{j phi} f_c||.
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    mix = np.sqrt(eta) * np.asarray(f_sensing) + np.sqrt(1.0 - eta) * np.exp(1j * phi_rad) * np.asarray(f_comm)
    return normalise(mix, power)


def transmit_beam(
    array: ArrayModel,
    sensing_interval_rad,
    comm_interval_rad,
    eta: float,
    phi_rad: float,
    power: float = 1.0,
    grid_points: int = 720,
    rcond: float = 0.1,
) -> np.ndarray:
    """The full ISAC transmitter: f_r and f_c by (6)-(7) on ``array``, mixed by (5). (K,) complex64."""
    f_r = sector_beam(array, sensing_interval_rad, grid_points, rcond)
    f_c = sector_beam(array, comm_interval_rad, grid_points, rcond)
    return isac_beam(f_r, f_c, eta, phi_rad, power).astype(np.complex64)


def beam_gain(array: ArrayModel, precoder: np.ndarray, angles_rad: np.ndarray) -> np.ndarray:
    """Power beampattern |a(theta)^T f|^2 at the given angles (rad)."""
    return np.abs(array.steering(angles_rad).T.astype(np.complex128) @ np.asarray(precoder)) ** 2
