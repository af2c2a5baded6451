"""The dictionaries (8) of the sensing receivers: steering vectors of the array the receiver
assumes on an angle grid, and delay vectors rho(tau) on a delay grid.

  omp_dictionaries   Algorithm 1 (Sec. III-B): N_theta angles uniform over the a-priori sector,
                     N_tau delays uniform over the range interval; for frames of M > 1 OFDM
                     symbols also the Doppler dictionary: N_v speeds uniform over scene.speed_mps
                     (receiver.doppler_grid, 0 = a step of half the resolution lambda/(2 M T_O)).
  domp_dictionaries  differentiable OMP (Sec. IV-B): the FIXED angle grid over [-90, 90] deg
                     shared with the precoder's LS synthesis (parameter sharing), the same delays;
                     the a-priori sector restricts the argmax instead of the grid.
"""

from __future__ import annotations

import numpy as np

from ..config import Scenario
from .array import ArrayModel
from .doppler import doppler_dictionary, speed_grid
from .grids import angle_grid, delay_grid, full_angle_grid
from .ofdm import delay_dictionary
from .omp import Dictionaries


def _delays(scenario: Scenario):
    delays = delay_grid(scenario.range_interval_m, scenario.receiver["delay_grid"])
    return delays, delay_dictionary(delays, scenario.ofdm["subcarriers"], scenario.ofdm["spacing_hz"])


def omp_dictionaries(scenario: Scenario, array: ArrayModel) -> Dictionaries:
    """Dictionaries (8) of Algorithm 1: ``receiver.angle_grid`` angles (rad) over
    ``scene.target_sector_deg`` and ``receiver.delay_grid`` delays (s) over ``scene.range_m``."""
    angles = angle_grid(scenario.target_sector_rad, scenario.receiver["angle_grid"])
    delays, phi_d = _delays(scenario)
    M = scenario.get("ofdm.symbols")
    if M == 1:
        return Dictionaries(angles, delays, array.steering(angles), phi_d)
    speeds = doppler_speeds(scenario)
    phi_v = doppler_dictionary(speeds, M, scenario.symbol_duration_s, scenario.get("array.carrier_hz"))
    return Dictionaries(angles, delays, array.steering(angles), phi_d, speeds, phi_v)


def doppler_speeds(scenario: Scenario) -> np.ndarray:
    """The speed grid (m/s, float64) of the Doppler dictionary: ``scenario.doppler_points``
    (config.Scenario.doppler_points: receiver.doppler_grid, or (0) a step of at most half the
    speed resolution lambda / (2 M T_O)) speeds uniform over scene.speed_mps, ends included.
    Frames of one OFDM symbol have no Doppler dictionary: [0.0], the speed of the one-symbol map."""
    if scenario.get("ofdm.symbols") == 1:
        return np.zeros(1)
    return speed_grid(scenario.speed_interval_mps, scenario.doppler_points)


def domp_dictionaries(scenario: Scenario, array: ArrayModel) -> Dictionaries:
    """Dictionaries of differentiable OMP (Sec. IV-B): ``transmitter.beam_grid`` angles (rad)
    over [-90, 90] deg and ``receiver.delay_grid`` delays (s) over ``scene.range_m``."""
    angles = full_angle_grid(scenario.transmitter["beam_grid"])
    delays, phi_d = _delays(scenario)
    return Dictionaries(angles, delays, array.steering(angles), phi_d)


__all__ = ["domp_dictionaries", "doppler_speeds", "omp_dictionaries"]
