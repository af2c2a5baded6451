"""isac_omp_receiver: the baseline sensing receiver, OMP (Algorithm 1) on reciprocal-filtered
frames, with per-frame detections as PMT dicts."""
from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from ..evaluation import SensingReceiver
from ..model.domp import DEFAULT_TEMPERATURE
from ..model.array import scenario_nominal_array, spacing_array
from ..model.omp import OmpResult
from ..model.scene import positions
from . import _common as c

NAME = "isac_omp_receiver"
#: detected count/threshold of the paper's scenario (Sec. V-A defaults, baseline receiver,
#: impaired array): evaluation.calibrate on 1000 calibration frames at p_fa = 1e-2
DEFAULT_THRESHOLD = 3.039e5


KERNELS = ("numpy", "cpp")
MODES = ("omp", "domp")


def detections_dict(frame: int, result: OmpResult, b: int, threshold: float) -> dict:
    """The ``detections`` message of frame ``frame`` from row ``b`` of an OmpResult."""
    det = result.detections(b, threshold)
    pos = positions(det["angle_rad"], det["range_m"])
    return {"frame": frame, "count": int(det["angle_rad"].shape[0]), "valid": True,
            "angle_deg": np.rad2deg(det["angle_rad"]), "range_m": det["range_m"],
            "x_m": pos[:, 0], "y_m": pos[:, 1], "gain": np.abs(det["gain"]), "peak": det["peak"]}


def empty_detections(frame: int) -> dict:
    """The ``detections`` message of a frame that was skipped (valid = False)."""
    z = np.zeros(0)
    return {"frame": frame, "count": 0, "valid": False, "angle_deg": z, "range_m": z, "x_m": z, "y_m": z,
            "gain": z, "peak": z}


def receiver_setup(name: str, K, S, fc, spacing_hz, sector_deg, range_m, angle_grid, delay_grid, max_targets,
                   array, impairment):
    """Validated (Scenario, assumed ArrayModel) of a sensing receiver block; errors name
    ``name`` and the parameter. ``array``: "nominal" or K spacings (m)."""
    K = c.positive_int(name, "K", K)
    c.positive_int(name, "S", S)
    c.interval(name, "sector_deg", sector_deg, " (degrees)")
    c.interval(name, "range_m", range_m, " (m)")
    scenario = c.scenario(name, {
        "K": ("array.antennas", K), "S": ("ofdm.subcarriers", S), "fc": ("array.carrier_hz", fc),
        "spacing_hz": ("ofdm.spacing_hz", spacing_hz),
        "sector_deg": ("scene.target_sector_deg", list(sector_deg)), "range_m": ("scene.range_m", list(range_m)),
        "angle_grid": ("receiver.angle_grid", angle_grid), "delay_grid": ("receiver.delay_grid", delay_grid),
        "max_targets": ("scene.max_targets", max_targets), "impairment": ("array.impairment", impairment),
    })
    if isinstance(array, str):
        if array != "nominal":
            raise c.error(name, "array", f"must be 'nominal' or a vector of K spacings (m), got {array!r}")
        assumed = scenario_nominal_array(scenario)
    else:
        d = np.asarray(array, dtype=np.float64).reshape(-1)
        if d.size != K or not np.all(np.isfinite(d)) or np.any(d <= 0):
            raise c.error(name, "array", f"must be 'nominal' or K = {K} finite spacings > 0 (m), got {d.size} values")
        assumed = spacing_array(d, scenario.wavelength_m, scenario.array["impairment"])
    return scenario, assumed


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value) and value > 0


class isac_omp_receiver(gr.sync_block):
    """Reciprocal-filtered frames Y~ (vlen K*S, antenna-major) in; on the ``detections``
    message port, one PMT dict per frame: frame, count, valid, angle_deg, range_m, x_m, y_m
    (position (2), m), gain (|LS gain (13)|), peak (map maxima of the kept iterations).

    Dictionaries (8): ``evaluation.omp_dictionaries`` over the a-priori sector and range
    interval, for the array the receiver assumes: ``array="nominal"`` (the baseline,
    lambda/2 ULA) or a vector of K spacings d (m) under ``impairment`` ("spacing" =
    Example 1, or "cumulative"). The count stops at the first map maximum <= ``threshold``.
    Frames with NaN/Inf are not processed: counted in ``invalid_frames``, logged, and
    reported with valid = False and count 0.

    ``mode``: "omp" (Algorithm 1 on the sector dictionaries) or "domp" (the inference step of
    differentiable OMP, Sec. IV-B: full [-90, 90] deg grid of ``beam_grid`` angles shared
    with the precoder, argmax restricted to the sector, softmax window of the resolutions
    (16) with ``temperature``, off-grid estimates). ``kernel``: "numpy" (the model, the
    reference) or "cpp" (the C++ kernels ``OmpKernel`` / ``DompKernel``, same results). The
    estimator is ``self.sensor`` (an ``evaluation.SensingReceiver``), called on Y~ (B, K, S).
    ``weights``: a weights file of isac-train; its learned array replaces ``array``."""

    def __init__(self, K: int = 64, S: int = 256, fc: float = 60e9, spacing_hz: float = 120e3,
                 sector_deg=(-40.0, -20.0), range_m=(10.0, 190.0), angle_grid: int = 720, delay_grid: int = 200,
                 max_targets: int = 5, threshold: float = DEFAULT_THRESHOLD, array="nominal",
                 impairment: str = "spacing", kernel: str = "numpy", mode: str = "omp",
                 temperature: float = DEFAULT_TEMPERATURE, beam_grid: int = 720, weights: str = ""):
        self.threshold = c.number(NAME, "threshold", threshold, minimum=0.0)
        self.scenario, self.array = receiver_setup(
            NAME, K, S, fc, spacing_hz, sector_deg, range_m, angle_grid, delay_grid, max_targets, array, impairment)
        self.scenario = self.scenario.with_overrides({"transmitter.beam_grid": c.positive_int(NAME, "beam_grid",
                                                                                               beam_grid)})
        if weights:  # the array learned by isac-train replaces ``array``
            self.array = c.learned_array(NAME, weights, self.scenario)
        self.K, self.S = self.scenario.array["antennas"], self.scenario.ofdm["subcarriers"]
        self.max_targets = self.scenario.scene["max_targets"]
        if kernel not in KERNELS:
            raise c.error(NAME, "kernel", f"must be one of {', '.join(KERNELS)}, got {kernel!r}")
        if mode not in MODES:
            raise c.error(NAME, "mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
        if not _positive(temperature):
            raise c.error(NAME, "temperature", f"must be a finite number > 0, got {temperature!r}")
        try:
            self.sensor = SensingReceiver(self.scenario, self.array, mode, kernel, float(temperature))
        except (ImportError, AttributeError) as exc:
            raise c.error(NAME, "kernel", f"'cpp': the C++ kernels are not available: {exc}") from None
        self.dictionaries = self.sensor.dictionaries
        self.kernel, self.mode = kernel, mode
        #: frames per OMP call: bounds memory (a few N_theta x N_tau complex maps per frame,
        #: 1.1 MB each at the paper's sizes); numpy OMP costs 10-12 CPU ms/frame at B = 1..8
        self.batch = 8
        self.invalid_frames = 0
        gr.sync_block.__init__(self, name=NAME, in_sig=[(np.complex64, self.K * self.S)], out_sig=None)
        self.message_port_register_out(pmt.intern("detections"))

    def set_threshold(self, threshold: float) -> None:
        self.threshold = c.number(NAME, "threshold", threshold, minimum=0.0)

    def process(self, first_frame: int, y: np.ndarray) -> list[dict]:
        """Detections of frames Y~ (B, K, S) numbered from ``first_frame``: the model call
        behind ``work``."""
        finite = np.isfinite(y).all(axis=(1, 2))
        out = [empty_detections(first_frame + b) for b in range(y.shape[0])]
        good = np.nonzero(finite)[0]
        for start in range(0, good.size, self.batch):
            chunk = good[start:start + self.batch]
            result = self.sensor(y[chunk])
            for j, b in enumerate(chunk):
                out[b] = detections_dict(first_frame + int(b), result, j, self.threshold)
        for b in np.nonzero(~finite)[0]:
            self.invalid_frames += 1
            self.logger.warn(f"frame {first_frame + int(b)}: Y~ has NaN/Inf, skipped "
                             f"({self.invalid_frames} such frames so far)")
        return out

    def work(self, input_items, output_items):
        y = input_items[0]
        n = len(y)
        for det in self.process(self.nitems_read(0), y[:n].reshape(n, self.K, self.S)):
            self.message_port_pub(pmt.intern("detections"), c.make_dict(det))
        return n
