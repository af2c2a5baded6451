"""Scenario configuration: one validated object for array, OFDM, scene, transmitter,
receiver and run settings, loaded from TOML with ``--set key=value`` overrides.

Defaults are the simulation parameters of Sec. V-A of the paper. Every key is
documented in ``docs/config.md``. Units are SI (m, Hz, s) unless the key name says
otherwise (``_deg``, ``_db``).
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import tomllib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

SPEED_OF_LIGHT = 299_792_458.0  # m/s

# section -> key -> default value. The type of the default is the type required.
DEFAULTS: dict[str, dict[str, Any]] = {
    "array": {
        "antennas": 64,  # K
        "carrier_hz": 60e9,  # f_c
        "spacing_std_m": 2e-4,  # sigma_lambda = lambda/25 at 60 GHz; 0 = ideal array
        "impairment_seed": 1,
        "impairment": "spacing",  # "spacing" (Example 1) | "cumulative"
    },
    "ofdm": {
        "subcarriers": 256,  # S
        "spacing_hz": 120e3,  # Delta_f
    },
    "scene": {
        "max_targets": 5,  # T_max
        "snr_sensing_db": 15.0,  # SNR_r = K sigma_r^2 / N0
        "snr_comm_db": 20.0,  # SNR_c = sum sigma_l^2 / (S N0)
        "comm_taps": 5,  # L
        "target_sector_deg": [-40.0, -20.0],  # [theta_min, theta_max]
        "comm_sector_deg": [30.0, 50.0],  # [phi_min, phi_max]
        "range_m": [10.0, 190.0],  # [R_min, R_max]
        "noise_power": 1.0,  # N0
    },
    "transmitter": {
        "eta": 0.5,  # ISAC trade-off of eq. (5), 1 = sensing only
        "phi_rad": 0.0,  # inter-beam phase of eq. (5)
        "power": 1.0,  # P
        "beam_grid": 720,  # N_theta of the LS synthesis grid over [-90, 90] deg (6)-(7)
        "beam_rcond": 0.1,  # relative singular-value cut-off of the LS solve (7); keeps all of the nominal ULA
    },
    "receiver": {
        "angle_grid": 720,  # N_theta of the OMP angle grid over the target sector
        "delay_grid": 200,  # N_tau of the OMP delay grid over the range interval
        "p_fa": 1e-2,  # false-alarm rate the threshold is calibrated to
        "gospa_c_m": 90.0,  # gamma (cut-off) of GOSPA (17), (R_max - R_min)/2
        "gospa_p": 2.0,  # p of GOSPA (17)
        "gospa_mu": 2.0,  # mu of GOSPA (17)
    },
    "run": {
        "frames": 200,  # test frames
        "calibration_frames": 200,  # frames used to calibrate the threshold
        "seed": 0,
        "batch": 50,  # frames processed at once (memory/speed)
    },
}

_CHOICES = {("array", "impairment"): ("spacing", "cumulative")}


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names it and its range."""


def _flat_keys() -> list[str]:
    return [f"{s}.{k}" for s, sec in DEFAULTS.items() for k in sec]


def _unknown(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, _flat_keys(), n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"unknown config key '{key}'{hint}")


def _unknown_section(section: str, values: Any) -> ConfigError:
    """Unknown section: suggest the closest full key when the section names keys (so
    ``arry.antennas`` suggests ``array.antennas``), else the closest section."""
    if isinstance(values, Mapping) and values:
        return _unknown(f"{section}.{next(iter(values))}")
    close = difflib.get_close_matches(section, list(DEFAULTS), n=1, cutoff=0.5)
    hint = f"; did you mean '[{close[0]}]'?" if close else f"; sections are {', '.join(DEFAULTS)}"
    return ConfigError(f"unknown config section '{section}'{hint}")


def _coerce(key: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or float(value) != int(value)):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, list):
        if not isinstance(value, (list, tuple)) or len(value) != len(default):
            raise ConfigError(f"{key} must be a list of {len(default)} numbers, got {value!r}")
        return [_coerce(key, v, d) for v, d in zip(value, default)]
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    raise AssertionError(key)


def _parse_value(text: str) -> Any:
    """Parse the value of ``--set key=value`` as TOML (numbers, lists, booleans), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


@dataclass(frozen=True)
class Scenario:
    """Validated scenario. Access values as ``scenario.array['antennas']`` or the
    derived properties below. Immutable: use :meth:`with_overrides` to change it."""

    data: Mapping[str, Mapping[str, Any]]

    # --- construction -------------------------------------------------------------
    @classmethod
    def default(cls) -> "Scenario":
        return cls(copy.deepcopy(DEFAULTS)).validated()

    @classmethod
    def from_dict(cls, tree: Mapping[str, Any], base: "Scenario | None" = None) -> "Scenario":
        data = copy.deepcopy(dict((base or cls.default()).data))
        for section, values in tree.items():
            if section not in DEFAULTS:
                raise _unknown_section(section, values)
            if not isinstance(values, Mapping):
                raise ConfigError(f"[{section}] must be a table of keys")
            for key, value in values.items():
                name = f"{section}.{key}"
                if key not in DEFAULTS[section]:
                    raise _unknown(name)
                data[section][key] = _coerce(name, value, DEFAULTS[section][key])
        return cls(data).validated()

    @classmethod
    def load(cls, path: str | None = None, overrides: Iterable[str] = ()) -> "Scenario":
        """Load a TOML file (or the defaults when ``path`` is None), then apply
        ``key=value`` overrides in order."""
        scenario = cls.default()
        if path is not None:
            with open(path, "rb") as fh:
                try:
                    tree = tomllib.load(fh)
                except tomllib.TOMLDecodeError as exc:
                    raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
            scenario = cls.from_dict(tree, scenario)
        return scenario.with_overrides(overrides)

    def with_overrides(self, overrides: Iterable[str] | Mapping[str, Any]) -> "Scenario":
        tree: dict[str, dict[str, Any]] = {}
        items = overrides.items() if isinstance(overrides, Mapping) else (self._split(o) for o in overrides)
        for key, value in items:
            if "." not in key:
                raise _unknown(key)
            section, name = key.split(".", 1)
            if section not in DEFAULTS:
                raise _unknown(key)
            tree.setdefault(section, {})[name] = value
        return Scenario.from_dict(tree, self) if tree else self

    @staticmethod
    def _split(item: str) -> tuple[str, Any]:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        return key.strip(), _parse_value(text.strip())

    # --- validation ---------------------------------------------------------------
    def validated(self) -> "Scenario":
        d = self.data

        def positive(key: str, integer: bool = False) -> None:
            s, k = key.split(".")
            v = d[s][k]
            if not (v > 0) or not math.isfinite(v):
                kind = "an integer >= 1" if integer else "a number > 0"
                raise ConfigError(f"{key} must be {kind}, got {v!r}")

        for key in ("array.antennas", "ofdm.subcarriers", "receiver.angle_grid", "receiver.delay_grid",
                    "transmitter.beam_grid", "run.frames", "run.calibration_frames", "run.batch",
                    "scene.comm_taps", "scene.max_targets"):
            positive(key, integer=True)
        for key in ("array.carrier_hz", "ofdm.spacing_hz", "scene.noise_power", "receiver.gospa_c_m",
                    "receiver.gospa_p", "transmitter.power"):
            positive(key)
        for key in ("array.impairment_seed", "run.seed"):  # numpy SeedSequence needs non-negative seeds
            s, k = key.split(".")
            if d[s][k] < 0:
                raise ConfigError(f"{key} must be an integer >= 0, got {d[s][k]}")
        if d["array"]["spacing_std_m"] < 0 or not math.isfinite(d["array"]["spacing_std_m"]):
            raise ConfigError(f"array.spacing_std_m must be >= 0, got {d['array']['spacing_std_m']!r}")
        if d["scene"]["comm_taps"] > d["ofdm"]["subcarriers"]:
            raise ConfigError(f"scene.comm_taps must be in [1, ofdm.subcarriers = {d['ofdm']['subcarriers']}], "
                              f"got {d['scene']['comm_taps']}")
        for key in ("scene.snr_sensing_db", "scene.snr_comm_db", "transmitter.phi_rad"):
            s, k = key.split(".")
            if not math.isfinite(d[s][k]):
                raise ConfigError(f"{key} must be finite, got {d[s][k]!r}")
        for key in ("scene.target_sector_deg", "scene.comm_sector_deg"):
            s, k = key.split(".")
            lo, hi = d[s][k]
            if not (-90.0 <= lo < hi <= 90.0):
                raise ConfigError(f"{key} must satisfy -90 <= min < max <= 90 (degrees), got [{lo}, {hi}]")
        rmin, rmax = d["scene"]["range_m"]
        r_unamb = self.unambiguous_range_m
        if not (0.0 <= rmin < rmax <= r_unamb):
            raise ConfigError(f"scene.range_m must satisfy 0 <= min < max <= c/(2*ofdm.spacing_hz) = "
                              f"{r_unamb:.1f} m, got [{rmin}, {rmax}]")
        if not (0.0 <= d["transmitter"]["eta"] <= 1.0):
            raise ConfigError(f"transmitter.eta must be in [0, 1], got {d['transmitter']['eta']}")
        if not (0.0 < d["receiver"]["p_fa"] < 1.0):
            raise ConfigError(f"receiver.p_fa must be in (0, 1), got {d['receiver']['p_fa']}")
        if not (0.0 < d["receiver"]["gospa_mu"] <= 2.0):
            raise ConfigError(f"receiver.gospa_mu must be in (0, 2], got {d['receiver']['gospa_mu']}")
        if d["receiver"]["gospa_p"] < 1.0:
            raise ConfigError(f"receiver.gospa_p must be >= 1, got {d['receiver']['gospa_p']}")
        if not (0.0 <= d["transmitter"]["beam_rcond"] < 1.0):
            raise ConfigError(f"transmitter.beam_rcond must be in [0, 1), got {d['transmitter']['beam_rcond']}")
        for (s, k), choices in _CHOICES.items():
            if d[s][k] not in choices:
                raise ConfigError(f"{s}.{k} must be one of {', '.join(choices)}; got {d[s][k]!r}")
        return self

    # --- access -------------------------------------------------------------------
    def __getattr__(self, name: str) -> Mapping[str, Any]:
        if name in DEFAULTS:
            return self.data[name]
        raise AttributeError(name)

    def get(self, key: str) -> Any:
        section, name = key.split(".", 1)
        try:
            return self.data[section][name]
        except KeyError:
            raise _unknown(key) from None

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return copy.deepcopy({s: dict(v) for s, v in self.data.items()})

    def to_toml(self) -> str:
        lines = []
        for section, values in self.data.items():
            lines.append(f"[{section}]")
            for key, value in values.items():
                lines.append(f"{key} = {json.dumps(value)}")
            lines.append("")
        return "\n".join(lines)

    def hash(self, sections: Iterable[str] = ("array", "ofdm", "scene", "transmitter", "receiver")) -> str:
        """SHA-256 (hex, first 16 chars) of the physical scenario, excluding ``run``."""
        blob = json.dumps({s: self.data[s] for s in sections}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    # --- derived quantities --------------------------------------------------------
    @property
    def wavelength_m(self) -> float:
        """lambda = c / f_c (m)."""
        return SPEED_OF_LIGHT / self.data["array"]["carrier_hz"]

    @property
    def unambiguous_range_m(self) -> float:
        """Largest range without delay aliasing, c / (2 Delta_f) (m)."""
        return SPEED_OF_LIGHT / (2.0 * self.data["ofdm"]["spacing_hz"])

    @property
    def target_sector_rad(self) -> tuple[float, float]:
        lo, hi = self.data["scene"]["target_sector_deg"]
        return math.radians(lo), math.radians(hi)

    @property
    def comm_sector_rad(self) -> tuple[float, float]:
        lo, hi = self.data["scene"]["comm_sector_deg"]
        return math.radians(lo), math.radians(hi)

    @property
    def range_interval_m(self) -> tuple[float, float]:
        lo, hi = self.data["scene"]["range_m"]
        return float(lo), float(hi)
