#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""SigMF recordings of gr-isac frames: written by ``isac-sim --record`` (``isac.sigmf_sink``),
read back and validated by ``isac-sim --replay`` (``isac.sigmf_source``, ``replay.py``).

A recording is a directory holding two SigMF recordings (``NAME.sigmf-meta`` JSON + ``NAME.sigmf-data``):

``rx``  the received array frames Y_r of (1), the input of the reciprocal filter (3): the
        frame geometry's ``array_items`` (M*K*S: K*S for one OFDM symbol) complex samples per
        frame, symbol-major, then **antenna-major**: sample ``(m*K + k)*S + s`` of a frame is
        symbol m, antenna k, subcarrier s; frame f starts at sample ``f*M*K*S``
        (model.geometry.FrameGeometry).
``tx``  the transmitted QPSK symbols x: ``symbol_items`` (M*S) complex samples per frame (sample
        m*S + s = symbol m, subcarrier s).

Samples are ``cf32_le`` (complex float32, little-endian), exactly the complex64 items of the
flowgraph. Global metadata: ``core:datatype``, ``core:sample_rate`` = S*Delta_f (Hz, the OFDM
sample rate), ``core:recorder`` (gr-isac and its version), ``core:sha512``, ``core:extensions``
(namespace ``isac``), and under ``isac:``: ``kind``, ``antennas`` K, ``subcarriers`` S,
``symbols`` M (OFDM symbols per frame; 1 when absent), ``frame_samples``, ``layout``, ``frames``
(frames written), ``spacing_hz`` Delta_f, ``nominal_spacing_m`` (lambda/2), every key of the
scenario's [array] section under its own name (``carrier_hz`` f_c, ``impairment`` (model),
``spacing_std_m``, ``impairment_seed`` and the element models' keys of model.impairments:
``gain_std_db``, ``phase_std_deg``, ``coupling_taps``, ``coupling_db``, ``dead_elements``,
``dead_list``, ``weak_gain``, and those of registered models), ``true_spacings_m`` (K spacings in
m, when the array was simulated or measured) and, when simulated with element models on,
``true_impairments`` (model -> its true parameters as plain lists, model.impairments), ``version``
(gr-isac), plus what the recorder adds (isac-sim: ``scenario_hash``
(Scenario.hash()), ``scenario``, ``method``, ``receiver``, ``threshold``). One capture segment
at sample 0 with ``core:frequency`` = f_c. Annotations (rx): one per frame with ground truth,
``core:sample_start`` = f*M*K*S, ``core:sample_count`` = M*K*S, ``core:label`` "frame f", and
``isac:frame``, ``isac:sim_frame``, ``isac:count`` T, ``isac:angles_deg``, ``isac:ranges_m``,
``isac:speeds_mps`` (radial speeds, m/s, positive = approaching; 0 for static targets; a
recording without them, from before speeds existed, reads as static), ``isac:gains_abs``,
``isac:comm_angle_deg``.

The reader refuses (RecordingError, one line naming the key) a recording that fails the SigMF
schema, is not ``cf32_le``, or whose K, S, M, f_c or Delta_f differ from the receiver's; a data
file that ends inside a frame is read up to its last whole frame, with a warning that says so."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .messages import MessageError, Truth
from .model.geometry import FrameGeometry, GeometryError
from .version import __version__

DATATYPE = "cf32_le"
SAMPLE_DTYPE = np.dtype("<c8")  # cf32_le
NAMESPACE = "isac"
EXTENSION = {"name": NAMESPACE, "version": __version__, "optional": True}
KINDS = ("rx", "tx")
LAYOUT = {
    "rx": "antenna-major: sample k*S + s of a frame is antenna k, subcarrier s",
    "tx": "sample s of a frame is subcarrier s",
}
#: the layouts of frames of M > 1 OFDM symbols
LAYOUT_SYMBOLS = {
    "rx": "symbol-major, then antenna-major: sample (m*K + k)*S + s of a frame is symbol m, antenna k, subcarrier s",
    "tx": "symbol-major: sample m*S + s of a frame is symbol m, subcarrier s",
}
META_EXT, DATA_EXT = ".sigmf-meta", ".sigmf-data"


class RecordingError(ValueError):
    """A recording cannot be written or replayed; the message says which key and why."""


def frame_samples(kind: str, geometry: FrameGeometry) -> int:
    """Samples per frame: the geometry's array_items (K*S) for the received array frames ("rx"),
    its symbol_items (S) for the symbols ("tx")."""
    if kind not in KINDS:
        raise RecordingError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return geometry.array_items if kind == "rx" else geometry.symbol_items


def base_path(path, kind: str | None = None) -> Path:
    """The base name of a SigMF recording (no extension) from a recording directory and a
    kind (DIR/rx), or from a path to NAME, NAME.sigmf-meta or NAME.sigmf-data."""
    p = Path(path)
    if kind is not None and p.is_dir():
        return p / kind
    if p.name.endswith(META_EXT) or p.name.endswith(DATA_EXT):
        return p.with_name(p.name.rsplit(".", 1)[0])
    return p


def global_metadata(
    kind: str,
    scenario,
    true_spacings_m=None,
    true_impairments: dict | None = None,
    description: str = "",
    extra: dict | None = None,
) -> dict:
    """The SigMF ``global`` object of a recording of ``kind`` of ``scenario``'s frames (see the
    module docstring); ``true_spacings_m``: the array's spacings (m); ``true_impairments``: the
    true parameters of its element models (model -> parameter -> array); ``extra``: further
    ``isac:`` keys (scenario hash, method, threshold, ...)."""
    geometry = FrameGeometry.of(scenario)
    n = frame_samples(kind, geometry)
    info = {
        "core:datatype": DATATYPE,
        "core:sample_rate": float(geometry.subcarriers) * float(scenario.ofdm["spacing_hz"]),
        "core:recorder": f"gr-isac {__version__}",
        "core:description": description
        or (
            "gr-isac received array frames Y_r (reciprocal-filter input)"
            if kind == "rx"
            else "gr-isac transmitted QPSK symbols x"
        ),
        "core:extensions": [dict(EXTENSION)],
        "isac:kind": kind,
        "isac:antennas": geometry.antennas,
        "isac:subcarriers": geometry.subcarriers,
        "isac:symbols": geometry.symbols,
        "isac:frame_samples": n,
        "isac:layout": (LAYOUT if geometry.symbols == 1 else LAYOUT_SYMBOLS)[kind],
        "isac:spacing_hz": float(scenario.ofdm["spacing_hz"]),
        "isac:nominal_spacing_m": scenario.wavelength_m / 2.0,
        "isac:version": __version__,
    }
    for name, value in scenario.array.items():  # every [array] key (antennas: the geometry's)
        info.setdefault(f"{NAMESPACE}:{name}", _json(value))
    if true_spacings_m is not None:
        info["isac:true_spacings_m"] = [float(d) for d in np.asarray(true_spacings_m, dtype=np.float64).ravel()]
    if true_impairments:
        info["isac:true_impairments"] = _json(true_impairments)
    for key, value in (extra or {}).items():
        if not key.startswith(f"{NAMESPACE}:"):
            raise RecordingError(f"extra metadata key {key!r} must start with '{NAMESPACE}:'")
        info[key] = _json(value)
    return info


def _json(value):
    """Plain JSON types of numpy values (NaN/Inf are not JSON: None)."""
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def truth_annotation(frame: int, n_samples: int, truth: Truth) -> dict:
    """The annotation of recorded frame ``frame`` from its truth (messages.Truth)."""
    return {
        "core:sample_start": int(frame) * n_samples,
        "core:sample_count": n_samples,
        "core:label": f"frame {frame}",
        "isac:frame": int(frame),
        "isac:count": truth.count,
        "isac:angles_deg": truth.angle_deg.tolist(),
        "isac:ranges_m": truth.range_m.tolist(),
        "isac:speeds_mps": truth.speed_mps.tolist(),
        "isac:sim_frame": int(truth.sim_frame),
        "isac:gains_abs": _json(truth.gain_abs.tolist()),
        "isac:comm_angle_deg": _json(truth.comm_angle_deg),
    }


class Writer:
    """Writes one SigMF recording: ``write`` appends frames to NAME.sigmf-data as they come,
    ``annotate`` records a frame's ground truth, ``close`` writes NAME.sigmf-meta (with the
    data file's SHA-512, validated by the sigmf package). ``info``: global_metadata(...)."""

    def __init__(self, base, info: dict):
        self.base = Path(base)
        self.info = dict(info)
        self.frame_samples = int(info["isac:frame_samples"])
        self.data_path = self.base.with_name(self.base.name + DATA_EXT)
        self.meta_path = self.base.with_name(self.base.name + META_EXT)
        try:
            self.base.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.data_path, "wb")
        except OSError as exc:
            raise RecordingError(f"cannot write the recording {self.data_path}: {exc.strerror}") from None
        self.frames = 0
        self.annotations: dict[int, dict] = {}

    def write(self, frames) -> None:
        """Append frames, (n, frame_samples) or (frame_samples,) complex values."""
        a = np.ascontiguousarray(frames, dtype=SAMPLE_DTYPE)
        if a.size % self.frame_samples:
            raise RecordingError(f"{a.size} samples are not whole frames of {self.frame_samples}")
        self._fh.write(a.tobytes())
        self.frames += a.size // self.frame_samples

    def annotate(self, frame: int, truth: Truth) -> None:
        """Ground truth of recorded frame ``frame`` (isac.ula_channel's messages.Truth)."""
        self.annotations[int(frame)] = truth_annotation(int(frame), self.frame_samples, truth)

    def metadata(self) -> dict:
        info = dict(self.info, **{"isac:frames": self.frames})
        return {
            "global": info,
            "captures": [{"core:sample_start": 0, "core:frequency": info["isac:carrier_hz"]}],
            "annotations": [self.annotations[f] for f in sorted(self.annotations) if f < self.frames],
        }

    def close(self) -> Path:
        """Close the data file and write the metadata file (validated); returns its path."""
        from sigmf import SigMFFile

        if not self._fh.closed:
            self._fh.close()
        sf = SigMFFile(metadata=self.metadata(), data_file=self.data_path)  # computes core:sha512
        sf.validate()
        sf.tofile(self.base, overwrite=True)
        return self.meta_path


@dataclass
class Recording:
    """A SigMF recording opened for replay: ``data`` (frames, frame_samples) complex64 (a
    read-only memory map of the whole frames), ``info`` (global metadata), ``truth`` (frame ->
    dict with angle_deg, range_m, ...; empty without annotations), ``warnings`` (e.g. a
    truncated data file)."""

    base: Path
    kind: str
    geometry: FrameGeometry
    info: dict
    data: np.ndarray
    truth: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    @property
    def frames(self) -> int:
        return int(self.data.shape[0])

    @property
    def annotated(self) -> bool:
        return bool(self.truth)

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index``: the geometry's array_shape for rx, its symbol_shape for tx; complex64."""
        g = self.geometry
        return np.asarray(self.data[index]).reshape(g.array_shape if self.kind == "rx" else g.symbol_shape)

    def check(self, scenario, who: str = "the receiver") -> None:
        """Refuse (RecordingError) a recording whose K, S, M, f_c or Delta_f differ from the
        scenario's (``who``'s)."""
        name = self.base.name + META_EXT
        mine, want = self.geometry.to_dict(), FrameGeometry.of(scenario).to_dict()
        for key, got, expected in (
            ("isac:antennas", mine["K"], want["K"]),
            ("isac:subcarriers", mine["S"], want["S"]),
            ("isac:symbols", mine["M"], want["M"]),
            ("isac:carrier_hz", self.info.get("isac:carrier_hz"), scenario.array["carrier_hz"]),
            ("isac:spacing_hz", self.info.get("isac:spacing_hz"), scenario.ofdm["spacing_hz"]),
        ):
            if got is None or not math.isclose(float(got), float(expected), rel_tol=1e-9):
                raise RecordingError(
                    f"{name}: {key} = {got} but {who} has {expected}: the recording does not "
                    f"fit (record and replay with the same array.antennas, ofdm.subcarriers, "
                    f"ofdm.symbols, array.carrier_hz, ofdm.spacing_hz)"
                )


def _annotation_truth(ann: dict) -> Truth:
    try:
        return Truth.from_dict(
            {
                "frame": ann["isac:frame"],
                "sim_frame": ann.get("isac:sim_frame"),
                "angle_deg": ann.get("isac:angles_deg", []),
                "range_m": ann.get("isac:ranges_m", []),
                **({"speed_mps": ann["isac:speeds_mps"]} if "isac:speeds_mps" in ann else {}),  # absent: static
                **({"gain_abs": ann["isac:gains_abs"]} if "isac:gains_abs" in ann else {}),
                "comm_angle_deg": ann.get("isac:comm_angle_deg"),
            }
        )
    except MessageError as exc:
        raise RecordingError(f"annotation at sample {ann['core:sample_start']}: {exc}") from None


def read(path, kind: str = "rx", verify: bool = True) -> Recording:
    """Open and validate the recording ``kind`` of a recording directory (or the SigMF
    recording at ``path``: NAME, NAME.sigmf-meta or NAME.sigmf-data). Schema (sigmf package),
    ``core:datatype`` = cf32_le, the ``isac:`` keys and, when the data file is whole, its
    ``core:sha512`` are checked. A data file ending inside a frame is read up to its last whole
    frame and the recording's ``warnings`` say so."""
    import jsonschema
    from sigmf import validate as sigmf_validate

    frame_samples(kind, FrameGeometry(1, 1))  # checks kind
    base = base_path(path, kind)
    meta_path, data_path = base.with_name(base.name + META_EXT), base.with_name(base.name + DATA_EXT)
    if not meta_path.is_file():
        raise RecordingError(f"no SigMF metadata file {meta_path}")
    try:
        meta = json.loads(meta_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordingError(f"{meta_path.name}: not a JSON file: {exc}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sigmf_validate.validate(meta)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "top level"
        raise RecordingError(f"{meta_path.name}: not valid SigMF metadata at {where}: {exc.message}") from None
    info = meta["global"]
    name = meta_path.name
    datatype = info.get("core:datatype")
    if datatype != DATATYPE:
        raise RecordingError(
            f"{name}: core:datatype is {datatype!r}, but the receiver takes {DATATYPE!r} "
            f"(complex float32, little-endian) frames"
        )
    if int(info.get("core:num_channels", 1)) != 1:
        raise RecordingError(
            f"{name}: core:num_channels = {info['core:num_channels']}, expected 1 "
            f"(the antennas are interleaved within a frame, antenna-major)"
        )
    if info.get("isac:kind", kind) != kind:
        raise RecordingError(f"{name}: isac:kind is {info['isac:kind']!r}, expected {kind!r}")
    try:
        geometry = FrameGeometry.from_dict(
            {"K": info["isac:antennas"], "S": info["isac:subcarriers"], "M": info.get("isac:symbols", 1)}
        )
    except (KeyError, GeometryError):
        raise RecordingError(
            f"{name}: needs integers >= 1 isac:antennas (K), isac:subcarriers (S) and, when present, isac:symbols (M)"
        ) from None
    n = frame_samples(kind, geometry)
    if int(info.get("isac:frame_samples", n)) != n:
        raise RecordingError(
            f"{name}: isac:frame_samples = {info['isac:frame_samples']}, but a {kind} frame of "
            f"{geometry.describe()} has {n} samples"
        )
    if not data_path.is_file():
        raise RecordingError(f"no SigMF data file {data_path}")
    size = data_path.stat().st_size
    frame_bytes = n * SAMPLE_DTYPE.itemsize
    whole, rest = divmod(size, frame_bytes)
    declared = info.get("isac:frames")
    notes = []
    truncated = bool(rest) or (declared is not None and whole < int(declared))
    if truncated:
        of = f" of the {int(declared)} recorded" if declared is not None else ""
        notes.append(
            f"{data_path.name} is truncated ({size} bytes: {whole} whole frames of {frame_bytes} bytes"
            f"{f' + {rest} bytes' if rest else ''}): replaying its {whole} whole frames{of}"
        )
    if whole == 0:
        raise RecordingError(f"{data_path.name}: holds no whole frame ({size} bytes, a frame is {frame_bytes} bytes)")
    if verify and not truncated and info.get("core:sha512"):
        from sigmf import hashing

        if hashing.calculate_sha512(filename=data_path) != info["core:sha512"]:
            raise RecordingError(
                f"{data_path.name}: its SHA-512 differs from core:sha512 of {name} (the data file was modified)"
            )
    data = np.memmap(data_path, dtype=SAMPLE_DTYPE, mode="r", shape=(whole, n))
    truth = {}
    for ann in meta.get("annotations", []):
        if "isac:frame" not in ann:
            continue
        start = int(ann["core:sample_start"])
        if start % n or start // n != int(ann["isac:frame"]):
            raise RecordingError(
                f"{name}: annotation of isac:frame {ann['isac:frame']} starts at sample {start}, not at frame * {n}"
            )
        if start // n < whole:
            truth[start // n] = _annotation_truth(ann)
    return Recording(base=base, kind=kind, geometry=geometry, info=info, data=data, truth=truth, warnings=notes)


def validate_file(path) -> None:
    """Validate a written recording with the sigmf package only (schema + SHA-512 of the data):
    raises on failure. For tests and users who want the package's own verdict."""
    from sigmf import sigmffile

    sf = sigmffile.fromfile(str(base_path(path)) + META_EXT)  # checks core:sha512
    sf.validate()


__all__ = [
    "DATATYPE",
    "KINDS",
    "Recording",
    "RecordingError",
    "Writer",
    "base_path",
    "frame_samples",
    "global_metadata",
    "read",
    "truth_annotation",
    "validate_file",
]
