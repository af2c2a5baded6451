"""Sensing the frames of a stream with a method's receiver: what a streaming receiver needs
beyond the receiver itself, for the receiver block and anything else that senses frames as they
come.

* Amplitude range. The C++ kernels and the networks work in single precision: a frame whose
  largest |Y~| lies above ``max_amplitude`` (|map|^2 <= 2 (K S |Y~|)^2 must stay below 2^-21 of the
  float32 range) or below ``min_amplitude`` (2^-40) is scaled by 2^-e into the range. Algorithm 1
  and dOMP are exactly equivariant under a power-of-two scale (the same argmaxes; peaks scaled by
  4^e, gains by 2^e, both undone exactly), so their detections do not change
  (``receiver.rescalable``); a receiver that is not (NNBL) skips such frames instead.
* Frames with NaN / Inf are not sensed (they are reported; their detections are invalid).
* A chunk that raises is retried frame by frame; the frames that still raise are reported with
  their exceptions (the caller counts and logs them), the others are sensed.
* Worker threads: with ``threads`` > 1 each worker has its own receiver (the same results);
  :meth:`StreamSensing.detect` splits a call's frames over them, :meth:`StreamSensing.pipeline`
  hands chunks of PIPELINE_CHUNK frames to them as frames arrive and returns the chunks that
  finished, in order (a receiver that uses threads of its own, ``parallel`` False, keeps one).
"""

from __future__ import annotations

import collections
import math
import queue
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..messages import DetectionBatch

#: frames per chunk handed to a worker thread (2 CPUs, baseline OMP: chunks of 2, 4, 8, 12, 16,
#: 32 frames gave 777, 923, 1012-1074, 933, 871, 849 frames/s: per-chunk Python costs against
#: the in-flight limit of PIPELINE_DEPTH chunks per thread)
PIPELINE_CHUNK = 8
#: chunks in flight per worker thread (running and queued)
PIPELINE_DEPTH = 2
#: smallest frame amplitude sensed unscaled
MIN_AMPLITUDE = 2.0**-40

try:  # max |re|, |im| per frame in one C++ pass (the numpy expression of frame_amplitudes when not built)
    from .. import frame_max_abs as _FRAME_MAX_ABS
except ImportError:
    _FRAME_MAX_ABS = None


def max_amplitude(geometry) -> float:
    """Largest frame amplitude max |Re|, |Im| sensed unscaled: the single-precision map
    |Phi_a^H Y~ Phi_d^*|^2 <= 2 (K S |Y~|)^2 then stays below 2^-21 of the float32 range (for M
    symbols the angle-delay-Doppler map, <= 2 (K S M |Y~|)^2)."""
    return math.sqrt(np.finfo(np.float32).max / 2.0**22) / (geometry.antennas * geometry.subcarriers * geometry.symbols)


def frame_amplitudes(y: np.ndarray) -> np.ndarray:
    """max |Re|, |Im| of each frame of y (B, ...) complex64 (NaN when a frame has NaN)."""
    if _FRAME_MAX_ABS is not None:
        return _FRAME_MAX_ABS(y)
    B = y.shape[0]
    return np.abs(y.reshape(B, -1).view(np.float32)).max(axis=1) if B else np.zeros(0, np.float32)


def power_of_two_scales(amplitudes: np.ndarray, high: float, low: float = MIN_AMPLITUDE) -> np.ndarray:
    """2^e per frame such that amplitude / 2^e lies in [0.5, 1) when the amplitude is finite and
    outside [``low``, ``high``] (zero frames excepted), else 1."""
    scales = np.ones(amplitudes.shape[0])
    extreme = np.isfinite(amplitudes) & ((amplitudes > high) | ((amplitudes > 0) & (amplitudes < low)))
    for b in np.nonzero(extreme)[0]:
        scales[b] = math.ldexp(1.0, math.frexp(float(amplitudes[b]))[1])  # amplitude = m 2^e, m in [0.5, 1)
    return scales


def rescaled(y: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """y with frame b divided by ``scales[b]`` (powers of two: exact), a copy when any is not 1."""
    if np.all(scales == 1.0):
        return y
    y = y.copy()
    for b in np.nonzero(scales != 1.0)[0]:
        y[b] = np.ldexp(y[b].view(np.float32), -math.frexp(scales[b])[1] + 1).view(np.complex64)
    return y


#: largest max |Re|, |Im| of a subcarrier's y_c and kappa detected unscaled: |y - kappa x|^2 <= 8 a^2
#: then stays far inside the float32 range (2^123 against 2^128); larger (and tiny) subcarriers are
#: rescaled by a power of two, which leaves the ML decision (15) exactly as it is
MAX_COMM_AMPLITUDE = 2.0**60


def rescaled_pairs(y: np.ndarray, kappa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y and kappa with each subcarrier's pair divided by one power of two (transceiver.stream's
    power_of_two_scales of their joint amplitude) when it lies outside [MIN_AMPLITUDE,
    MAX_COMM_AMPLITUDE]: exact, and argmin_x |y - kappa x|^2 is the same. Copies when any is scaled."""
    parts = np.stack([y.view(np.float32).reshape(*y.shape, 2), kappa.view(np.float32).reshape(*kappa.shape, 2)])
    amplitudes = np.abs(parts).max(axis=(0, -1)).reshape(-1)
    scales = power_of_two_scales(amplitudes, MAX_COMM_AMPLITUDE, MIN_AMPLITUDE)
    if np.all(scales == 1.0):
        return y, kappa
    exponents = (1 - np.frexp(scales)[1]).reshape(y.shape)  # 2^-e with 2^e the scale
    return tuple(
        np.ldexp(a.view(np.float32).reshape(*a.shape, 2), exponents[..., None])
        .reshape(-1)
        .view(np.complex64)
        .reshape(a.shape)
        for a in (y, kappa)
    )


@dataclass
class Sensed:
    """The outcome of sensing B frames numbered from ``detections.frame[0]``: the detections
    (invalid rows for the frames not sensed), the indices of the frames sensed (``good``), those
    with NaN / Inf (``nonfinite``), those outside the amplitude range of a receiver that cannot
    rescale (``skipped``, with their ``amplitudes``), and (index, exception) of the frames whose
    sensing raised (``failed``)."""

    detections: DetectionBatch
    good: np.ndarray
    nonfinite: np.ndarray
    skipped: np.ndarray
    amplitudes: np.ndarray
    failed: list = field(default_factory=list)


class StreamSensing:
    """Detections of stream frames Y~ (B, *geometry.array_shape) by the receivers ``make()``
    builds (one per worker thread), stopped at ``threshold`` (see the module docstring)."""

    def __init__(self, make: Callable[[], object], threshold: float):
        self.make = make
        self.receiver = make()
        self.threshold = float(threshold)
        self.geometry = self.receiver.geometry
        self.max_targets = self.receiver.max_targets
        self.max_amplitude = max_amplitude(self.geometry)
        self.min_amplitude = MIN_AMPLITUDE
        #: frames per receiver call: bounds memory (numpy: a few N_theta x N_tau complex maps per
        #: frame, 1.1 MB each at the paper's sizes; the C++ kernels work frame by frame)
        self.batch = 32 if getattr(self.receiver, "kernel", "") == "cpp" else 8
        self.threads = 1
        self._receivers: list = []
        self._pool = None
        self._inflight: collections.deque = collections.deque()  # (first frame, count, future), in order
        self._idle: queue.SimpleQueue | None = None

    @property
    def parallel(self) -> bool:
        return getattr(self.receiver, "parallel", True)

    def set_threads(self, threads: int) -> None:
        self.threads = int(threads)

    def _workers(self, count: int) -> list:
        """``count`` receivers: the first one and copies (built once, kept)."""
        while len(self._receivers) < count - 1:
            self._receivers.append(self.make())
        return [self.receiver, *self._receivers[: count - 1]]

    # --- one chunk ---------------------------------------------------------------------------
    def _scan(self, y: np.ndarray):
        """(y rescaled, scales, good, nonfinite, skipped, amplitudes) of frames y."""
        amplitudes = frame_amplitudes(y)
        finite = np.isfinite(amplitudes)
        scales = power_of_two_scales(amplitudes, self.max_amplitude, self.min_amplitude)
        skipped = np.zeros(0, np.int64)
        if np.any(scales != 1.0) and not getattr(self.receiver, "rescalable", False):
            skipped = np.nonzero(scales != 1.0)[0]
            finite[skipped] = False
            scales[:] = 1.0
        return (
            rescaled(y, scales),
            scales,
            np.nonzero(finite)[0],
            np.nonzero(~np.isfinite(amplitudes))[0],
            skipped,
            amplitudes,
        )

    def _estimate(self, receiver, y, frames: np.ndarray, scales, out: DetectionBatch) -> list:
        """Detections of ``frames`` (indices into y) into ``out``, in chunks of ``batch`` (contiguous
        runs as views); a chunk that raises is retried frame by frame. [(index, exception)] of the
        frames that failed."""
        failed = []
        view = getattr(receiver, "kernel", "") == "cpp"  # numpy / torch get fresh arrays: their BLAS may
        for start in range(0, frames.size, self.batch):  # round differently on an unaligned view
            chunk = frames[start : start + self.batch]
            lo, hi = int(chunk[0]), int(chunk[-1]) + 1
            try:
                result = receiver(y[lo:hi] if hi - lo == chunk.size and view else y[chunk])
            except Exception:  # noqa: BLE001 - isolate the failing frames
                for b in chunk:
                    try:
                        one = receiver(y[b : b + 1] if view else y[[b]])
                    except Exception as exc:  # noqa: BLE001
                        failed.append((int(b), exc))
                        continue
                    out.fill([b], one, self.threshold, scales[b : b + 1])
                continue
            out.fill(chunk, result, self.threshold, scales[chunk])
        return failed

    def _sense(self, receiver, first_frame: int, y: np.ndarray) -> Sensed:
        out = DetectionBatch(first_frame, y.shape[0], self.max_targets)
        y, scales, good, nonfinite, skipped, amplitudes = self._scan(y)
        failed = self._estimate(receiver, y, good, scales, out)
        return Sensed(out, good, nonfinite, skipped, amplitudes, failed)

    # --- a call's frames, split over the workers --------------------------------------------------
    def detect(self, first_frame: int, y: np.ndarray) -> Sensed:
        """Sense frames y numbered from ``first_frame``; with threads > 1 their share per worker in
        parallel (at least two frames each)."""
        workers = self._workers(1 if not self.parallel else max(1, min(self.threads, math.ceil(y.shape[0] / 2))))
        if len(workers) == 1:
            return self._sense(workers[0], first_frame, y)
        out = DetectionBatch(first_frame, y.shape[0], self.max_targets)
        y, scales, good, nonfinite, skipped, amplitudes = self._scan(y)
        parts = np.array_split(good, len(workers))
        futures = [
            self._executor().submit(self._estimate, workers[w], y, parts[w], scales, out) for w in range(1, len(parts))
        ]
        failed = self._estimate(workers[0], y, parts[0], scales, out)
        for fut in futures:
            failed += fut.result()
        return Sensed(out, good, nonfinite, skipped, amplitudes, failed)

    def _executor(self):
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="isac_sensing")
        return self._pool

    # --- a stream's frames, pipelined over the workers -------------------------------------------------
    def _chunk_job(self, first_frame: int, y: np.ndarray) -> Sensed:
        receiver = self._idle.get()  # one per worker thread: never waits
        try:
            return self._sense(receiver, first_frame, y)
        finally:
            self._idle.put(receiver)

    def pipeline(self, read: int, frames: np.ndarray) -> tuple[int, list[Sensed]]:
        """With ``frames`` (n, ...) the stream's unconsumed frames from frame ``read`` on: hand the
        frames not yet handed out to the workers in chunks of PIPELINE_CHUNK (at most
        PIPELINE_CHUNK x PIPELINE_DEPTH x threads in flight), without waiting for earlier chunks;
        return (frames consumed, the finished chunks' outcomes in order). Waits (GIL released) for
        the oldest chunk only when none has finished. The frames in flight must stay in the
        caller's buffer (views of it are sensed) until consumed."""
        n = frames.shape[0]
        if self._idle is None:  # one receiver per worker thread
            self._idle = queue.SimpleQueue()
            for receiver in self._workers(self.threads):
                self._idle.put(receiver)
            self._launched = read
        start = self._launched - read  # the frames in flight: handed out, not yet consumed
        limit = min(n, PIPELINE_CHUNK * PIPELINE_DEPTH * self.threads)
        while start < limit:
            m = min(PIPELINE_CHUNK, n - start)
            fut = self._executor().submit(self._chunk_job, read + start, frames[start : start + m])
            self._inflight.append((read + start, m, fut))
            start += m
        self._launched = read + start
        consumed, done = 0, []
        while (
            self._inflight and consumed + self._inflight[0][1] <= n and (consumed == 0 or self._inflight[0][2].done())
        ):
            _, m, fut = self._inflight.popleft()
            done.append(fut.result())
            consumed += m
        return consumed, done

    def reset(self) -> None:
        """Forget the chunks in flight (a flowgraph's start)."""
        self._inflight.clear()
        self._idle = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._inflight.clear()


__all__ = [
    "MAX_COMM_AMPLITUDE",
    "MIN_AMPLITUDE",
    "PIPELINE_CHUNK",
    "PIPELINE_DEPTH",
    "Sensed",
    "StreamSensing",
    "frame_amplitudes",
    "max_amplitude",
    "power_of_two_scales",
    "rescaled",
    "rescaled_pairs",
]
