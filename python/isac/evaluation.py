"""Evaluation of a receiver on a scenario (Sec. V-B): calibrate the OMP threshold to the
target p_fa on calibration frames, then score separate test frames with p_md (20),
p_fa (21), GOSPA (17), SER (22) and angle / range RMSE.

Methods:
  baseline  the receiver assumes the nominal lambda/2 array (Sec. III)
  perfect   the receiver knows the true (impaired) array; the transmitter is still the
            baseline of Sec. III-A ("perfect knowledge" of Figs. 7-8)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import Scenario
from .model.array import ArrayModel, scenario_nominal_array, true_array
from .model.grids import angle_grid, delay_grid
from .model.metrics import (calibrate_threshold, counts_for_threshold, false_alarm_probability,
                            gospa_assignment, misdetection_probability, rmse, symbol_error_rate)
from .model.ofdm import delay_dictionary, ml_detect
from .model.omp import Dictionaries, OmpResult, omp
from .model.reciprocal import reciprocal_filter
from .model.scene import positions
from .simulation import Frames, Simulator

METHODS = ("baseline", "perfect")


def receiver_array(scenario: Scenario, method: str) -> ArrayModel:
    """The array the sensing receiver assumes for ``method``."""
    if method == "baseline":
        return scenario_nominal_array(scenario)
    if method == "perfect":
        return true_array(scenario)
    raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")


def omp_dictionaries(scenario: Scenario, array: ArrayModel) -> Dictionaries:
    """Dictionaries (8) on the a-priori sector and range interval of the scenario."""
    rx = scenario.receiver
    angles = angle_grid(scenario.target_sector_rad, rx["angle_grid"])
    delays = delay_grid(scenario.range_interval_m, rx["delay_grid"])
    return Dictionaries(angles, delays, array.steering(angles),
                        delay_dictionary(delays, scenario.ofdm["subcarriers"], scenario.ofdm["spacing_hz"]))


def sense(frames: Frames, dictionaries: Dictionaries, max_targets: int) -> OmpResult:
    """Sensing receiver: reciprocal filtering (3) then T_max OMP iterations (Alg. 1)."""
    return omp(reciprocal_filter(frames.y_sensing, frames.symbols), dictionaries, max_targets)


@dataclass
class Scores:
    """Accumulates per-frame outcomes; :meth:`summary` gives the metrics of Sec. V-B."""

    max_targets: int
    cutoff: float
    p: float
    mu: float
    true_counts: list = field(default_factory=list)
    est_counts: list = field(default_factory=list)
    gospa: list = field(default_factory=list)
    angle_err_deg: list = field(default_factory=list)
    range_err_m: list = field(default_factory=list)
    symbol_errors: int = 0
    symbols: int = 0

    def add(self, frames: Frames, result: OmpResult, threshold: float, detected_messages: np.ndarray) -> None:
        counts = result.counts(threshold)
        for b, scene in enumerate(frames.scenes):
            n = int(counts[b])
            est_pos = positions(result.angles_rad[b, :n], result.ranges_m[b, :n])
            d, pairs = gospa_assignment(scene.positions_m, est_pos, self.cutoff, self.p, self.mu)
            self.gospa.append(d)
            for i, j in pairs:
                self.angle_err_deg.append(np.rad2deg(result.angles_rad[b, j] - scene.angles_rad[i]))
                self.range_err_m.append(result.ranges_m[b, j] - scene.ranges_m[i])
            self.true_counts.append(scene.count)
            self.est_counts.append(n)
        self.symbol_errors += int(np.sum(detected_messages != frames.messages))
        self.symbols += int(frames.messages.size)

    def summary(self) -> dict:
        return {
            "p_md": misdetection_probability(self.true_counts, self.est_counts),
            "p_fa": false_alarm_probability(self.true_counts, self.est_counts, self.max_targets),
            "gospa": float(np.mean(self.gospa)) if self.gospa else float("nan"),
            "ser": self.symbol_errors / self.symbols if self.symbols else float("nan"),
            "angle_rmse_deg": rmse(self.angle_err_deg),
            "range_rmse_m": rmse(self.range_err_m),
            "frames": len(self.gospa),
        }


def _batches(total: int, size: int):
    for start in range(0, total, size):
        yield start, min(size, total - start)


def _progress(total: int, desc: str, enabled):
    from tqdm import tqdm  # progress bars: tqdm (Debian python3-tqdm); disabled when not a terminal

    return tqdm(total=total, desc=desc, unit="frame", disable=enabled is False if enabled is not None else None,
                leave=False)


def calibrate(scenario: Scenario, simulator: Simulator, dictionaries: Dictionaries, progress=None) -> float:
    """Threshold delta with p_fa (21) <= receiver.p_fa on the calibration frames."""
    T = scenario.scene["max_targets"]
    peaks, counts = [], []
    with _progress(scenario.run["calibration_frames"], "calibrating", progress) as bar:
        for start, n in _batches(scenario.run["calibration_frames"], scenario.run["batch"]):
            frames = simulator.frames(start, n, "calibration")
            peaks.append(sense(frames, dictionaries, T).peaks)
            counts.append(frames.true_counts)
            bar.update(n)
    return calibrate_threshold(np.concatenate(peaks), np.concatenate(counts), T, scenario.receiver["p_fa"])


def evaluate(scenario: Scenario, method: str = "baseline", progress=None, threshold: float | None = None) -> dict:
    """Calibrate (unless ``threshold`` is given) and score ``method`` on run.frames test
    frames. Returns the metrics dict of isac-eval (see docs/apps.md)."""
    simulator = Simulator(scenario)
    dictionaries = omp_dictionaries(scenario, receiver_array(scenario, method))
    if threshold is None:
        threshold = calibrate(scenario, simulator, dictionaries, progress)
    rx = scenario.receiver
    scores = Scores(scenario.scene["max_targets"], rx["gospa_c_m"], rx["gospa_p"], rx["gospa_mu"])
    with _progress(scenario.run["frames"], f"testing {method}", progress) as bar:
        for start, n in _batches(scenario.run["frames"], scenario.run["batch"]):
            frames = simulator.frames(start, n, "test")
            result = sense(frames, dictionaries, scenario.scene["max_targets"])
            scores.add(frames, result, threshold, ml_detect(frames.y_comm, frames.csi))
            bar.update(n)
    out = scores.summary()
    out["threshold"] = float(threshold)
    out["method"] = method
    return out


__all__ = ["METHODS", "Scores", "calibrate", "evaluate", "omp_dictionaries", "receiver_array", "sense",
           "counts_for_threshold"]
