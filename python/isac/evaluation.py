"""Offline evaluation (Sec. V-B): the one scoring loop and the one threshold calibration of
gr-isac, used by isac-eval, isac-sim's comparison and every experiment.

  calibration_peaks  the receiver's map peaks (and the true counts) on the calibration frames
  calibrate          the threshold delta with p_fa (21) <= receiver.p_fa on those frames
  score              test frames: simulate -> reciprocal filter (3) -> sense -> ML-detect (15)
                     -> Scores (p_md (20), p_fa (21), GOSPA (17), SER (22), RMSEs), at one or
                     several thresholds from the same receiver run
  evaluate           calibrate (unless a threshold is given), then score: the metrics of isac-eval

The transmitter and the receiver of a method come from the transceiver layer
(``gnuradio.isac.transceiver``); weights are loaded once by the caller (``transceiver.load_weights``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .config import Scenario
from .model.domp import DEFAULT_TEMPERATURE
from .model.metrics import calibrate_threshold
from .model.ofdm import ml_detect
from .model.omp import OmpResult
from .model.reciprocal import reciprocal_filter
from .scoring import Scores
from .simulation import Frames, Simulator
from .transceiver import build


def batches(total: int, size: int):
    """(start, count) of consecutive batches of at most ``size`` frames covering ``total``."""
    for start in range(0, total, size):
        yield start, min(size, total - start)


def progress_bar(total: int, desc: str, enabled=None):
    """A tqdm progress bar over frames; ``enabled`` False: off, None: on for terminals."""
    from tqdm import tqdm  # progress bars: tqdm (Debian python3-tqdm)

    return tqdm(
        total=total, desc=desc, unit="frame", disable=enabled is False if enabled is not None else None, leave=False
    )


def sense(frames: Frames, receiver) -> OmpResult:
    """Sensing receiver on a batch: reciprocal filtering (3) then T_max iterations of ``receiver``
    (a sensing receiver of the transceiver layer)."""
    return receiver(reciprocal_filter(frames.y_sensing, frames.symbols))


def calibration_peaks(
    scenario: Scenario, simulator: Simulator, receiver, progress=None, desc: str = "calibrating"
) -> tuple[np.ndarray, np.ndarray]:
    """(peaks (B, T_max), true counts (B,)) of ``receiver`` on the run.calibration_frames frames of
    the calibration stream: the input of model.metrics.calibrate_threshold."""
    peaks, counts = [], []
    total = scenario.run["calibration_frames"]
    with progress_bar(total, desc, progress) as bar:
        for start, n in batches(total, scenario.run["batch"]):
            frames = simulator.frames(start, n, "calibration")
            peaks.append(sense(frames, receiver).peaks)
            counts.append(frames.true_counts)
            bar.update(n)
    return np.concatenate(peaks), np.concatenate(counts)


def calibrate(scenario: Scenario, simulator: Simulator, receiver, progress=None, p_fa: float | None = None) -> float:
    """Threshold delta with p_fa (21) <= ``p_fa`` (default receiver.p_fa) on the calibration frames."""
    peaks, counts = calibration_peaks(scenario, simulator, receiver, progress)
    target = scenario.receiver["p_fa"] if p_fa is None else p_fa
    return calibrate_threshold(peaks, counts, scenario.scene["max_targets"], target)


def score(
    scenario: Scenario,
    simulator: Simulator,
    receiver,
    thresholds: Sequence[float],
    progress=None,
    desc: str = "testing",
) -> list[Scores]:
    """Score run.frames test frames at each of ``thresholds`` (one receiver run serves all):
    one Scores per threshold."""
    scores = [Scores.for_scenario(scenario) for _ in thresholds]
    with progress_bar(scenario.run["frames"], desc, progress) as bar:
        for start, n in batches(scenario.run["frames"], scenario.run["batch"]):
            frames = simulator.frames(start, n, "test")
            result = sense(frames, receiver)
            detected = ml_detect(frames.y_comm, frames.csi)
            for s, threshold in zip(scores, thresholds):
                s.add(frames, result, threshold, detected)
            bar.update(n)
    return scores


def evaluate(
    scenario: Scenario,
    method: str = "baseline",
    weights=None,
    receiver: str = "omp",
    kernel: str | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
    threshold: float | None = None,
    progress=None,
) -> dict:
    """Calibrate (unless ``threshold`` is given) and score ``method`` on run.frames test frames.

    ``weights``: a loaded weights.Weights for learned methods; ``receiver`` "omp" | "domp" (nn:
    its networks); ``kernel`` "cpp" | "numpy" | None (cpp when built). Returns the metrics dict of
    isac-eval (p_md, p_fa, gospa, ser, angle_rmse_deg, range_rmse_m, frames, threshold, method,
    receiver)."""
    t = build(scenario, method, weights, receiver, kernel, temperature)
    simulator = Simulator(scenario, precoder=t.precoder(scenario))
    if threshold is None:
        threshold = calibrate(scenario, simulator, t.receiver, progress)
    out = score(scenario, simulator, t.receiver, [threshold], progress, f"testing {method}")[0].summary()
    out["threshold"] = float(threshold)
    out["method"] = method
    out["receiver"] = t.receiver_name
    return out


__all__ = ["Scores", "batches", "calibrate", "calibration_peaks", "evaluate", "progress_bar", "score", "sense"]
