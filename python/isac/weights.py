"""Learned weights on disk: safetensors (numpy API, no pickle) with string metadata, and the
one rule that ties a file to a scenario. The format only; what a method's tensors must be is the
method's own business (the transceiver layer: ``transceiver.load_weights`` reads a file here,
then validates it by its method, once per process).

File layout (docs/trainer.md):

  tensors     the method's (e.g. impairment: spacings_m, positions_m, angle_grid_rad and the
              learned element models' tensors; dictionary: dictionary, angle_grid_rad; nn: the
              network tensors)
  metadata    format, format_version, method, antennas, subcarriers, carrier_hz,
              subcarrier_spacing_hz, impairment, angle_grid, delay_grid, units (JSON), scenario_hash,
              scenario_hash_full, steps, training (JSON), array_models (JSON list: the array models
              impairment learning learns on the scenario, model.impairments.learned_models; a file
              without it was written before the element models: ["spacing"]), and what the method
              adds (nn: nnbl, the network sizes)

One rule (:func:`check_scenario`), everywhere: a file fits a scenario when K, S, f_c, Delta_f, the
impairment model and the array models are equal AND the scenario hash is equal:
``Scenario.hash(("array", "ofdm"))``, the physical array (size, carrier, impairment model, spacing
std and seed, the element models' keys when they are on) and the OFDM numerology the weights were
learned on. Scene, transmitter and receiver settings may differ at test time (the trainer
randomises the sectors and eta/phi): they are recorded (``scenario_hash_full``), not enforced. The
one explicit way to deploy weights on another array (a mismatch study, or real hardware) is
``other_array=True`` (``--weights-other-array``, block parameter ``weights_other_array``): the hash
is then not compared, all else is.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .config import SPEED_OF_LIGHT, Scenario
from .model import impairments
from .model.grids import full_angle_grid

FORMAT = "gr-isac-weights"
FORMAT_VERSION = "1"
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


class WeightsError(ValueError):
    """A weights file is unreadable or does not fit the scenario; the message says why."""


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


@dataclass
class Weights:
    """Learned weights: ``method``, numpy ``tensors`` and string ``metadata``; ``source`` is the
    file it was read from (for messages), ``other_array`` True when it was validated for another
    array than the one it was learned on."""

    method: str
    tensors: dict[str, np.ndarray]
    metadata: dict[str, str] = field(default_factory=dict)
    source: str = "weights"
    other_array: bool = False

    @property
    def angle_grid_rad(self) -> np.ndarray:
        return self.tensors["angle_grid_rad"]

    @property
    def steps(self) -> int:
        return int(self.metadata.get("steps", 0))

    @property
    def antennas(self) -> int:
        return int(self.metadata["antennas"])

    @property
    def wavelength_m(self) -> float:
        """lambda = c / f_c of the carrier the weights were learned at (m)."""
        return SPEED_OF_LIGHT / float(self.metadata["carrier_hz"])

    @property
    def array_models(self) -> tuple[str, ...]:
        """The array models the weights were learned for (metadata ``array_models``;
        ``("spacing",)`` for a file written before the element models existed)."""
        if "array_models" not in self.metadata:
            return LEGACY_MODELS
        return tuple(json.loads(self.metadata["array_models"]))


def scenario_metadata(
    scenario: Scenario, method: str, steps: int, angle_points: int, training: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Metadata strings of a weights file of ``method`` learned on ``scenario``."""
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


def file_mode() -> int:
    """0666 less the process umask: the mode open() gives a new file (safetensors and mkstemp
    create files 0600; weights and results are meant to be shared)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write(path: str | os.PathLike, weights: Weights) -> None:
    """Write ``weights`` (tensors and metadata) atomically: a temporary file renamed into place."""
    from safetensors.numpy import save_file

    tmp = f"{os.fspath(path)}.tmp"
    save_file({k: np.ascontiguousarray(v) for k, v in weights.tensors.items()}, tmp, metadata=weights.metadata)
    os.chmod(tmp, file_mode())
    os.replace(tmp, path)


def read(path: str | os.PathLike, other_array: bool = False) -> Weights:
    """Read a weights file and check its format (safetensors, metadata of this format and
    version). The method's own validation is the transceiver layer's (``load_weights``)."""
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
    return Weights(meta["method"], tensors, meta, name, bool(other_array))


def check_scenario(weights: Weights, scenario: Scenario | None) -> None:
    """The one rule (module docstring): the metadata of ``weights`` against ``scenario`` (the
    scenario hash unless ``weights.other_array``), and the array models against the registered
    ones. WeightsError naming the first problem."""
    name, meta = weights.source, weights.metadata
    try:
        K = int(meta["antennas"])
        json.loads(meta["angle_grid"])["points"]
        models = weights.array_models
        known = impairments.models()
        if not models or any(m not in known for m in models) or len(set(models)) != len(models):
            raise ValueError(f"array_models {list(models)} are not distinct models of {', '.join(known)}")
    except (KeyError, ValueError, TypeError) as exc:
        raise WeightsError(f"{name}: malformed metadata ({exc})") from None
    if scenario is None:
        return
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
    want = impairments.learned_models(scenario)
    if models != want:
        raise WeightsError(
            f"{name}: learned for array models {', '.join(models)}, the scenario's array has "
            f"{', '.join(want)} (model.impairments: array.spacing_std_m and the element models' keys)"
        )
    if not weights.other_array and meta["scenario_hash"] != scenario.hash(HASH_SECTIONS):
        raise WeightsError(
            f"{name}: learned on array/OFDM scenario {meta['scenario_hash']}, this scenario is "
            f"{scenario.hash(HASH_SECTIONS)} (different array, impairment seed or numerology; "
            f"to deploy on another array anyway: --weights-other-array)"
        )


def expect(weights: Weights, key: str, shape: tuple[int, ...], kind: str = "real") -> np.ndarray:
    """Tensor ``key`` of ``weights``, present, of ``shape``, of a real or complex float type
    (``kind``) and finite; WeightsError naming the file and the tensor otherwise."""
    name, tensors = weights.source, weights.tensors
    if key not in tensors:
        raise WeightsError(f"{name}: tensor '{key}' is missing")
    t = tensors[key]
    if t.shape != tuple(shape):
        raise WeightsError(f"{name}: tensor '{key}' has shape {t.shape}, expected {tuple(shape)}")
    if kind == "real" and not np.issubdtype(t.dtype, np.floating):
        raise WeightsError(f"{name}: tensor '{key}' has dtype {t.dtype}, expected a real float type")
    if kind == "complex" and not np.issubdtype(t.dtype, np.complexfloating):
        raise WeightsError(f"{name}: tensor '{key}' has dtype {t.dtype}, expected a complex type")
    if not np.all(np.isfinite(t)):
        raise WeightsError(f"{name}: tensor '{key}' contains NaN or Inf")
    return t


def expect_only(weights: Weights, keys) -> None:
    """No tensor beyond ``keys``; WeightsError naming the first extra one."""
    extra = sorted(set(weights.tensors) - set(keys))
    if extra:
        raise WeightsError(f"{weights.source}: unexpected tensor '{extra[0]}' for method {weights.method!r}")


def expect_angle_grid(weights: Weights) -> int:
    """The ``angle_grid_rad`` tensor: the uniform grid over [-90, 90] deg of the metadata's
    ``angle_grid`` points. Returns the number of points."""
    n = int(json.loads(weights.metadata["angle_grid"])["points"])
    grid = expect(weights, "angle_grid_rad", (n,))
    if not np.allclose(grid, full_angle_grid(n), rtol=0, atol=1e-12):
        raise WeightsError(
            f"{weights.source}: tensor 'angle_grid_rad' is not the uniform {n}-point grid over [-90, 90] deg"
        )
    return n


__all__ = [
    "DEFAULT_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "HASH_SECTIONS",
    "UNITS",
    "Weights",
    "WeightsError",
    "check_scenario",
    "default_weights_path",
    "expect",
    "expect_angle_grid",
    "expect_only",
    "file_mode",
    "read",
    "scenario_metadata",
    "write",
]
