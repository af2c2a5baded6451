"""Offline evaluation (Sec. V-B): the one scoring loop and the one threshold calibration of
gr-isac, used by isac-eval, isac-sim's comparison and every experiment.

  calibration_peaks  the receiver's map peaks (and the true counts) on the calibration frames
  calibrate          the threshold delta with p_fa (21) <= receiver.p_fa on those frames
  score              test frames: simulate -> reciprocal filter (3) -> sense -> ML-detect (15)
                     -> Scores (p_md (20), p_fa (21), GOSPA (17), SER (22), RMSEs), at one or
                     several thresholds from the same receiver run
  evaluate           calibrate (unless a threshold is given), then score: the metrics of isac-eval;
                     with a runner (tasks.py, cluster.py), the calibration and the test frames
                     in chunks of whole batches (frame_chunks) computed by calibration_chunk and
                     score_chunk on the runner's workers: the peaks are joined in frame order
                     (the same threshold, bit for bit) and the chunks' Scores merged in chunk
                     order (Scores.merge: the counts exact, the means and spreads to rounding)

The transmitter and the receiver of a method come from the transceiver layer
(``gnuradio.isac.transceiver``); weights are loaded once by the caller (``transceiver.load_weights``).
"""

from __future__ import annotations

import math
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
from .tasks import Shared, Unit, task
from .transceiver import build


def batches(total: int, size: int, first: int = 0):
    """(start, count) of consecutive batches of at most ``size`` frames covering ``total``
    frames from frame ``first`` on."""
    for start in range(0, total, size):
        yield first + start, min(size, total - start)


def frame_chunks(total: int, batch: int, parts: int) -> list[tuple[int, int]]:
    """(first frame, count) of at most ``parts`` consecutive chunks covering ``total`` frames,
    each a whole number of ``batch``-frame batches (the last may end short), so that the
    batches inside the chunks are those of one pass over the frames."""
    if parts < 1:
        raise ValueError(f"frame_chunks: parts must be >= 1, got {parts}")
    size = batch * math.ceil(math.ceil(total / batch) / parts) if total > 0 else batch
    return [(start, min(size, total - start)) for start in range(0, total, size)]


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
    scenario: Scenario,
    simulator: Simulator,
    receiver,
    progress=None,
    desc: str = "calibrating",
    first: int = 0,
    count: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(peaks (B, T_max), true counts (B,)) of ``receiver`` on the run.calibration_frames frames of
    the calibration stream (or its ``count`` frames from frame ``first`` on): the input of
    model.metrics.calibrate_threshold."""
    peaks, counts = [], []
    total = scenario.run["calibration_frames"] if count is None else count
    with progress_bar(total, desc, progress) as bar:
        for start, n in batches(total, scenario.run["batch"], first):
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
    first: int = 0,
    count: int | None = None,
) -> list[Scores]:
    """Score run.frames test frames (or ``count`` test frames from frame ``first`` on) at each
    of ``thresholds`` (one receiver run serves all): one Scores per threshold."""
    scores = [Scores.for_scenario(scenario) for _ in thresholds]
    total = scenario.run["frames"] if count is None else count
    with progress_bar(total, desc, progress) as bar:
        for start, n in batches(total, scenario.run["batch"], first):
            frames = simulator.frames(start, n, "test")
            result = sense(frames, receiver)
            detected = ml_detect(frames.y_comm, frames.csi)
            for s, threshold in zip(scores, thresholds):
                s.add(frames, result, threshold, detected)
            bar.update(n)
    return scores


def calibration_chunk(
    scenario: Scenario, method: str, weights, receiver: str, kernel: str, temperature: float, first: int, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`calibration_peaks` of ``count`` calibration frames from ``first`` on, with the
    transceiver built here (a task of a runner: the process that runs it may be a Dask worker)."""
    t = build(scenario, method, weights, receiver, kernel, temperature)
    simulator = Simulator(scenario, precoder=t.precoder(scenario))
    return calibration_peaks(scenario, simulator, t.receiver, False, first=first, count=count)


def score_chunk(
    scenario: Scenario,
    method: str,
    weights,
    receiver: str,
    kernel: str,
    temperature: float,
    thresholds: Sequence[float],
    first: int,
    count: int,
) -> list[Scores]:
    """:func:`score` of ``count`` test frames from ``first`` on, with the transceiver built
    here (a task of a runner)."""
    t = build(scenario, method, weights, receiver, kernel, temperature)
    simulator = Simulator(scenario, precoder=t.precoder(scenario))
    return score(scenario, simulator, t.receiver, thresholds, False, first=first, count=count)


def _chunk_units(scenario: Scenario, stream: str, total: int, runner, make) -> list[Unit]:
    """One unit per chunk of ``total`` frames of ``stream`` (4 chunks per worker: an even load
    while the workers' speeds differ); ``make(first, count)`` gives a chunk's task."""
    chunks = frame_chunks(total, scenario.run["batch"], 4 * runner.workers)
    return [
        Unit(make(first, n), label=f"{stream} frames {first}-{first + n - 1}", scenario=scenario, frames=n)
        for first, n in chunks
    ]


def evaluate(
    scenario: Scenario,
    method: str = "baseline",
    weights=None,
    receiver: str = "omp",
    kernel: str | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
    threshold: float | None = None,
    progress=None,
    runner=None,
) -> dict:
    """Calibrate (unless ``threshold`` is given) and score ``method`` on run.frames test frames.

    ``weights``: a loaded weights.Weights for learned methods; ``receiver`` "omp" | "domp" (nn:
    its networks); ``kernel`` "cpp" | "numpy" | None (cpp when built). ``runner`` (None: this
    process, one pass): a runner of tasks.py / cluster.py that computes the frames in chunks
    (module docstring). Returns the metrics dict of isac-eval (p_md, p_fa, gospa, ser,
    angle_rmse_deg, range_rmse_m, frames, threshold, method, receiver)."""
    t = build(scenario, method, weights, receiver, kernel, temperature)
    if runner is None:
        simulator = Simulator(scenario, precoder=t.precoder(scenario))
        if threshold is None:
            threshold = calibrate(scenario, simulator, t.receiver, progress)
        scores = score(scenario, simulator, t.receiver, [threshold], progress, f"testing {method}")[0]
    else:
        # the kernel the receiver chose (its own default when None): every worker builds the same
        setup = (scenario, method, Shared(weights), receiver, getattr(t.receiver, "kernel", kernel), temperature)
        if threshold is None:
            total = scenario.run["calibration_frames"]
            units = _chunk_units(
                scenario, "calibration", total, runner, lambda f, n: task(calibration_chunk, *setup, f, n)
            )
            parts = runner.run(units, desc=f"calibrating {method}")
            peaks = np.concatenate([p for p, _ in parts])
            counts = np.concatenate([c for _, c in parts])
            threshold = calibrate_threshold(peaks, counts, scenario.scene["max_targets"], scenario.receiver["p_fa"])
        total = scenario.run["frames"]
        units = _chunk_units(scenario, "test", total, runner, lambda f, n: task(score_chunk, *setup, [threshold], f, n))
        scores = Scores.for_scenario(scenario)
        for part in runner.run(units, desc=f"testing {method}"):  # in chunk order: the same sums every run
            scores.merge(part[0])
    out = scores.summary()
    out["threshold"] = float(threshold)
    out["method"] = method
    out["receiver"] = t.receiver_name
    return out


__all__ = [
    "Scores",
    "batches",
    "calibrate",
    "calibration_chunk",
    "calibration_peaks",
    "evaluate",
    "frame_chunks",
    "progress_bar",
    "score",
    "score_chunk",
    "sense",
]
