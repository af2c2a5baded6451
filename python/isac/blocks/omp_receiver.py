"""isac.omp_receiver: the sensing receiver of a method (transceiver layer) on reciprocal-filtered
frames: OMP (Algorithm 1), differentiable-OMP inference (Sec. IV-B) or the NNBL networks, with
per-frame detections as PMT dicts."""
from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from .. import transceiver
from ..model.domp import DEFAULT_TEMPERATURE
from ..model.omp import OmpResult
from ..model.scene import positions
from . import _common as c

NAME = "isac_omp_receiver"
#: detected count/threshold of the paper's scenario (Sec. V-A defaults, baseline receiver,
#: impaired array): evaluation.calibrate on 1000 calibration frames at p_fa = 1e-2
DEFAULT_THRESHOLD = 3.039e5


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


def receiver_scenario(name: str, **params):
    """Validated Scenario of a sensing receiver block's parameters; errors name ``name`` and the parameter."""
    c.positive_int(name, "K", params["K"])
    c.positive_int(name, "S", params["S"])
    c.interval(name, "target_sector_deg", params["target_sector_deg"], " (degrees)")
    c.interval(name, "range_m", params["range_m"], " (m)")
    params["target_sector_deg"], params["range_m"] = list(params["target_sector_deg"]), list(params["range_m"])
    return c.scenario(name, params)


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value) and value > 0


class omp_receiver(gr.sync_block):
    """Reciprocal-filtered frames Y~ (vlen K*S, antenna-major) in; on the ``detections``
    message port, one PMT dict per frame: frame, count, valid, angle_deg, range_m, x_m, y_m
    (position (2), m), gain (|LS gain (13)|), peak (map maxima of the kept iterations; for nn the
    detection probabilities).

    The estimator is the sensing receiver of ``method`` (transceiver layer): "baseline" (the
    nominal lambda/2 array), "perfect" (the true array of spacing_std_m / impairment_seed),
    "impairment" / "dictionary" (the learned array of ``weights``) or "nn" (the NNBL receiver
    networks of ``weights``); ``method=""``: the method of the weights, else baseline.
    ``receiver``: "omp" (Algorithm 1 on the sector dictionaries (8)) or "domp" (the inference
    step of differentiable OMP: full [-90, 90] deg grid of ``beam_grid`` angles shared with the
    precoder, argmax restricted to the sector, softmax window of the resolutions (16) with
    ``temperature``, off-grid estimates). ``kernel``: "cpp" (C++ kernels), "numpy" (the model),
    "" = cpp when built. The count stops at the first peak <= ``threshold``. Frames with NaN/Inf
    are not processed: counted in ``invalid_frames``, logged, and reported with valid = False and
    count 0. The estimator is ``self.sensor``, called on Y~ (B, K, S)."""

    def __init__(self, K: int = 64, S: int = 256, fc: float = 60e9, spacing_hz: float = 120e3,
                 target_sector_deg=(-40.0, -20.0), range_m=(10.0, 190.0), angle_grid: int = 720,
                 delay_grid: int = 200, max_targets: int = 5, threshold: float = DEFAULT_THRESHOLD,
                 method: str = "", weights="", receiver: str = "omp", kernel: str = "",
                 temperature: float = DEFAULT_TEMPERATURE, beam_grid: int = 720, impairment: str = "spacing",
                 spacing_std_m: float = 2e-4, impairment_seed: int = 1, noise_power: float = 1.0,
                 weights_other_array: bool = False):
        self.threshold = c.number(NAME, "threshold", threshold, minimum=0.0)
        self.scenario = receiver_scenario(NAME, K=K, S=S, fc=fc, spacing_hz=spacing_hz,
                                          target_sector_deg=target_sector_deg, range_m=range_m,
                                          angle_grid=angle_grid, delay_grid=delay_grid, max_targets=max_targets,
                                          beam_grid=beam_grid, impairment=impairment, spacing_std_m=spacing_std_m,
                                          impairment_seed=impairment_seed, noise_power=noise_power)
        self.method, self.weights = c.load_weights(NAME, weights, self.scenario, method, weights_other_array)
        self.K, self.S = self.scenario.array["antennas"], self.scenario.ofdm["subcarriers"]
        self.max_targets = self.scenario.scene["max_targets"]
        if receiver not in transceiver.RECEIVERS:
            raise c.error(NAME, "receiver", f"must be one of {', '.join(transceiver.RECEIVERS)}, got {receiver!r}")
        if kernel not in ("",) + transceiver.KERNELS:
            raise c.error(NAME, "kernel", f"must be one of {', '.join(transceiver.KERNELS)} or '' (cpp when "
                                          f"built), got {kernel!r}")
        if not _positive(temperature):
            raise c.error(NAME, "temperature", f"must be a finite number > 0, got {temperature!r}")
        try:
            self.sensor = transceiver.sensing_receiver(self.scenario, self.method, self.weights, receiver,
                                                       kernel or None, float(temperature))
        except (ImportError, AttributeError) as exc:
            raise c.error(NAME, "kernel", f"'cpp': the C++ kernels are not available: {exc}") from None
        except ValueError as exc:
            raise c.error(NAME, "receiver", str(exc)) from None
        if self.sensor.receiver == "nn" and self.threshold >= 1.0:
            raise c.error(NAME, "threshold", f"must be < 1 with method 'nn' (its peaks are detection probabilities), "
                                             f"got {self.threshold:g}")
        self.array = getattr(self.sensor, "array", None)
        self.dictionaries = getattr(self.sensor, "dictionaries", None)
        self.receiver = self.sensor.receiver
        self.kernel = getattr(self.sensor, "kernel", "")
        #: frames per estimator call: bounds memory (a few N_theta x N_tau complex maps per frame,
        #: 1.1 MB each at the paper's sizes)
        self.batch = 8
        self.invalid_frames = 0
        gr.sync_block.__init__(self, name=NAME, in_sig=[(np.complex64, self.K * self.S)], out_sig=None)
        self.message_port_register_out(pmt.intern("detections"))

    @classmethod
    def from_scenario(cls, scenario, **kwargs) -> "omp_receiver":
        """The block for ``scenario`` (its parameters taken from it), plus ``kwargs`` (method, weights, ...)."""
        return cls(**c.scenario_parameters(cls, scenario), **kwargs)

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
