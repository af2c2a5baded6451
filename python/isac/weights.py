"""Learned weights on disk: safetensors (numpy API, no pickle) with metadata, validated
against a Scenario on load. One module for the trainer (writes), eval, sim and blocks (read).

File layout (see docs/trainer.md):

  tensors (method "impairment")   spacings_m (K,) float64 [m], positions_m (K,) float64 [m],
                                  angle_grid_rad (N_theta,) float64 [rad], and per learned element
                                  model (model.impairments): gain_db (K,) [dB] and phase_rad (K,)
                                  [rad] ("gain"), amplitude (K,) [linear] ("dead"), coupling (L, 2)
                                  float64 [Re, Im of c_1..c_L] ("coupling")
  tensors (method "dictionary")   dictionary (K, N_theta) complex64 [unitless], angle_grid_rad
  tensors (method "nn")           the NNBL network tensors (nn_schema.expected_shapes: precoder.*,
                                  angle.*, range.*, detection.*; float32), no angle_grid_rad
  metadata (strings)              format, format_version, method, antennas, subcarriers,
                                  carrier_hz, subcarrier_spacing_hz, impairment, angle_grid,
                                  delay_grid, units (JSON), scenario_hash, steps, training (JSON),
                                  array_models (JSON list: model.impairments.learned_models of the
                                  scenario, the models impairment learning learns; a file without
                                  it was written before the element models: ["spacing"]);
                                  method "nn" also nnbl (JSON NnblConfig: antennas, max_targets,
                                  n_theta, n_tau, limited), which fixes every tensor's shape

``scenario_hash`` is ``Scenario.hash(("array", "ofdm"))``: the physical array (size, carrier,
impairment model, spacing std and seed, and the element models' keys when they are on: config.py
hashes those only when they differ from their "off" defaults, so the hashes recorded before they
existed, the shipped weights' included, still hold) and the OFDM numerology the weights were
learned on.
Scene, transmitter and receiver settings may differ at test time (the trainer randomises the
sectors and eta/phi), so they are recorded (``scenario_hash_full``) but not enforced.

One validation rule, everywhere (apps, blocks, experiments): a weights file fits a scenario when
K, S, f_c, Delta_f, the impairment model and the array models (``array_models`` =
``impairments.learned_models(scenario)``, with the coupling taps) are equal AND the scenario hash
is equal (the same simulated array). The one explicit way to deploy weights on another array (a mismatch study, or
real hardware whose array is not the simulated one) is ``other_array=True`` (``--weights-other-array``
in the apps, ``weights_other_array`` in the blocks): the hash is then not compared, all else is.
A file is read and validated once per process (:func:`load`); the :class:`Weights` object is passed
down to the transceiver layer and the blocks.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .config import Scenario
from .model import impairments
from .model.array import DictionaryArray, PositionArray
from .model.grids import full_angle_grid
from .nn_schema import NnblConfig, expected_shapes

FORMAT = "gr-isac-weights"
FORMAT_VERSION = "1"
METHODS = ("impairment", "dictionary", "nn")
HASH_SECTIONS = ("array", "ofdm")
UNITS = {
    "spacings_m": "m",
    "positions_m": "m",
    "angle_grid_rad": "rad",
    "dictionary": "complex, unitless",
    "carrier_hz": "Hz",
    "subcarrier_spacing_hz": "Hz",
    "delay_grid.range_m": "m",
}
#: units of the element models' tensors, recorded only in files that hold them
ELEMENT_UNITS = {"gain_db": "dB", "phase_rad": "rad", "amplitude": "linear", "coupling": "[Re, Im] of c_1..c_L"}
#: the array models of a file written before the element models existed
LEGACY_MODELS = ("spacing",)
REQUIRED_META = (
    "format",
    "format_version",
    "method",
    "antennas",
    "subcarriers",
    "carrier_hz",
    "subcarrier_spacing_hz",
    "impairment",
    "angle_grid",
    "delay_grid",
    "units",
    "scenario_hash",
    "steps",
)


#: the weights shipped with the module: impairment learning for the default scenario
DEFAULT_FILE = "impairment_default.safetensors"


def default_weights_path() -> str | None:
    """Path of the shipped default weights (installed in <prefix>/share/gr-isac/weights, or
    data/weights/ of a source checkout), or None when absent."""
    import sys
    from pathlib import Path

    for folder in (
        Path(sys.prefix) / "share" / "gr-isac" / "weights",
        Path(__file__).resolve().parents[2] / "data" / "weights",
    ):
        if (folder / DEFAULT_FILE).is_file():
            return str(folder / DEFAULT_FILE)
    return None


class WeightsError(ValueError):
    """A weights file is unreadable or does not fit the scenario; the message says why."""


@dataclass
class Weights:
    """Validated learned weights: ``method``, numpy ``tensors`` and string ``metadata``."""

    method: str
    tensors: dict[str, np.ndarray]
    metadata: dict[str, str] = field(default_factory=dict)
    source: str = "weights"  # the file it was read from (for messages)
    other_array: bool = False  # validated with other_array=True (the scenario hash was not compared)

    @property
    def angle_grid_rad(self) -> np.ndarray:
        return self.tensors["angle_grid_rad"]

    @property
    def steps(self) -> int:
        return int(self.metadata.get("steps", 0))

    @property
    def array_models(self) -> tuple[str, ...]:
        """The array models the weights were learned for (metadata ``array_models``;
        ``("spacing",)`` for a file written before the element models existed)."""
        return array_models(self.metadata)

    def array(self, wavelength_m: float | None = None):
        """The learned array as a numpy model array: for "impairment" a PositionArray of the
        learned positions, composed with the learned element models (model.impairments.
        ImpairedArray: a = C diag(g) a_pos) when the file holds any; a DictionaryArray for
        "dictionary" ("nn" weights hold networks, no array)."""
        if self.method == "nn":
            raise WeightsError(f"{self.source}: NNBL weights (method 'nn') hold networks, not an array")
        if self.method == "impairment":
            lam = wavelength_m if wavelength_m is not None else 299_792_458.0 / float(self.metadata["carrier_hz"])
            base = PositionArray(
                self.tensors["positions_m"],
                lam,
                self.tensors["spacings_m"],
                kind=f"learned-{self.metadata['impairment']}",
            )
            elements = tuple(m for m in self.array_models if m in impairments.ELEMENT_MODELS)
            if not elements:
                return base
            t = self.tensors
            K = base.antennas
            gains = impairments.element_gains(
                t.get("gain_db", np.zeros(K)), t.get("phase_rad", np.zeros(K)), t.get("amplitude")
            )
            coupling = t["coupling"][:, 0] + 1j * t["coupling"][:, 1] if "coupling" in t else None
            return impairments.ImpairedArray(base, gains, coupling, elements)
        return DictionaryArray(self.angle_grid_rad, self.tensors["dictionary"])


def array_models(metadata: Mapping[str, str]) -> tuple[str, ...]:
    """The ``array_models`` of weights metadata (LEGACY_MODELS when absent)."""
    if "array_models" not in metadata:
        return LEGACY_MODELS
    return tuple(json.loads(metadata["array_models"]))


def scenario_metadata(
    scenario: Scenario, method: str, steps: int, angle_points: int, training: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Metadata strings of a weights file learned on ``scenario``."""
    rmin, rmax = scenario.range_interval_m
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "method": method,
        "antennas": str(scenario.array["antennas"]),
        "subcarriers": str(scenario.ofdm["subcarriers"]),
        "carrier_hz": repr(float(scenario.array["carrier_hz"])),
        "subcarrier_spacing_hz": repr(float(scenario.ofdm["spacing_hz"])),
        "impairment": scenario.array["impairment"],
        "angle_grid": json.dumps({"points": int(angle_points), "min_rad": -math.pi / 2, "max_rad": math.pi / 2}),
        "delay_grid": json.dumps({"points": int(scenario.receiver["delay_grid"]), "range_m": [rmin, rmax]}),
        "units": json.dumps(UNITS, sort_keys=True),
        "array_models": json.dumps(list(impairments.learned_models(scenario))),
        "scenario_hash": scenario.hash(HASH_SECTIONS),
        "scenario_hash_full": scenario.hash(),
        "steps": str(int(steps)),
        "training": json.dumps(dict(training or {}), sort_keys=True, default=str),
    }


def save(
    path: str | os.PathLike,
    scenario: Scenario,
    method: str,
    tensors: Mapping[str, np.ndarray],
    steps: int,
    training: Mapping[str, Any] | None = None,
    nnbl: Mapping[str, Any] | None = None,
) -> Weights:
    """Validate and write weights (atomically: a temporary file renamed into place).
    Method "nn" needs ``nnbl``, the NnblConfig dict of the networks."""
    from safetensors.numpy import save_file

    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    if method == "nn":
        if nnbl is None:
            raise WeightsError("weights: method 'nn' needs the NNBL configuration (nnbl=)")
        meta = scenario_metadata(scenario, method, steps, int(nnbl["n_theta"]), training)
        meta["nnbl"] = json.dumps(dict(nnbl), sort_keys=True)
    else:
        if "angle_grid_rad" not in tensors:
            raise WeightsError("weights: tensor 'angle_grid_rad' is required")
        meta = scenario_metadata(scenario, method, steps, tensors["angle_grid_rad"].shape[0], training)
        extra_units = {k: v for k, v in ELEMENT_UNITS.items() if k in tensors}
        if extra_units:
            meta["units"] = json.dumps({**UNITS, **extra_units}, sort_keys=True)
    weights = validate(Weights(method, dict(tensors), meta, os.fspath(path)), scenario)
    tmp = f"{os.fspath(path)}.tmp"
    save_file(weights.tensors, tmp, metadata=meta)
    os.chmod(tmp, _default_mode())  # safetensors creates files 0600; weights are meant to be shared
    os.replace(tmp, path)
    return weights


def _default_mode() -> int:
    """0666 less the process umask (what open() would have given)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def load(
    path: str | os.PathLike, scenario: Scenario | None = None, method: str | None = None, other_array: bool = False
) -> Weights:
    """Read a weights file and validate it (against ``scenario`` when given, by the one rule of
    this module; against the expected ``method`` when given). ``other_array``: deploy on an array
    other than the one learned (the scenario hash is not compared). Raises WeightsError with a
    one-line reason."""
    from safetensors import safe_open

    name = os.fspath(path)
    if not os.path.isfile(name):
        raise WeightsError(f"{name}: no such weights file")
    try:
        with safe_open(name, framework="np") as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types for a corrupt header
        raise WeightsError(f"{name}: not a readable safetensors file ({exc})") from None
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise WeightsError(f"{name}: metadata lacks {', '.join(missing)} (not written by isac-train?)")
    if meta["format"] != FORMAT or meta["format_version"] != FORMAT_VERSION:
        raise WeightsError(
            f"{name}: format {meta['format']!r} version {meta['format_version']!r}, "
            f"expected {FORMAT!r} version {FORMAT_VERSION!r}"
        )
    if method is not None and meta["method"] != method:
        raise WeightsError(f"{name}: holds weights of method {meta['method']!r}, expected {method!r}")
    return validate(Weights(meta["method"], tensors, meta, name, bool(other_array)), scenario, name)


def _expect(name: str, tensors: Mapping[str, np.ndarray], key: str, shape: tuple[int, ...], kind: str) -> None:
    if key not in tensors:
        raise WeightsError(f"{name}: tensor '{key}' is missing")
    t = tensors[key]
    if t.shape != shape:
        raise WeightsError(f"{name}: tensor '{key}' has shape {t.shape}, expected {shape}")
    if kind == "real" and not np.issubdtype(t.dtype, np.floating):
        raise WeightsError(f"{name}: tensor '{key}' has dtype {t.dtype}, expected a real float type")
    if kind == "complex" and not np.issubdtype(t.dtype, np.complexfloating):
        raise WeightsError(f"{name}: tensor '{key}' has dtype {t.dtype}, expected a complex type")
    if not np.all(np.isfinite(t)):
        raise WeightsError(f"{name}: tensor '{key}' contains NaN or Inf")


def validate(weights: Weights, scenario: Scenario | None, name: str | None = None) -> Weights:
    """Check method, metadata against ``scenario`` (the scenario hash unless
    ``weights.other_array``), and the tensors' presence, shape, dtype and finiteness. Returns
    ``weights``; raises WeightsError naming the first problem."""
    name = weights.source if name is None else name
    meta, tensors = weights.metadata, weights.tensors
    if weights.method not in METHODS:
        raise WeightsError(f"{name}: method {weights.method!r} is not one of {', '.join(METHODS)}")
    try:
        K = int(meta["antennas"])
        grid = json.loads(meta["angle_grid"])
        n_theta = int(grid["points"])
        models = array_models(meta)
        if not models or any(m not in impairments.MODELS for m in models) or len(set(models)) != len(models):
            raise ValueError(f"array_models {list(models)} are not distinct models of {', '.join(impairments.MODELS)}")
    except (KeyError, ValueError, TypeError) as exc:
        raise WeightsError(f"{name}: malformed metadata ({exc})") from None
    if scenario is not None:
        checks = (
            ("antennas", K, scenario.array["antennas"]),
            ("subcarriers", int(meta["subcarriers"]), scenario.ofdm["subcarriers"]),
            ("carrier_hz", float(meta["carrier_hz"]), scenario.array["carrier_hz"]),
            ("subcarrier_spacing_hz", float(meta["subcarrier_spacing_hz"]), scenario.ofdm["spacing_hz"]),
        )
        for key, have, want in checks:
            if not math.isclose(have, want, rel_tol=1e-9):
                raise WeightsError(f"{name}: learned for {key} = {have:g}, the scenario has {want:g}")
        if meta["impairment"] != scenario.array["impairment"]:
            raise WeightsError(
                f"{name}: learned for impairment model {meta['impairment']!r}, the scenario has "
                f"{scenario.array['impairment']!r}"
            )
        have, want = models, impairments.learned_models(scenario)
        if have != want:
            raise WeightsError(
                f"{name}: learned for array models {', '.join(have)}, the scenario's array has "
                f"{', '.join(want)} (model.impairments: array.spacing_std_m, gain_std_db, "
                f"phase_std_deg, coupling_taps, dead_elements / dead_list)"
            )
        if not weights.other_array and meta["scenario_hash"] != scenario.hash(HASH_SECTIONS):
            raise WeightsError(
                f"{name}: learned on array/OFDM scenario {meta['scenario_hash']}, this scenario is "
                f"{scenario.hash(HASH_SECTIONS)} (different array, impairment seed or numerology; "
                f"to deploy on another array anyway: --weights-other-array)"
            )
    if weights.method == "nn":
        return _validate_nn(weights, scenario, name, K)
    _expect(name, tensors, "angle_grid_rad", (n_theta,), "real")
    if not np.allclose(tensors["angle_grid_rad"], full_angle_grid(n_theta), rtol=0, atol=1e-12):
        raise WeightsError(
            f"{name}: tensor 'angle_grid_rad' is not the uniform {n_theta}-point grid over [-90, 90] deg"
        )
    if weights.method == "impairment":
        _expect(name, tensors, "spacings_m", (K,), "real")
        _expect(name, tensors, "positions_m", (K,), "real")
        _validate_elements(name, tensors, models, K)
        taps = tensors["coupling"].shape[0] if "coupling" in models else 0
        if scenario is not None and "coupling" in models and taps != scenario.array["coupling_taps"]:
            raise WeightsError(
                f"{name}: learned with {taps} coupling taps, the scenario has "
                f"array.coupling_taps = {scenario.array['coupling_taps']}"
            )
    else:
        _expect(name, tensors, "dictionary", (K, n_theta), "complex")
    return weights


#: model -> the tensors impairment weights hold for it (besides spacings_m, positions_m)
ELEMENT_TENSORS = {"gain": ("gain_db", "phase_rad"), "dead": ("amplitude",), "coupling": ("coupling",)}


def _validate_elements(name: str, tensors: Mapping[str, np.ndarray], models: tuple[str, ...], K: int) -> None:
    """Impairment weights hold the tensors of exactly their element models (ELEMENT_TENSORS)."""
    for model, keys in ELEMENT_TENSORS.items():
        for key in keys:
            if model not in models:
                if key in tensors:
                    raise WeightsError(
                        f"{name}: tensor '{key}' of array model {model!r}, which the file's "
                        f"array_models {list(models)} do not list"
                    )
                continue
            if key == "coupling":
                t = tensors.get(key)
                taps = t.shape[0] if t is not None and t.ndim == 2 and t.shape[0] >= 1 else 1
                _expect(name, tensors, key, (taps, 2), "real")
                if taps > K - 1:
                    raise WeightsError(f"{name}: tensor 'coupling' has {taps} taps, at most K - 1 = {K - 1}")
            else:
                _expect(name, tensors, key, (K,), "real")


def nnbl_config(weights: Weights) -> NnblConfig:
    """The NnblConfig (nn_schema: layer sizes, no torch) of "nn" weights."""
    return NnblConfig(**json.loads(weights.metadata["nnbl"]))


def _validate_nn(weights: Weights, scenario: Scenario | None, name: str, K: int) -> Weights:
    """Method "nn": the NNBL configuration in the metadata fits the scenario and fixes the
    shape of every network tensor (all present, none extra, real, finite)."""
    try:
        cfg = json.loads(weights.metadata["nnbl"])
        keys = {"antennas", "max_targets", "n_theta", "n_tau", "limited"}
        if set(cfg) != keys:
            raise ValueError(f"keys {sorted(cfg)}, expected {sorted(keys)}")
        config = nnbl_config(weights).check()
    except (KeyError, ValueError, TypeError) as exc:
        raise WeightsError(f"{name}: malformed NNBL metadata 'nnbl' ({exc})") from None
    if config.antennas != K:
        raise WeightsError(f"{name}: NNBL configured for {config.antennas} antennas, metadata says {K}")
    if scenario is not None and config.max_targets != scenario.scene["max_targets"]:
        raise WeightsError(
            f"{name}: NNBL outputs T_max = {config.max_targets} targets, the scenario has "
            f"{scenario.scene['max_targets']}"
        )
    shapes = expected_shapes(config)
    extra = sorted(set(weights.tensors) - set(shapes))
    if extra:
        raise WeightsError(f"{name}: unexpected tensor '{extra[0]}' for NNBL {config}")
    for key, shape in shapes.items():
        _expect(name, weights.tensors, key, shape, "real")
    return weights
