"""Angle and delay grids of the OMP dictionaries (8) and the resolutions of eq. (16)."""

from __future__ import annotations

import numpy as np

from ..config import SPEED_OF_LIGHT


def angle_grid(sector_rad: tuple[float, float], points: int) -> np.ndarray:
    """Uniform grid of ``points`` angles (rad) covering [theta_min, theta_max] inclusive."""
    lo, hi = sector_rad
    if points < 1:
        raise ValueError(f"angle grid points must be >= 1, got {points}")
    if not (-np.pi / 2 - 1e-12 <= lo < hi <= np.pi / 2 + 1e-12):
        raise ValueError(f"angle sector must satisfy -pi/2 <= min < max <= pi/2 (rad), got [{lo}, {hi}]")
    return np.linspace(lo, hi, points)


def full_angle_grid(points: int) -> np.ndarray:
    """Uniform grid over [-pi/2, pi/2] (rad) used by the LS beampattern synthesis (6)."""
    return angle_grid((-np.pi / 2, np.pi / 2), points)


def range_to_delay(range_m) -> np.ndarray:
    """Round-trip delay tau = 2 R / c (s)."""
    return 2.0 * np.asarray(range_m, dtype=np.float64) / SPEED_OF_LIGHT


def delay_to_range(delay_s) -> np.ndarray:
    """Range R = c tau / 2 (m)."""
    return 0.5 * SPEED_OF_LIGHT * np.asarray(delay_s, dtype=np.float64)


def delay_grid(range_m: tuple[float, float], points: int) -> np.ndarray:
    """Uniform grid of ``points`` round-trip delays (s) covering [2 R_min/c, 2 R_max/c]."""
    lo, hi = range_m
    if points < 1:
        raise ValueError(f"delay grid points must be >= 1, got {points}")
    if not (0 <= lo < hi):
        raise ValueError(f"range interval must satisfy 0 <= min < max (m), got [{lo}, {hi}]")
    return range_to_delay(np.linspace(lo, hi, points))


def angle_resolution_rad(antennas: int) -> float:
    """delta_theta ~ 2 / K (rad), eq. (16)."""
    return 2.0 / antennas


def range_resolution_m(subcarriers: int, spacing_hz: float) -> float:
    """delta_R ~ c / (2 S Delta_f) (m), eq. (16)."""
    return SPEED_OF_LIGHT / (2.0 * subcarriers * spacing_hz)
