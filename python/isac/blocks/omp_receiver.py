"""isac.omp_receiver: the sensing receiver of a method (transceiver layer) on reciprocal-filtered
frames: OMP (Algorithm 1), differentiable-OMP inference (Sec. IV-B), the NNBL networks or a
registered receiver, with per-frame detections as messages."""

from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from .. import transceiver
from ..messages import Detections
from ..model.domp import DEFAULT_TEMPERATURE
from ..transceiver.stream import StreamSensing
from . import base
from .weights import block_weights

NAME = "isac_omp_receiver"
#: detected count/threshold of the paper's scenario (Sec. V-A defaults, baseline receiver,
#: impaired array): evaluation.calibrate on 1000 calibration frames at p_fa = 1e-2
DEFAULT_THRESHOLD = 3.039e5


class omp_receiver(base.FrameBlock, gr.sync_block):
    """Reciprocal-filtered frames Y~ in; on the ``detections`` message port one messages.Detections
    per frame (frame, count, valid, angle_deg, range_m, x_m, y_m, gain, peak).

    The estimator is the sensing receiver of ``method`` on the ``scenario`` (transceiver layer):
    "baseline" (the nominal lambda/2 array), "perfect" (the true array), "impairment" /
    "dictionary" (the learned array of ``weights``), "nn" (the NNBL networks of ``weights``) or a
    registered method; ``method=""``: the method of the weights, else baseline. ``receiver``: "omp"
    (Algorithm 1 on the sector dictionaries (8)), "domp" (the inference step of differentiable OMP,
    with the softmax ``temperature``) or a registered receiver; ``kernel``: "cpp", "numpy" or ""
    (cpp when built). ``threshold``: delta of Algorithm 1 (for nn: a detection probability < 1).

    Frames with NaN/Inf are skipped (detections with valid False; counted in ``invalid_frames``),
    frames outside the single-precision range are rescaled by a power of two (exact) or, for a
    receiver that cannot be rescaled, skipped (transceiver.stream); a frame whose estimation
    raises is flagged, counted and logged (base.FrameBlock). ``set_threads(n)`` runs the estimation
    on n worker threads, pipelined over the frames as they arrive (the same detections)."""

    NAME = NAME

    def __init__(
        self,
        scenario=None,
        threshold: float = DEFAULT_THRESHOLD,
        method: str = "",
        weights="",
        receiver: str = "omp",
        kernel: str = "",
        temperature: float = DEFAULT_TEMPERATURE,
        weights_other_array: bool = False,
    ):
        self.setup(scenario)
        threshold = base.parameter(NAME, "threshold", threshold)
        self.method, self.weights = block_weights(NAME, self.scenario, method, weights, weights_other_array)
        base.choice(NAME, "receiver", receiver, transceiver.receivers())
        if kernel not in ("",) + transceiver.KERNELS:
            raise base.error(
                NAME,
                "kernel",
                f"must be one of {', '.join(transceiver.KERNELS)} or '' (cpp when built), got {kernel!r}",
            )
        base.parameter(NAME, "temperature", temperature)
        args = (self.scenario, self.method, self.weights, receiver, kernel or None, float(temperature))
        try:
            self.sensing = StreamSensing(lambda: transceiver.sensing_receiver(*args), threshold)
        except (ImportError, AttributeError) as exc:
            raise base.error(NAME, "kernel", f"'cpp': the C++ kernels are not available: {exc}") from None
        except ValueError as exc:
            text = str(exc)
            if text.startswith(f"method {self.method!r}: "):  # the method refuses the frames (nn on M > 1 symbols)
                raise base.error(NAME, "method", text[len("method ") :]) from None
            raise base.error(NAME, "receiver", text) from None
        self.sensor = self.sensing.receiver
        self.set_threshold(threshold)
        self.receiver = self.sensor.receiver
        self.kernel = getattr(self.sensor, "kernel", "")
        self.array = getattr(self.sensor, "array", None)
        self.dictionaries = getattr(self.sensor, "dictionaries", None)
        self.invalid_frames = 0
        gr.sync_block.__init__(self, name=NAME, in_sig=[(np.complex64, self.geometry.array_items)], out_sig=None)
        self.message_port_register_out(pmt.intern("detections"))

    @property
    def threshold(self) -> float:
        return self.sensing.threshold

    def set_threshold(self, threshold: float) -> None:
        threshold = base.parameter(NAME, "threshold", threshold)
        if getattr(self.sensor, "peaks", "map") == "probability" and threshold >= 1.0:
            raise base.error(
                NAME,
                "threshold",
                f"must be < 1 with receiver {self.sensor.receiver!r} (its peaks are detection probabilities), "
                f"got {threshold:g}",
            )
        self.sensing.threshold = threshold

    def set_threads(self, threads: int) -> None:
        """Estimate the frames on ``threads`` worker threads (their own receivers: the same results;
        a receiver with threads of its own, NNBL, keeps one)."""
        self.sensing.set_threads(base.integer(NAME, "threads", threads))

    @property
    def threads(self) -> int:
        return self.sensing.threads

    def _account(self, sensed) -> None:
        """Count and log a chunk's failed, NaN/Inf and skipped frames, in frame order (in the
        block's thread); too many failures in a row raise base.GiveUp."""
        first = int(sensed.detections.frame[0]) if len(sensed.detections) else 0
        bad = dict(sensed.failed)
        for b in sensed.good:
            if b in bad:
                self.frame_failed(first + int(b), bad[b])
            else:
                self.frame_ok()
        for b in sensed.nonfinite:
            self.invalid_frames += 1
            self.logger.warn(
                f"frame {first + int(b)}: Y~ has NaN/Inf, skipped ({self.invalid_frames} such frames so far)"
            )
        for b in sensed.skipped:
            self.invalid_frames += 1
            self.logger.warn(
                f"frame {first + int(b)}: |Y~| up to {float(sensed.amplitudes[b]):.3g} lies outside "
                f"[{self.sensing.min_amplitude:.3g}, {self.sensing.max_amplitude:.3g}], where the receiver's "
                f"single precision holds: skipped ({self.invalid_frames} invalid frames so far)"
            )

    def detect(self, first_frame: int, y: np.ndarray):
        """The sensing of frames Y~ numbered from ``first_frame`` (transceiver.stream.Sensed), its
        failures counted and logged: the model call behind ``work``."""
        sensed = self.sensing.detect(first_frame, y)
        self._account(sensed)
        return sensed

    def process(self, first_frame: int, y: np.ndarray) -> list[Detections]:
        """The detections of frames Y~ numbered from ``first_frame``, one record per frame (the
        ``detections`` messages of ``work``)."""
        return self.detect(first_frame, y).detections.records()

    def start(self) -> bool:
        super().start()
        self.sensing.reset()
        return True

    def stop(self) -> bool:
        self.sensing.close()
        return super().stop()

    def work_frames(self, input_items, output_items):
        n = len(input_items[0])
        read = self.nitems_read(0)
        frames = self.array_input(input_items[0], 0, n)
        port = pmt.intern("detections")
        if self.sensing.threads > 1 and self.sensing.parallel:
            consumed, done = self.sensing.pipeline(read, frames)
        else:
            consumed, done = n, [self.sensing.detect(read, frames)]
        for sensed in done:
            self._account(sensed)
            for msg in sensed.detections.pmts():
                self.message_port_pub(port, msg)
        return consumed
