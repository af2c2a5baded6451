"""isac.omp_receiver: the sensing receiver of a method (transceiver layer) on reciprocal-filtered
frames: OMP (Algorithm 1), differentiable-OMP inference (Sec. IV-B) or the NNBL networks, with
per-frame detections as PMT dicts."""

from __future__ import annotations

import collections
import math
import queue

import numpy as np
import pmt
from gnuradio import gr

from .. import transceiver
from ..model.domp import DEFAULT_TEMPERATURE
from ..model.omp import OmpResult
from ..model.scene import positions
from . import _common as c
from ._thread_state import HeldThreadState

NAME = "isac_omp_receiver"
#: detected count/threshold of the paper's scenario (Sec. V-A defaults, baseline receiver,
#: impaired array): evaluation.calibrate on 1000 calibration frames at p_fa = 1e-2
DEFAULT_THRESHOLD = 3.039e5
try:  # max |re|, |im| per frame in one C++ pass (the numpy expression below when not built)
    from .. import frame_max_abs as _FRAME_MAX_ABS
except ImportError:
    _FRAME_MAX_ABS = None
#: frames per chunk handed to a worker thread when the block runs on several threads (2 CPUs,
#: baseline OMP: chunks of 2, 4, 8, 12, 16, 32 frames gave 777, 923, 1012-1074, 933, 871, 849
#: frames/s: per-chunk Python costs against the in-flight limit of 2 chunks per thread)
PIPELINE_CHUNK = 8
#: chunks in flight per worker thread (running and queued)
PIPELINE_DEPTH = 2


def detections_dict(frame: int, result: OmpResult, b: int, threshold: float) -> dict:
    """The ``detections`` message of frame ``frame`` from row ``b`` of an OmpResult."""
    det = result.detections(b, threshold)
    pos = positions(det["angle_rad"], det["range_m"])
    return {
        "frame": frame,
        "count": int(det["angle_rad"].shape[0]),
        "valid": True,
        "angle_deg": np.rad2deg(det["angle_rad"]),
        "range_m": det["range_m"],
        "x_m": pos[:, 0],
        "y_m": pos[:, 1],
        "gain": np.abs(det["gain"]),
        "peak": det["peak"],
    }


#: keys of the ``detections`` message, in order; the vectors hold ``count`` entries
DETECTION_VECTORS = ("angle_deg", "range_m", "x_m", "y_m", "gain", "peak")


class DetectionBatch:
    """The ``detections`` messages of B frames as arrays: frame, count, valid (B,) and the
    vectors of DETECTION_VECTORS (B, T_max), row b valid up to count[b]. A row not filled is a
    skipped frame (valid False, count 0)."""

    def __init__(self, first_frame: int, B: int, slots: int):
        self.frame = first_frame + np.arange(B, dtype=np.int64)
        self.count = np.zeros(B, np.int64)
        self.valid = np.zeros(B, bool)
        self.vectors = {k: np.zeros((B, slots)) for k in DETECTION_VECTORS}

    def fill(self, rows, result: OmpResult, threshold: float, scales: np.ndarray) -> None:
        """Rows ``rows`` from ``result`` (one result row per entry of rows), as
        :func:`detections_dict` gives them; ``scales`` (one per row, powers of two) undo an input
        scaling: gains times the scale, peaks times its square."""
        rows = np.asarray(rows, dtype=np.int64)
        peaks = result.peaks * (scales * scales)[:, None]  # exact: powers of two
        counts = np.cumprod(peaks > threshold, axis=-1).sum(axis=-1)  # OmpResult.counts on the unscaled peaks
        T = result.peaks.shape[1]
        if T > self.vectors["peak"].shape[1]:
            self.vectors = {k: np.pad(v, ((0, 0), (0, T - v.shape[1]))) for k, v in self.vectors.items()}
        v = self.vectors
        xy = positions(result.angles_rad, result.ranges_m)
        gains = np.abs(result.gains[np.arange(rows.size), np.maximum(counts - 1, 0), :])
        v["angle_deg"][rows, :T] = np.rad2deg(result.angles_rad)
        v["range_m"][rows, :T] = result.ranges_m
        v["x_m"][rows, :T] = xy[..., 0]
        v["y_m"][rows, :T] = xy[..., 1]
        v["gain"][rows, :T] = gains * scales[:, None]
        v["peak"][rows, :T] = peaks
        self.count[rows] = counts
        self.valid[rows] = True

    def dicts(self) -> list[dict]:
        """The messages as python dicts (those of :func:`detections_dict` / :func:`empty_detections`)."""
        out = []
        for b in range(self.count.shape[0]):
            n = int(self.count[b])
            d = {"frame": int(self.frame[b]), "count": n, "valid": bool(self.valid[b])}
            d.update({k: self.vectors[k][b, :n] for k in DETECTION_VECTORS})
            out.append(d)
        return out

    def pmts(self) -> list:
        """The messages as PMT dicts (``_common.make_dicts``: the same as make_dict of :meth:`dicts`)."""
        return c.make_dicts(
            [
                ("frame", self.frame),
                ("count", self.count),
                ("valid", self.valid),
                *((k, self.vectors[k]) for k in DETECTION_VECTORS),
            ],
            self.count,
        )


def empty_detections(frame: int) -> dict:
    """The ``detections`` message of a frame that was skipped (valid = False)."""
    z = np.zeros(0)
    return {
        "frame": frame,
        "count": 0,
        "valid": False,
        "angle_deg": z,
        "range_m": z,
        "x_m": z,
        "y_m": z,
        "gain": z,
        "peak": z,
    }


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


class omp_receiver(HeldThreadState, gr.sync_block):
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
    count 0. The estimator is ``self.sensor``, called on Y~ (B, K, S).

    Amplitudes: the estimators work in single precision, where |map|^2 of a frame with
    |Y~| >~ 1e12 overflows. For the array methods a frame whose largest |Y~| lies outside
    [2^-40, ``max_amplitude``] is multiplied by a power of two 2^-e before the estimator (exact:
    the same cells, peaks and gains scaled by 2^-2e and 2^-e, undone on the results), so its
    detections equal those of the unscaled computation. For nn (networks, not scale-free) such a
    frame is reported with valid = False and counted in ``invalid_frames``.

    A chunk of frames whose estimation raises (e.g. MemoryError) is retried frame by frame; a
    failing frame is reported with valid = False, counted in ``failed_frames`` and logged, and the
    stream goes on; 32 failed frames in a row stop the flowgraph (``fatal_error``). A
    ``frame_shape`` tag on the input with another K x S (same K*S) stops the flowgraph with an
    error naming both blocks. ``set_threads(n)`` estimates the frames on n worker threads,
    each with its own estimator (chunks of PIPELINE_CHUNK frames handed out as they arrive and
    consumed in order: the same detections; not for nn)."""

    def __init__(
        self,
        K: int = 64,
        S: int = 256,
        fc: float = 60e9,
        spacing_hz: float = 120e3,
        target_sector_deg=(-40.0, -20.0),
        range_m=(10.0, 190.0),
        angle_grid: int = 720,
        delay_grid: int = 200,
        max_targets: int = 5,
        threshold: float = DEFAULT_THRESHOLD,
        method: str = "",
        weights="",
        receiver: str = "omp",
        kernel: str = "",
        temperature: float = DEFAULT_TEMPERATURE,
        beam_grid: int = 720,
        impairment: str = "spacing",
        spacing_std_m: float = 2e-4,
        impairment_seed: int = 1,
        gain_std_db: float = 0.0,
        phase_std_deg: float = 0.0,
        coupling_taps: int = 0,
        coupling_db: float = -20.0,
        dead_elements: int = 0,
        dead_list=(),
        weak_gain: float = 0.0,
        noise_power: float = 1.0,
        weights_other_array: bool = False,
    ):
        self.threshold = c.number(NAME, "threshold", threshold, minimum=0.0)
        self.scenario = receiver_scenario(NAME, **c.scenario_arguments(locals()))
        self.method, self.weights = c.load_weights(NAME, weights, self.scenario, method, weights_other_array)
        self.K, self.S = self.scenario.array["antennas"], self.scenario.ofdm["subcarriers"]
        self.max_targets = self.scenario.scene["max_targets"]
        if receiver not in transceiver.RECEIVERS:
            raise c.error(NAME, "receiver", f"must be one of {', '.join(transceiver.RECEIVERS)}, got {receiver!r}")
        if kernel not in ("",) + transceiver.KERNELS:
            raise c.error(
                NAME,
                "kernel",
                f"must be one of {', '.join(transceiver.KERNELS)} or '' (cpp when built), got {kernel!r}",
            )
        if not _positive(temperature):
            raise c.error(NAME, "temperature", f"must be a finite number > 0, got {temperature!r}")
        try:
            self.sensor = transceiver.sensing_receiver(
                self.scenario, self.method, self.weights, receiver, kernel or None, float(temperature)
            )
        except (ImportError, AttributeError) as exc:
            raise c.error(NAME, "kernel", f"'cpp': the C++ kernels are not available: {exc}") from None
        except ValueError as exc:
            raise c.error(NAME, "receiver", str(exc)) from None
        if self.sensor.receiver == "nn" and self.threshold >= 1.0:
            raise c.error(
                NAME,
                "threshold",
                f"must be < 1 with method 'nn' (its peaks are detection probabilities), got {self.threshold:g}",
            )
        self.array = getattr(self.sensor, "array", None)
        self.dictionaries = getattr(self.sensor, "dictionaries", None)
        self.receiver = self.sensor.receiver
        self.kernel = getattr(self.sensor, "kernel", "")
        #: frames per estimator call: bounds memory (numpy: a few N_theta x N_tau complex maps per
        #: frame, 1.1 MB each at the paper's sizes; the C++ kernels work frame by frame)
        self.batch = 32 if self.kernel == "cpp" else 8
        self.invalid_frames = 0
        self.failures = c.FrameFailures(self)
        self.fatal_error = None
        #: optional handler(block, message) of a failure that stops the flowgraph (flowgraph.SimFlowgraph)
        self.on_fatal = None
        self._sensor_args = (self.scenario, self.method, self.weights, receiver, kernel or None, float(temperature))
        self.threads = 1
        self._sensors: list = []
        self._pool = None
        #: pipelined estimation: (first frame, frame count, future) of the chunks in flight, in order
        self._inflight: collections.deque = collections.deque()
        self._launched = 0  # the first frame not yet handed to a worker
        self._idle: queue.SimpleQueue | None = None  # estimators of the worker threads
        #: largest |Y~| given to the estimator unscaled: |map|^2 <= 2 (K S |Y~|)^2 stays below
        #: 2^-21 of the single-precision range
        self.max_amplitude = math.sqrt(np.finfo(np.float32).max / 2.0**22) / (self.K * self.S)
        self.min_amplitude = 2.0**-40
        gr.sync_block.__init__(self, name=NAME, in_sig=[(np.complex64, self.K * self.S)], out_sig=None)
        self.message_port_register_out(pmt.intern("detections"))

    @classmethod
    def from_scenario(cls, scenario, **kwargs) -> "omp_receiver":
        """The block for ``scenario`` (its parameters taken from it), plus ``kwargs`` (method, weights, ...)."""
        return cls(**c.scenario_parameters(cls, scenario), **kwargs)

    @property
    def failed_frames(self) -> int:
        return self.failures.count

    def set_threads(self, threads: int) -> None:
        """Estimate the frames on ``threads`` worker threads (their own kernels: the same
        results; ``work`` pipelines chunks of frames over them, ``detect`` splits its frames).
        Method nn keeps one (its networks use torch's threads)."""
        self.threads = c.positive_int(NAME, "threads", threads)

    def set_threshold(self, threshold: float) -> None:
        self.threshold = c.number(NAME, "threshold", threshold, minimum=0.0)

    def _estimators(self, count: int) -> list:
        """``count`` estimators: self.sensor and copies (built once, kept in self._sensors)."""
        while len(self._sensors) < count - 1:
            self._sensors.append(transceiver.sensing_receiver(*self._sensor_args))
        return [self.sensor, *self._sensors[: count - 1]]

    def _workers(self, frames: int) -> list:
        """The estimators for a call on ``frames`` frames (at least two frames each)."""
        return self._estimators(1 if self.receiver == "nn" else max(1, min(self.threads, math.ceil(frames / 2))))

    def _estimate(self, sensor, y: np.ndarray, frames: np.ndarray, scales: np.ndarray, out: DetectionBatch) -> list:
        """Detections of ``frames`` (indices into y) into ``out``, in chunks of ``self.batch``
        (contiguous runs are passed as views); a chunk that raises is retried frame by frame.
        Returns [(index, exception)] of the frames that failed."""
        failed = []
        for start in range(0, frames.size, self.batch):
            chunk = frames[start : start + self.batch]
            lo, hi = int(chunk[0]), int(chunk[-1]) + 1
            try:
                # a view for the C++ kernels; a fresh array for numpy / torch, whose BLAS may round
                # differently with the alignment of a view into the stream buffer
                result = sensor(y[lo:hi] if hi - lo == chunk.size and self.kernel == "cpp" else y[chunk])
            except Exception:  # noqa: BLE001 - isolate the failing frames
                for b in chunk:
                    try:
                        one = sensor(y[b : b + 1] if self.kernel == "cpp" else y[[b]])
                    except Exception as exc:  # noqa: BLE001
                        failed.append((int(b), exc))
                        continue
                    out.fill([b], one, self.threshold, scales[b : b + 1])
                continue
            out.fill(chunk, result, self.threshold, scales[chunk])
        return failed

    def _scan(self, first_frame: int, y: np.ndarray):
        """(y, scales, good, nonfinite) of frames Y~ (B, K, S): the finite frames' indices
        ``good``, those with NaN/Inf ``nonfinite``, and y with the frames outside the amplitude
        range scaled by 2^-e (``scales`` = 2^e, a copy then). For nn such frames are dropped
        from ``good`` and logged invalid (the only state it changes: call it from the block's
        thread for nn)."""
        B = y.shape[0]
        # one pass gives finiteness and magnitude: max |re|, |im| (NaN propagates through max)
        if _FRAME_MAX_ABS is not None:
            amax = _FRAME_MAX_ABS(y)
        else:
            amax = np.abs(y.reshape(B, -1).view(np.float32)).max(axis=1) if B else np.zeros(0, np.float32)
        finite = np.isfinite(amax)
        scales = np.ones(B)
        extreme = finite & ((amax > self.max_amplitude) | ((amax > 0) & (amax < self.min_amplitude)))
        if np.any(extreme):
            if self.receiver == "nn":
                for b in np.nonzero(extreme)[0]:
                    self.invalid_frames += 1
                    self.logger.warn(
                        f"frame {first_frame + int(b)}: |Y~| up to {float(amax[b]):.3g} lies outside "
                        f"[{self.min_amplitude:.3g}, {self.max_amplitude:.3g}], where the networks' "
                        f"single precision holds: skipped ({self.invalid_frames} invalid frames so far)"
                    )
                finite &= ~extreme
            else:
                y = y.copy()
                for b in np.nonzero(extreme)[0]:
                    e = math.frexp(float(amax[b]))[1]  # amax = m 2^e, m in [0.5, 1)
                    y[b] = np.ldexp(y[b].view(np.float32), -e).view(np.complex64)
                    scales[b] = math.ldexp(1.0, e)
        return y, scales, np.nonzero(finite)[0], np.nonzero(~np.isfinite(amax))[0]

    def _account(self, first_frame: int, good: np.ndarray, failed: list, nonfinite: np.ndarray) -> None:
        """Count and log the failed and the NaN/Inf frames of a batch, in frame order (in the
        block's thread): 32 failures in a row raise _GiveUp."""
        bad = dict(failed)
        for b in good:
            if b in bad:
                self.failures.failed(first_frame + int(b), bad[b])
                if self.failures.fatal:
                    raise _GiveUp(
                        f"{self.alias()}: {self.failures.consecutive} frames in a row failed, last: "
                        f"{type(bad[b]).__name__}: {bad[b]}"
                    )
            else:
                self.failures.ok()
        for b in nonfinite:
            self.invalid_frames += 1
            self.logger.warn(
                f"frame {first_frame + int(b)}: Y~ has NaN/Inf, skipped ({self.invalid_frames} such frames so far)"
            )

    def detect(self, first_frame: int, y: np.ndarray) -> DetectionBatch:
        """Detections of frames Y~ (B, K, S) numbered from ``first_frame``, as arrays: the model
        call behind ``work``. With threads > 1 the frames are split over the estimators (one
        share each, in parallel)."""
        out = DetectionBatch(first_frame, y.shape[0], self.max_targets)
        y, scales, good, nonfinite = self._scan(first_frame, y)
        sensors = self._workers(good.size)
        if len(sensors) > 1:  # contiguous shares, one per estimator
            parts = np.array_split(good, len(sensors))
            futures = [
                self._executor().submit(self._estimate, sensors[w], y, parts[w], scales, out)
                for w in range(1, len(parts))
            ]
            failed = self._estimate(sensors[0], y, parts[0], scales, out)
            for fut in futures:
                failed += fut.result()
        else:
            failed = self._estimate(sensors[0], y, good, scales, out)
        self._account(first_frame, good, failed, nonfinite)
        return out

    def _executor(self):
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix=NAME)
        return self._pool

    # --- pipelined estimation (threads > 1) ----------------------------------------------------
    def _chunk_job(self, first_frame: int, y: np.ndarray):
        """Estimate one chunk of frames on an idle estimator (a worker thread's job): returns
        (detections, good, failed, nonfinite) for :meth:`_account` in the block's thread."""
        sensor = self._idle.get()  # one per worker thread: never waits
        try:
            out = DetectionBatch(first_frame, y.shape[0], self.max_targets)
            y, scales, good, nonfinite = self._scan(first_frame, y)
            failed = self._estimate(sensor, y, good, scales, out)
            return out, good, failed, nonfinite
        finally:
            self._idle.put(sensor)

    def _work_pipelined(self, frames: np.ndarray, read: int) -> int:
        """``work`` with threads > 1: the frames are handed to the worker threads in chunks of
        PIPELINE_CHUNK as they arrive, without waiting for the earlier chunks (a thread that gets
        less CPU, e.g. one sharing a core with the other blocks, takes fewer chunks), and are
        consumed, with their detections published, in order as their chunks finish. Frames in
        flight stay unconsumed in the input buffer (views of it are estimated), at most
        PIPELINE_CHUNK x PIPELINE_DEPTH x threads of them. Waits (GIL released) for the oldest chunk only
        when none has finished."""
        n = frames.shape[0]
        if self._idle is None:  # one estimator per worker thread
            self._idle = queue.SimpleQueue()
            for sensor in self._estimators(self.threads):
                self._idle.put(sensor)
        start = self._launched - read  # the frames in flight: handed out, not yet consumed
        limit = min(n, PIPELINE_CHUNK * PIPELINE_DEPTH * self.threads)
        while start < limit:
            m = min(PIPELINE_CHUNK, n - start)
            fut = self._executor().submit(self._chunk_job, read + start, frames[start : start + m])
            self._inflight.append((read + start, m, fut))
            start += m
        self._launched = read + start
        port = c.key("detections")
        consumed = 0
        while (
            self._inflight and consumed + self._inflight[0][1] <= n and (consumed == 0 or self._inflight[0][2].done())
        ):
            first, m, fut = self._inflight.popleft()
            out, good, failed, nonfinite = fut.result()
            self._account(first, good, failed, nonfinite)
            for msg in out.pmts():
                self.message_port_pub(port, msg)
            consumed += m
        return consumed

    def process(self, first_frame: int, y: np.ndarray) -> list[dict]:
        """Detections of frames Y~ (B, K, S) numbered from ``first_frame``, one dict per frame
        (the ``detections`` messages of ``work``)."""
        return self.detect(first_frame, y).dicts()

    def start(self) -> bool:
        super().start()
        self._inflight.clear()
        self._launched = self.nitems_read(0)
        self._idle = None  # the worker threads' estimators, filled by the first pipelined call
        return True

    def stop(self) -> bool:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._inflight.clear()
        return super().stop()

    def work(self, input_items, output_items):
        try:
            return self._work(input_items)
        except _GiveUp as exc:
            return c.stop_flowgraph(self, str(exc))
        except Exception as exc:  # noqa: BLE001 - not a frame's failure: the block cannot go on
            return c.stop_flowgraph(self, f"{self.alias()}: {type(exc).__name__}: {exc}")

    def _work(self, input_items):
        y = input_items[0]
        n = len(y)
        read = self.nitems_read(0)
        if read == 0:
            problem = c.shape_mismatch(self, 0, self.K, self.S, n)
            if problem:
                return c.stop_flowgraph(self, problem)
        frames = y[:n].reshape(n, self.K, self.S)
        if self.threads > 1 and self.receiver != "nn":
            return self._work_pipelined(frames, read)
        port = c.key("detections")
        for msg in self.detect(read, frames).pmts():
            self.message_port_pub(port, msg)
        return n


class _GiveUp(Exception):
    """Too many frames in a row failed: the block stops the flowgraph."""
