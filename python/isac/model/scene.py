"""Target scenes of the sensing channel (Sec. II-A): T ~ U{0..T_max} targets with
theta_t ~ U[theta_min, theta_max] (rad), R_t ~ U[R_min, R_max] (m), psi_t ~ CN(0, sigma_r^2),
their positions p_t = [R cos(theta), R sin(theta)] (2), and, for moving targets, their radial
speeds v_t ~ U[v_min, v_max] (m/s, positive = approaching)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Scene:
    """Targets of one frame. Angles in rad, ranges in m, complex gains psi."""

    angles_rad: np.ndarray  # (T,)
    ranges_m: np.ndarray  # (T,)
    gains: np.ndarray  # (T,) complex
    speeds_mps: np.ndarray | None = None  # (T,) radial speeds, positive = approaching; None: static

    def __post_init__(self) -> None:
        self.angles_rad = np.asarray(self.angles_rad, dtype=np.float64).reshape(-1)
        self.ranges_m = np.asarray(self.ranges_m, dtype=np.float64).reshape(-1)
        self.gains = np.asarray(self.gains, dtype=np.complex128).reshape(-1)
        n = self.angles_rad.shape[0]
        speeds = np.zeros(n) if self.speeds_mps is None else self.speeds_mps
        self.speeds_mps = np.asarray(speeds, dtype=np.float64).reshape(-1)
        if self.ranges_m.shape[0] != n or self.gains.shape[0] != n or self.speeds_mps.shape[0] != n:
            raise ValueError(
                f"scene: angles_rad, ranges_m, gains and speeds_mps must have equal lengths, got "
                f"{n}, {self.ranges_m.shape[0]}, {self.gains.shape[0]}, {self.speeds_mps.shape[0]}"
            )
        for name in ("angles_rad", "ranges_m", "gains", "speeds_mps"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"scene: {name} must be finite")
        if np.any(np.abs(self.angles_rad) > np.pi / 2):
            raise ValueError("scene: angles_rad must lie in [-pi/2, pi/2]")
        if np.any(self.ranges_m < 0):
            raise ValueError("scene: ranges_m must be >= 0")

    @property
    def count(self) -> int:
        return int(self.angles_rad.shape[0])

    @property
    def moving(self) -> bool:
        """Whether any target moves (a speed other than 0)."""
        return bool(np.any(self.speeds_mps != 0))

    @property
    def positions_m(self) -> np.ndarray:
        """(T, 2) positions [R cos(theta), R sin(theta)] (m), eq. (2)."""
        return positions(self.angles_rad, self.ranges_m)


def positions(angles_rad, ranges_m) -> np.ndarray:
    """p = [R cos(theta), R sin(theta)] (m), eq. (2); shape (..., 2)."""
    th = np.asarray(angles_rad, dtype=np.float64)
    r = np.asarray(ranges_m, dtype=np.float64)
    return np.stack([r * np.cos(th), r * np.sin(th)], axis=-1)


def sensing_gain_variance(snr_sensing_db: float, antennas: int, noise_power: float) -> float:
    """sigma_r^2 from SNR_r = K sigma_r^2 / N0 (Sec. II-A)."""
    return 10.0 ** (snr_sensing_db / 10.0) * noise_power / antennas


def complex_normal(rng: np.random.Generator, shape, variance: float) -> np.ndarray:
    """Samples of CN(0, variance) (complex128)."""
    scale = np.sqrt(variance / 2.0)
    return scale * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))


def random_scene(
    rng: np.random.Generator,
    max_targets: int,
    sector_rad: tuple[float, float],
    range_m: tuple[float, float],
    gain_variance: float,
    speed_mps: tuple[float, float] = (0.0, 0.0),
) -> Scene:
    """A random scene with T ~ U{0..max_targets} targets (Sec. II-A); each target draws its
    speed v ~ U[speed_mps] after its gain, and no draw is made for a one-speed interval (so
    static scenes are drawn exactly as before speeds existed)."""
    t = int(rng.integers(0, max_targets + 1))
    angles = rng.uniform(sector_rad[0], sector_rad[1], t)
    ranges = rng.uniform(range_m[0], range_m[1], t)
    gains = complex_normal(rng, t, gain_variance)
    lo, hi = float(speed_mps[0]), float(speed_mps[1])
    speeds = rng.uniform(lo, hi, t) if hi > lo else np.full(t, lo)
    return Scene(angles, ranges, gains, speeds)


def fixed_scene(
    angles_deg,
    ranges_m,
    gains=None,
    rng: np.random.Generator | None = None,
    gain_variance: float = 1.0,
    speeds_mps=None,
) -> Scene:
    """A user-given scene (angles in degrees, ranges in m, speeds in m/s, default static).
    Gains default to draws from CN(0, gain_variance) when ``gains`` is None (needs ``rng``)."""
    th = np.deg2rad(np.asarray(angles_deg, dtype=np.float64).reshape(-1))
    if gains is None:
        if rng is None:
            raise ValueError("fixed_scene: give gains or an rng to draw them")
        gains = complex_normal(rng, th.shape[0], gain_variance)
    return Scene(th, ranges_m, gains, speeds_mps)
