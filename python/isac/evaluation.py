"""Evaluation of a receiver on a scenario (Sec. V-B): calibrate the OMP threshold to the
target p_fa on calibration frames, then score separate test frames with p_md (20),
p_fa (21), GOSPA (17), SER (22) and angle / range RMSE.

Methods:
  baseline  the receiver assumes the nominal lambda/2 array (Sec. III)
  perfect   the receiver knows the true (impaired) array; the transmitter is still the
            baseline of Sec. III-A ("perfect knowledge" of Figs. 7-8)
  impairment, dictionary
            transmitter AND receiver use the array learned by isac-train (a weights file):
            the LS beams (6)-(7) of the learned array and its dictionary in the receiver
            (parameter sharing, Sec. IV)
  nn        NNBL (Appendix A, trainer/nnbl.py): the precoder MLP and the receiver CNNs of an
            isac-train --method nn weights file (nn_transceiver); the threshold delta acts on the
            detection probabilities u^ (the "peaks" are u^ sorted in decreasing order, so the count
            is the number of u^ > delta), the positions are the first output slots
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import SPEED_OF_LIGHT, Scenario
from .model.array import ArrayModel, DictionaryArray, scenario_nominal_array, true_array
from .model.domp import DEFAULT_TEMPERATURE, DompResult, domp_inference, window_half_widths
from .model.grids import angle_grid, delay_grid, full_angle_grid
from .model.metrics import (calibrate_threshold, counts_for_threshold, false_alarm_probability,
                            gospa_assignment, misdetection_probability, rmse, symbol_error_rate)
from .model.ofdm import delay_dictionary, ml_detect
from .model.omp import Dictionaries, OmpResult, omp
from .model.reciprocal import reciprocal_filter
from .model.scene import positions
from .simulation import Frames, Simulator, baseline_precoder

METHODS = ("baseline", "perfect", "impairment", "dictionary", "nn")
LEARNED = ("impairment", "dictionary")
RECEIVERS = ("omp", "domp")
KERNELS = ("numpy", "cpp")


def learned_array(scenario: Scenario, weights_path, method: str | None = None) -> ArrayModel:
    """The array learned by isac-train, from a weights file validated against ``scenario``
    (and ``method`` when given): a PositionArray (impairment) or DictionaryArray (dictionary)."""
    from . import weights as weights_io

    return weights_io.load(weights_path, scenario, method).array(scenario.wavelength_m)


def receiver_array(scenario: Scenario, method: str, weights_path=None) -> ArrayModel:
    """The array the sensing receiver assumes for ``method`` (learned methods need the
    weights file of isac-train)."""
    if method in LEARNED:
        if weights_path is None:
            raise ValueError(f"method {method!r} needs a weights file (isac-train --method {method} --out W.safetensors)")
        return learned_array(scenario, weights_path, method)
    if method == "nn":
        raise ValueError("method 'nn' (NNBL) has no array: its transmitter and receiver are networks "
                         "(evaluation.nn_transceiver)")
    if weights_path is not None:
        raise ValueError(f"method {method!r} does not use a weights file; use --method impairment or dictionary")
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


def domp_dictionaries(scenario: Scenario, array: ArrayModel) -> Dictionaries:
    """Dictionaries of differentiable OMP (Sec. IV-B): the FIXED angle grid over [-90, 90] deg
    shared with the precoder's LS synthesis (``transmitter.beam_grid`` points, parameter
    sharing), and the delay grid over the range interval. The a-priori sector restricts the
    argmax instead of the grid."""
    angles = full_angle_grid(scenario.transmitter["beam_grid"])
    delays = delay_grid(scenario.range_interval_m, scenario.receiver["delay_grid"])
    return Dictionaries(angles, delays, array.steering(angles),
                        delay_dictionary(delays, scenario.ofdm["subcarriers"], scenario.ofdm["spacing_hz"]))


class SensingReceiver:
    """The sensing estimator after reciprocal filtering, for the array the receiver assumes:
    ``mode="omp"`` (Algorithm 1 on sector dictionaries) or ``"domp"`` (the inference step of
    differentiable OMP, Sec. IV-B: full-grid dictionary, sector-restricted argmax, softmax
    window of the resolutions (16) with ``temperature``, off-grid estimates). ``kernel``:
    "numpy" (the model, reference) or "cpp" (the C++ kernels, same results). Calling it on
    Y~ (B, K, S) runs T_max iterations and returns an OmpResult (DompResult for domp)."""

    def __init__(self, scenario: Scenario, array: ArrayModel, mode: str = "omp", kernel: str = "numpy",
                 temperature: float = DEFAULT_TEMPERATURE):
        if mode not in RECEIVERS:
            raise ValueError(f"receiver mode must be one of {', '.join(RECEIVERS)}, got {mode!r}")
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
        if mode == "domp" and not hasattr(array, "positions_m"):
            raise ValueError("receiver mode 'domp' recomputes atoms off the grid: it needs an array with element "
                             "positions (nominal, spacing vector), not a dictionary")
        self.mode, self.kernel, self.temperature = mode, kernel, float(temperature)
        self.max_targets = scenario.scene["max_targets"]
        self.array = array
        self.dictionaries = (omp_dictionaries if mode == "omp" else domp_dictionaries)(scenario, array)
        self.sector_rad = scenario.target_sector_rad
        self.wavelength_m = scenario.wavelength_m
        self.spacing_hz = scenario.ofdm["spacing_hz"]
        D = self.dictionaries
        if mode == "domp":
            K, S = array.antennas, scenario.ofdm["subcarriers"]
            self.half_widths = window_half_widths(K, S, self.spacing_hz, D.angles_rad, D.delays_s)
        self._cpp = None
        if kernel == "cpp":
            from . import DompKernel, OmpKernel  # the compiled module; ImportError names the reason

            self._cpp = OmpKernel(D.phi_a, D.phi_d) if mode == "omp" else DompKernel(
                D.phi_a, D.phi_d, D.angles_rad, D.delays_s, np.asarray(array.positions_m, np.float64),
                self.wavelength_m, self.spacing_hz, self.half_widths, self.temperature)

    def __call__(self, y_tilde: np.ndarray) -> OmpResult:
        D, T = self.dictionaries, self.max_targets
        y = np.ascontiguousarray(y_tilde, dtype=np.complex64)
        if self.mode == "omp":
            if self._cpp is None:
                return omp(y, D, T)
            ai, di, peaks, gains = self._cpp(y, T)
            return OmpResult(ai, di, D.angles_rad[ai], D.delays_s[di], peaks, gains)
        if self._cpp is None:
            return domp_inference(y, D, self.array.positions_m, self.wavelength_m, self.spacing_hz, T,
                                  self.half_widths, self.temperature, sector_rad=self.sector_rad)
        th, tau, peaks, gains, ai, di = self._cpp(y, T, sector_rad=np.asarray(self.sector_rad, np.float64))
        return DompResult(angle_index=ai, delay_index=di, angles_rad=th, delays_s=tau, peaks=peaks, gains=gains)


def sense(frames: Frames, receiver, max_targets: int | None = None) -> OmpResult:
    """Sensing receiver: reciprocal filtering (3) then T_max iterations of ``receiver`` (a
    SensingReceiver, or OMP dictionaries (8) for Algorithm 1 with ``max_targets``)."""
    y = reciprocal_filter(frames.y_sensing, frames.symbols)
    if isinstance(receiver, Dictionaries):
        return omp(y, receiver, max_targets)
    return receiver(y)


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


def calibrate(scenario: Scenario, simulator: Simulator, receiver, progress=None) -> float:
    """Threshold delta with p_fa (21) <= receiver.p_fa on the calibration frames, for a
    SensingReceiver (or OMP dictionaries (8))."""
    T = scenario.scene["max_targets"]
    peaks, counts = [], []
    with _progress(scenario.run["calibration_frames"], "calibrating", progress) as bar:
        for start, n in _batches(scenario.run["calibration_frames"], scenario.run["batch"]):
            frames = simulator.frames(start, n, "calibration")
            peaks.append(sense(frames, receiver, T).peaks)
            counts.append(frames.true_counts)
            bar.update(n)
    return calibrate_threshold(np.concatenate(peaks), np.concatenate(counts), T, scenario.receiver["p_fa"])


def transmitter_precoder(scenario: Scenario, method: str, array: ArrayModel) -> np.ndarray:
    """The ISAC precoder (5) of ``method``: LS beams of the nominal array (baseline, perfect),
    or of the learned array (impairment, dictionary: transmitter and receiver share it). A
    learned dictionary is synthesised on its own grid (as in training), not the scenario's
    ``transmitter.beam_grid``."""
    if method not in LEARNED:
        return baseline_precoder(scenario, None)
    if isinstance(array, DictionaryArray):
        scenario = scenario.with_overrides({"transmitter.beam_grid": int(array.grid_rad.shape[0])})
    return baseline_precoder(scenario, array)


class NnSensingReceiver:
    """NNBL receiver (Appendix A) on Y~ (B, K, S) -> OmpResult: ``peaks`` are the detection
    probabilities u^ sorted in decreasing order (so OmpResult.counts(delta) and
    metrics.calibrate_threshold count the u^ > delta), angles and delays the first T_max output
    slots (training pairs the first T slots with the T targets); indices and gains are zero."""

    def __init__(self, scenario: Scenario, net):
        import torch

        self.torch = torch
        self.net = net.eval()
        self.max_targets = scenario.scene["max_targets"]
        self.sector_rad = scenario.target_sector_rad

    def __call__(self, y_tilde: np.ndarray) -> OmpResult:
        torch = self.torch
        y = torch.as_tensor(np.ascontiguousarray(y_tilde, dtype=np.complex64))
        B, T = y.shape[0], self.max_targets
        lo = torch.full((B,), self.sector_rad[0], dtype=torch.float64)
        hi = torch.full((B,), self.sector_rad[1], dtype=torch.float64)
        with torch.no_grad():
            out = self.net.sense(y, lo, hi)
        peaks = -np.sort(-out.probabilities.double().numpy(), axis=1)
        zeros = np.zeros((B, T), np.int64)
        return OmpResult(zeros, zeros.copy(), out.angles_rad.numpy(), 2.0 * out.ranges_m.numpy() / SPEED_OF_LIGHT,
                         peaks, np.zeros((B, T, T), np.complex64))


def nn_transceiver(scenario: Scenario, weights_path) -> tuple[np.ndarray, NnSensingReceiver]:
    """NNBL from an isac-train --method nn weights file (validated against ``scenario``): the
    ISAC precoder (5) of the precoder MLP for the scenario's sectors, eta, phi and P, (K,)
    complex64, and the receiver networks as a SensingReceiver-like callable."""
    import torch

    from . import weights as weights_io
    from .trainer.nnbl import Nnbl, load_tensors

    w = weights_io.load(weights_path, scenario, "nn")
    net = Nnbl.for_scenario(scenario, weights_io.nnbl_config(w))
    load_tensors(net, w.tensors)
    net.eval()
    tx = scenario.transmitter
    (lo, hi), (c_lo, c_hi) = scenario.target_sector_rad, scenario.comm_sector_rad
    with torch.no_grad():
        f = net.precoders(torch.tensor([lo]), torch.tensor([hi]), c_lo, c_hi, tx["eta"], tx["phi_rad"], tx["power"])
    return f[0].numpy().astype(np.complex64), NnSensingReceiver(scenario, net)


def evaluate(scenario: Scenario, method: str = "baseline", progress=None, threshold: float | None = None,
             receiver: str = "omp", kernel: str = "numpy", temperature: float = DEFAULT_TEMPERATURE,
             weights=None) -> dict:
    """Calibrate (unless ``threshold`` is given) and score on run.frames test frames.

    The receiver assumes the array of ``method`` (learned methods: from the ``weights``
    file, which also gives the transmitter's array) and runs ``receiver`` ("omp" or "domp")
    on ``kernel``. Returns the metrics dict of isac-eval."""
    if method == "nn":  # NNBL: networks at both ends (receiver / kernel / temperature do not apply)
        if weights is None:
            raise ValueError("method 'nn' needs a weights file (isac-train --method nn --out W.safetensors)")
        precoder, sensor = nn_transceiver(scenario, weights)
        simulator = Simulator(scenario, precoder=precoder)
        receiver = "nn"
    else:
        array = receiver_array(scenario, method, weights)
        simulator = Simulator(scenario, precoder=transmitter_precoder(scenario, method, array))
        sensor = SensingReceiver(scenario, array, receiver, kernel, temperature)
    if threshold is None:
        threshold = calibrate(scenario, simulator, sensor, progress)
    rx = scenario.receiver
    scores = Scores(scenario.scene["max_targets"], rx["gospa_c_m"], rx["gospa_p"], rx["gospa_mu"])
    with _progress(scenario.run["frames"], f"testing {method}", progress) as bar:
        for start, n in _batches(scenario.run["frames"], scenario.run["batch"]):
            frames = simulator.frames(start, n, "test")
            scores.add(frames, sense(frames, sensor), threshold, ml_detect(frames.y_comm, frames.csi))
            bar.update(n)
    out = scores.summary()
    out["threshold"] = float(threshold)
    out["method"] = method
    out["receiver"] = receiver
    return out


__all__ = ["KERNELS", "LEARNED", "METHODS", "NnSensingReceiver", "learned_array", "nn_transceiver", "transmitter_precoder", "RECEIVERS", "Scores", "SensingReceiver", "calibrate", "domp_dictionaries",
           "evaluate", "omp_dictionaries", "receiver_array", "sense", "counts_for_threshold"]
