"""The per-frame messages of gr-isac, once: the ground truth of a frame and the sensing
receiver's detections, as typed records with their three wire forms.

  Truth        what the channel simulated (or a recording annotated): the targets' angles (deg),
               ranges (m), radial speeds (m/s, positive = approaching; 0 for static targets) and
               gain magnitudes |psi_t|, the comm receiver's angle phi (deg)
  Detections   what the sensing receiver estimated: angles (deg), ranges (m), positions (2)
               x = R cos(theta), y = R sin(theta) (m), speeds (m/s; NaN where none is measured:
               frames of one OFDM symbol), |LS gains (13)|, and the map maxima of the kept
               iterations ("peak"; detection probabilities for NNBL)

Each record has one dict form (``to_dict`` / ``from_dict``: the keys below, vectors as float64
arrays), the JSON form of that dict (``to_json``: arrays as lists, NaN / Inf as null, for
pyzmq clients) and the PMT dict form (``to_pmt`` / ``from_pmt``: what GNU Radio message ports
and gr-zeromq carry; built in C++ by ``gnuradio.isac.pmt_dict_from`` when the module is built,
else by GNU Radio's own ``pmt.to_pmt``, the same dict). Blocks, isac-sim's publishers,
recordings, scoring and isac-subscribe all use these records.

  truth       frame, sim_frame, count, angle_deg, range_m, speed_mps, gain_abs, comm_angle_deg, valid
  detections  frame, count, valid, angle_deg, range_m, x_m, y_m, speed_mps, gain, peak

``frame`` is the stream frame number (the item number in a flowgraph); ``sim_frame`` the index
of the frame in its simulation stream (simulation.frame_rng), ``frame`` + the channel's first
frame. A record with ``valid`` False stands for a frame that could not be simulated or sensed:
it has no targets and is never scored as a good frame. Batches of many frames
(:class:`TruthBatch`, :class:`DetectionBatch`) keep arrays and build the PMT dicts of all their
frames in one C++ call.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .model.scene import positions

TRUTH_KEYS = (
    "frame",
    "sim_frame",
    "count",
    "angle_deg",
    "range_m",
    "speed_mps",
    "gain_abs",
    "comm_angle_deg",
    "valid",
)
DETECTION_KEYS = ("frame", "count", "valid", "angle_deg", "range_m", "x_m", "y_m", "speed_mps", "gain", "peak")
#: the vectors of a detections message, in order; each holds ``count`` entries
DETECTION_VECTORS = ("angle_deg", "range_m", "x_m", "y_m", "speed_mps", "gain", "peak")
TRUTH_VECTORS = ("angle_deg", "range_m", "speed_mps", "gain_abs")


class MessageError(ValueError):
    """A dict, JSON text or PMT is not a truth / detections message; the message says why."""


def _vector(d: Mapping[str, Any], key: str) -> np.ndarray:
    value = d.get(key, ())
    try:
        v = np.atleast_1d(np.asarray(value, dtype=np.float64)).reshape(-1)
    except (TypeError, ValueError):
        raise MessageError(f"{key} must be a vector of numbers, got {value!r:.60}") from None
    return v


def _frame(d: Mapping[str, Any], key: str = "frame") -> int:
    value = d.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)):
        raise MessageError(f"needs an integer '{key}', got {value!r:.60}")
    if not math.isfinite(value) or int(value) != value:
        raise MessageError(f"'{key}' must be an integer, got {value!r}")
    return int(value)


def _same_lengths(kind: str, vectors: Mapping[str, np.ndarray]) -> None:
    lengths = {k: v.size for k, v in vectors.items()}
    if len(set(lengths.values())) > 1:
        raise MessageError(
            f"{kind}: {' and '.join(lengths)} differ in length ({', '.join(str(n) for n in lengths.values())})"
        )


class _Record:
    """What the two records share: the count of their vectors and their JSON and PMT forms."""

    angle_deg: np.ndarray

    @property
    def count(self) -> int:
        return int(self.angle_deg.size)

    @property
    def angle_rad(self) -> np.ndarray:
        return np.deg2rad(self.angle_deg)

    def to_json(self) -> str:
        return to_json(self.to_dict())

    def to_pmt(self):
        return to_pmt(self.to_dict())

    @classmethod
    def from_pmt(cls, msg):
        return cls.from_dict(from_pmt(msg))


@dataclass
class Truth(_Record):
    """The ground truth of one frame (see the module docstring); vectors (T,) float64."""

    frame: int
    angle_deg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    range_m: np.ndarray = field(default_factory=lambda: np.zeros(0))
    gain_abs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    comm_angle_deg: float = math.nan
    sim_frame: int | None = None  # None: the same as frame
    valid: bool = True
    speed_mps: np.ndarray = field(default_factory=lambda: np.zeros(0))  # not given: static (0)

    def __post_init__(self) -> None:
        self.frame = int(self.frame)
        self.sim_frame = self.frame if self.sim_frame is None else int(self.sim_frame)
        for key in TRUTH_VECTORS:
            setattr(self, key, np.atleast_1d(np.asarray(getattr(self, key), dtype=np.float64)).reshape(-1))
        if self.gain_abs.size == 0:  # not given: unknown (NaN)
            self.gain_abs = np.full(self.angle_deg.size, np.nan)
        if self.speed_mps.size == 0:
            self.speed_mps = np.zeros(self.angle_deg.size)
        _same_lengths("truth", {k: getattr(self, k) for k in TRUTH_VECTORS})
        self.comm_angle_deg = float(self.comm_angle_deg)
        self.valid = bool(self.valid)

    @classmethod
    def invalid(cls, frame: int, sim_frame: int | None = None) -> "Truth":
        """The truth of a frame that could not be simulated (no targets, valid False)."""
        return cls(frame, sim_frame=sim_frame, valid=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame": self.frame,
            "sim_frame": self.sim_frame,
            "count": self.count,
            "angle_deg": self.angle_deg,
            "range_m": self.range_m,
            "speed_mps": self.speed_mps,
            "gain_abs": self.gain_abs,
            "comm_angle_deg": self.comm_angle_deg,
            "valid": self.valid,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Truth":
        """A truth record from its dict form; MessageError when it is not one (no integer
        frame, vectors of different lengths, a count that disagrees with them)."""
        vectors = {k: _vector(d, k) for k in ("angle_deg", "range_m")}
        _same_lengths("truth", vectors)
        n = vectors["angle_deg"].size
        vectors["gain_abs"] = _vector(d, "gain_abs") if "gain_abs" in d else np.full(n, np.nan)  # optional
        vectors["speed_mps"] = _vector(d, "speed_mps") if "speed_mps" in d else np.zeros(n)  # optional: static
        _same_lengths("truth", vectors)
        _check_count("truth", d, vectors["angle_deg"].size)
        comm = d.get("comm_angle_deg", math.nan)
        return cls(
            _frame(d),
            comm_angle_deg=math.nan if comm is None else float(comm),
            sim_frame=_frame(d, "sim_frame") if d.get("sim_frame") is not None else None,
            valid=bool(d.get("valid", True)),
            **vectors,
        )


@dataclass
class Detections(_Record):
    """The sensing receiver's detections in one frame (see the module docstring); vectors (n,)."""

    frame: int
    angle_deg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    range_m: np.ndarray = field(default_factory=lambda: np.zeros(0))
    gain: np.ndarray = field(default_factory=lambda: np.zeros(0))
    peak: np.ndarray = field(default_factory=lambda: np.zeros(0))
    valid: bool = True
    #: positions (2) (m); None: computed from angle_deg and range_m
    x_m: np.ndarray | None = None
    y_m: np.ndarray | None = None
    #: radial speeds (m/s, positive = approaching); not given: not measured (NaN)
    speed_mps: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        self.frame = int(self.frame)
        for key in ("angle_deg", "range_m", "gain", "peak", "speed_mps"):
            setattr(self, key, np.atleast_1d(np.asarray(getattr(self, key), dtype=np.float64)).reshape(-1))
        for key in ("gain", "peak", "speed_mps"):  # not given: unknown (NaN)
            if getattr(self, key).size == 0:
                setattr(self, key, np.full(self.angle_deg.size, np.nan))
        if self.x_m is None or self.y_m is None:
            p = positions(np.deg2rad(self.angle_deg), self.range_m).reshape(-1, 2)
            self.x_m, self.y_m = p[:, 0], p[:, 1]
        self.x_m = np.asarray(self.x_m, dtype=np.float64).reshape(-1)
        self.y_m = np.asarray(self.y_m, dtype=np.float64).reshape(-1)
        _same_lengths("detections", {k: getattr(self, k) for k in DETECTION_VECTORS})
        self.valid = bool(self.valid)

    @property
    def positions_m(self) -> np.ndarray:
        """(n, 2) positions (2) p = R [cos theta, sin theta] (m)."""
        return np.stack([self.x_m, self.y_m], axis=-1)

    @classmethod
    def invalid(cls, frame: int) -> "Detections":
        """The detections of a frame that was skipped (invalid input): none, valid False."""
        return cls(frame, valid=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame": self.frame,
            "count": self.count,
            "valid": self.valid,
            **{k: getattr(self, k) for k in DETECTION_VECTORS},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Detections":
        """A detections record from its dict form; MessageError when it is not one. ``gain`` and
        ``peak`` may be absent (then NaN), ``x_m`` and ``y_m`` too (then computed by (2))."""
        vectors = {k: _vector(d, k) for k in ("angle_deg", "range_m")}
        _same_lengths("detections", vectors)
        n = vectors["angle_deg"].size
        for key in ("gain", "peak", "speed_mps"):
            vectors[key] = _vector(d, key) if key in d else np.full(n, np.nan)
        for key in ("x_m", "y_m"):
            if "x_m" in d and "y_m" in d:
                vectors[key] = _vector(d, key)
        _same_lengths("detections", vectors)
        _check_count("detections", d, n)
        return cls(_frame(d), valid=bool(d.get("valid", True)), **vectors)


def _check_count(kind: str, d: Mapping[str, Any], n: int) -> None:
    count = d.get("count", n)
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or int(count) != n:
        raise MessageError(f"{kind}: count {count!r} does not match the {n} entries of its vectors")


# --- batches: many frames as arrays ----------------------------------------------------------
@dataclass
class TruthBatch:
    """The truth of B consecutive frames as arrays: rows padded to the largest count,
    ``counts[b]`` entries of row b valid (the layout of model.channels_stream.FrameBatch)."""

    frame: np.ndarray  # (B,) int64 stream frame numbers
    sim_frame: np.ndarray  # (B,) int64
    counts: np.ndarray  # (B,) int64
    angle_deg: np.ndarray  # (B, T)
    range_m: np.ndarray  # (B, T)
    gain_abs: np.ndarray  # (B, T)
    comm_angle_deg: np.ndarray  # (B,)
    valid: np.ndarray  # (B,) bool
    speed_mps: np.ndarray | None = None  # (B, T); None: static (zeros)

    def __post_init__(self) -> None:
        if self.speed_mps is None:
            self.speed_mps = np.zeros(np.shape(self.angle_deg))

    @classmethod
    def of_frames(cls, first_frame: int, first_sim_frame: int, batch) -> "TruthBatch":
        """The truth of a model.channels_stream.FrameBatch whose row b is stream frame
        ``first_frame + b`` and simulation frame ``first_sim_frame + b``."""
        B = len(batch)
        frames = first_frame + np.arange(B, dtype=np.int64)
        return cls(
            frames,
            first_sim_frame - first_frame + frames,
            np.asarray(batch.counts, np.int64),
            np.rad2deg(batch.angles_rad),
            np.asarray(batch.ranges_m, np.float64),
            np.abs(batch.gains),
            np.rad2deg(batch.comm_angle_rad),
            np.asarray(batch.valid, bool),
            np.asarray(batch.speeds_mps, np.float64),
        )

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    def records(self) -> list[Truth]:
        return [
            Truth(
                int(self.frame[b]),
                self.angle_deg[b, :n],
                self.range_m[b, :n],
                self.gain_abs[b, :n],
                float(self.comm_angle_deg[b]),
                int(self.sim_frame[b]),
                bool(self.valid[b]),
                self.speed_mps[b, :n],
            )
            for b, n in enumerate(int(c) for c in self.counts)
        ]

    def pmts(self) -> list:
        """The PMT dicts of the frames, those of ``Truth.to_pmt`` of :meth:`records`."""
        return _pmt_rows(
            [
                ("frame", self.frame),
                ("sim_frame", self.sim_frame),
                ("count", self.counts),
                ("angle_deg", self.angle_deg),
                ("range_m", self.range_m),
                ("speed_mps", self.speed_mps),
                ("gain_abs", self.gain_abs),
                ("comm_angle_deg", self.comm_angle_deg),
                ("valid", self.valid),
            ],
            self.counts,
            self.records,
        )


class DetectionBatch:
    """The detections of B consecutive frames numbered from ``first_frame`` as arrays: frame,
    count, valid (B,) and the vectors of DETECTION_VECTORS (B, slots), row b valid up to
    count[b]. A row not filled is a skipped frame (valid False, count 0)."""

    def __init__(self, first_frame: int, B: int, slots: int):
        self.frame = first_frame + np.arange(B, dtype=np.int64)
        self.count = np.zeros(B, np.int64)
        self.valid = np.zeros(B, bool)
        self.vectors = {k: np.zeros((B, slots)) for k in DETECTION_VECTORS}

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    def fill(self, rows, result, threshold: float, scales: np.ndarray | None = None) -> None:
        """Rows ``rows`` from a receiver's OmpResult (one result row per entry of ``rows``), with
        the detections of Algorithm 1 stopped at ``threshold`` (the leading iterations whose map
        maximum exceeds it). ``scales`` (one per row, powers of two) undo an input scaling of
        the frames: gains times the scale, peaks times its square."""
        rows = np.asarray(rows, dtype=np.int64)
        scales = np.ones(rows.size) if scales is None else np.asarray(scales, np.float64)
        peaks = result.peaks * (scales * scales)[:, None]  # exact: powers of two
        counts = np.cumprod(peaks > threshold, axis=-1).sum(axis=-1)  # OmpResult.counts, unscaled peaks
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
        speeds = getattr(result, "speeds_mps", None)  # measured over M > 1 symbols only
        v["speed_mps"][rows, :T] = np.nan if speeds is None else speeds
        self.count[rows] = counts
        self.valid[rows] = True

    def records(self) -> list[Detections]:
        v = self.vectors
        return [
            Detections(
                int(self.frame[b]),
                v["angle_deg"][b, :n],
                v["range_m"][b, :n],
                v["gain"][b, :n],
                v["peak"][b, :n],
                bool(self.valid[b]),
                v["x_m"][b, :n],
                v["y_m"][b, :n],
                v["speed_mps"][b, :n],
            )
            for b, n in enumerate(int(c) for c in self.count)
        ]

    def pmts(self) -> list:
        """The PMT dicts of the frames, those of ``Detections.to_pmt`` of :meth:`records`."""
        return _pmt_rows(
            [
                ("frame", self.frame),
                ("count", self.count),
                ("valid", self.valid),
                *((k, self.vectors[k]) for k in DETECTION_VECTORS),
            ],
            self.count,
            self.records,
        )


# --- wire forms ----------------------------------------------------------------------------------
def jsonable(value):
    """Plain-JSON form of a message value: numpy arrays -> lists, non-finite floats -> null,
    complex -> [re, im]."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):  # nested lists, or a scalar for a 0-d array
        return jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (complex, np.complexfloating)):
        return [jsonable(float(value.real)), jsonable(float(value.imag))]
    return value if value is None or isinstance(value, str) else str(value)


def to_json(d: Mapping[str, Any]) -> str:
    """Strict JSON text of a message dict (arrays as lists, NaN / Inf as null)."""
    return json.dumps(jsonable(dict(d)), allow_nan=False)


def _compiled():
    """(pmt_dict_from, pmt_dict_to, pmt_dicts) of the compiled module, or Nones."""
    try:
        from . import pmt_dict_from, pmt_dict_to, pmt_dicts
    except ImportError:
        return None, None, None
    return pmt_dict_from, pmt_dict_to, pmt_dicts


_DICT_FROM, _DICT_TO, _DICTS = _compiled()


def pmt_form(d: Mapping[str, Any]) -> dict[str, Any]:
    """A message dict as GNU Radio's ``pmt.to_pmt`` takes it to give the dict ``to_pmt`` gives:
    Python bool / int / float / str, float vectors as float64 (f64vector), complex vectors as
    complex64 (c32vector)."""
    return {k: _plain(v) for k, v in d.items()}


def _plain(value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, str):
        return value
    arr = np.asarray(value)
    return arr.astype(np.complex64) if np.iscomplexobj(arr) else arr.astype(np.float64).reshape(-1)


def to_pmt(d: Mapping[str, Any]):
    """PMT dict of a message dict (keys in order): bool, int, float, str, and vectors (float ->
    f64vector, complex -> c32vector). Built in C++ when the module is built."""
    if _DICT_FROM is not None:
        return _DICT_FROM(dict(d))
    import pmt

    return pmt.to_pmt(pmt_form(d))


def from_pmt(msg) -> dict[str, Any]:
    """The dict of a PMT dict message, as ``pmt.to_python`` gives it (vectors as numpy arrays);
    MessageError when ``msg`` is not a PMT dict. Read in C++ when the module is built."""
    import pmt

    if pmt.is_null(msg):
        return {}
    if not pmt.is_dict(msg):
        raise MessageError(f"expected a PMT dict, got {pmt.write_string(msg)[:80]}")
    if _DICT_TO is not None:
        return _DICT_TO(msg)
    return pmt.to_python(msg)


def _pmt_rows(fields: list, counts: np.ndarray, records) -> list:
    """One PMT dict per row of ``fields`` [(key, array)]: a (B,) array gives the row's scalar,
    a (B, W) array the vector of the row's first counts[b] entries. In one C++ call when built,
    else the records' own PMT forms."""
    if _DICTS is not None:
        return _DICTS(fields, np.asarray(counts, dtype=np.int64))
    return [to_pmt(r.to_dict()) for r in records()]


__all__ = [
    "DETECTION_KEYS",
    "DETECTION_VECTORS",
    "DetectionBatch",
    "Detections",
    "MessageError",
    "TRUTH_KEYS",
    "Truth",
    "TruthBatch",
    "from_pmt",
    "jsonable",
    "pmt_form",
    "to_json",
    "to_pmt",
]
