"""Array responses of the ISAC transceiver's ULA (Sec. II-A, II-D).

A structured array is described by its element positions p_k (m) along the array axis;
the response to a plane wave from angle theta (rad, broadside = 0) is

    [a(theta)]_k = exp(-j 2 pi p_k sin(theta) / lambda),          k = 0..K-1.

* Nominal ULA (Sec. II-A): p_k = (k - (K-1)/2) * lambda/2.
* Example 1 (inter-antenna spacing errors): p_k = (k - (K-1)/2) * d_k with
  d_k = lambda/2 + sigma_lambda * N(0, 1)  (real spacings, see docs/model.md).
* Cumulative spacing errors (our addition): p_k = sum_{j<k} d_j, centred, so elements
  never cross when all d_j > 0.
* Unstructured impairments: any K x N_theta dictionary on an angle grid
  (:class:`DictionaryArray`).
* Element impairments (gain and phase errors, mutual coupling, dead or weak elements) on top
  of the positions, a(theta) = diag(g) C a_pos(theta): model.impairments, whose ``true_array``
  composes every model a scenario turns on (this module knows nothing of them).
"""

from __future__ import annotations

import numpy as np

from ..config import Scenario


def centred_index(antennas: int) -> np.ndarray:
    """k - (K-1)/2 for k = 0..K-1 (dimensionless)."""
    if antennas < 1:
        raise ValueError(f"antennas must be >= 1, got {antennas}")
    return np.arange(antennas, dtype=np.float64) - (antennas - 1) / 2.0


def positions_example1(spacings_m: np.ndarray) -> np.ndarray:
    """Element positions (m) of Example 1: p_k = (k - (K-1)/2) d_k."""
    d = np.asarray(spacings_m, dtype=np.float64)
    return centred_index(d.shape[-1]) * d


def positions_cumulative(spacings_m: np.ndarray) -> np.ndarray:
    """Element positions (m) of a physically cumulative array: p_0 = 0,
    p_k = sum_{j<k} d_j (the last spacing is unused), centred on the mean position."""
    d = np.asarray(spacings_m, dtype=np.float64)
    p = np.concatenate([np.zeros(d.shape[:-1] + (1,)), np.cumsum(d[..., :-1], axis=-1)], axis=-1)
    return p - p.mean(axis=-1, keepdims=True)


def steering_matrix(positions_m: np.ndarray, angles_rad: np.ndarray, wavelength_m: float) -> np.ndarray:
    """Steering matrix [a(theta_1) ... a(theta_N)] (K x N, complex64) for element
    positions p (m) and angles theta (rad): exp(-j 2 pi p_k sin(theta_n) / lambda)."""
    p = np.asarray(positions_m, dtype=np.float64)
    th = np.asarray(angles_rad, dtype=np.float64)
    if not np.all(np.isfinite(th)):
        raise ValueError("angles_rad must be finite")
    phase = (-2.0 * np.pi / wavelength_m) * p[..., :, None] * np.sin(th)[..., None, :]
    return np.exp(1j * phase).astype(np.complex64)


class ArrayModel:
    """An array response model: maps angles (rad) to K-element responses."""

    antennas: int

    def steering(self, angles_rad: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        """K x N steering matrix for N angles (rad), complex64."""
        raise NotImplementedError


class PositionArray(ArrayModel):
    """Structured array described by element positions p (m) at wavelength lambda (m)."""

    def __init__(
        self,
        positions_m: np.ndarray,
        wavelength_m: float,
        spacings_m: np.ndarray | None = None,
        kind: str = "positions",
    ):
        self.positions_m = np.asarray(positions_m, dtype=np.float64)
        if self.positions_m.ndim != 1 or not np.all(np.isfinite(self.positions_m)):
            raise ValueError("positions_m must be a finite 1-D array")
        if not wavelength_m > 0:
            raise ValueError(f"wavelength_m must be > 0, got {wavelength_m}")
        self.wavelength_m = float(wavelength_m)
        self.spacings_m = None if spacings_m is None else np.asarray(spacings_m, dtype=np.float64)
        self.kind = kind
        self.antennas = self.positions_m.shape[0]

    def steering(self, angles_rad: np.ndarray) -> np.ndarray:
        return steering_matrix(self.positions_m, np.atleast_1d(angles_rad), self.wavelength_m)


class DictionaryArray(ArrayModel):
    """Unstructured array: a K x N_theta dictionary given on an angle grid (rad).
    ``steering`` returns the column of the nearest grid angle."""

    def __init__(self, grid_rad: np.ndarray, dictionary: np.ndarray):
        grid = np.asarray(grid_rad, dtype=np.float64)
        mat = np.asarray(dictionary)
        if mat.ndim != 2 or grid.ndim != 1 or mat.shape[1] != grid.shape[0]:
            raise ValueError(
                f"dictionary must be K x N_theta with N_theta = len(grid_rad) = {grid.shape[0]}, got shape {mat.shape}"
            )
        if not np.all(np.isfinite(mat)):
            raise ValueError("dictionary must be finite")
        if np.any(np.diff(grid) <= 0):
            raise ValueError("grid_rad must be strictly increasing")
        self.grid_rad = grid
        self.dictionary = mat.astype(np.complex64)
        self.antennas = mat.shape[0]

    def steering(self, angles_rad: np.ndarray) -> np.ndarray:
        th = np.atleast_1d(np.asarray(angles_rad, dtype=np.float64))
        idx = np.clip(np.searchsorted(self.grid_rad, th), 1, len(self.grid_rad) - 1)
        left = self.grid_rad[idx - 1]
        idx = np.where(np.abs(th - left) <= np.abs(self.grid_rad[idx] - th), idx - 1, idx)
        return self.dictionary[:, idx]


def nominal_array(antennas: int, wavelength_m: float) -> PositionArray:
    """Ideal lambda/2 ULA (Sec. II-A)."""
    d = np.full(antennas, wavelength_m / 2.0)
    return PositionArray(positions_example1(d), wavelength_m, d, kind="nominal")


def draw_spacings(antennas: int, wavelength_m: float, std_m: float, seed: int) -> np.ndarray:
    """Spacings d_k = lambda/2 + std_m * N(0,1) (m), reproducible from ``seed``."""
    if std_m < 0:
        raise ValueError(f"spacing std must be >= 0, got {std_m}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5A11]))
    return wavelength_m / 2.0 + std_m * rng.standard_normal(antennas)


def spacing_array(spacings_m: np.ndarray, wavelength_m: float, impairment: str = "spacing") -> PositionArray:
    """Array from a spacing vector d (m) under impairment model ``spacing`` (Example 1)
    or ``cumulative``."""
    d = np.asarray(spacings_m, dtype=np.float64)
    if d.ndim != 1 or not np.all(np.isfinite(d)):
        raise ValueError("spacings_m must be a finite 1-D array")
    if impairment == "spacing":
        pos = positions_example1(d)
    elif impairment == "cumulative":
        pos = positions_cumulative(d)
    else:
        raise ValueError(f"impairment must be 'spacing' or 'cumulative', got {impairment!r}")
    return PositionArray(pos, wavelength_m, d, kind=impairment)


def scenario_nominal_array(scenario: Scenario) -> PositionArray:
    """The nominal lambda/2 array the baseline assumes."""
    return nominal_array(scenario.array["antennas"], scenario.wavelength_m)
