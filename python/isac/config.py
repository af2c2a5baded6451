"""Scenario configuration: one validated object for array, OFDM, scene, transmitter,
receiver and run settings, loaded from TOML with ``--set key=value`` overrides.

Defaults are the simulation parameters of Sec. V-A of the paper. Every key, its default,
unit and allowed range is in ONE table, ``config_schema.KEYS``; ``docs/config.md`` is
generated from it. Units are SI (m, Hz, s) unless the key name says otherwise (``_deg``,
``_db``).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import os
import tomllib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .config_schema import DEFAULTS, KEYS, MAX_EXACT_INT

SPEED_OF_LIGHT = 299_792_458.0  # m/s

# DEFAULTS (section -> key -> default, from config_schema.KEYS with the keys plug-ins registered;
# the type of a default is the type required) is config_schema's one dict.

#: Largest peak power allowed in the float32 frames and angle-delay maps: float32 overflows
#: at 3.4e38; 1e37 leaves 15 dB for the CN(0, sigma_r^2) gain tail and several targets.
MAX_FLOAT32_POWER = 1e37


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
    spec = KEYS.get(key)
    if spec is not None and spec.kind == "list":  # a list of any length of integers
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list of integers, got {value!r}")
        return [_coerce(f"{key} entry", v, 0) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_EXACT_INT:
        # larger integers are not exactly representable in float64 (JSON, GRC, numpy)
        kind = "an integer" if isinstance(default, int) else "a number"
        raise ConfigError(
            f"{key} must be {kind} of magnitude <= 2^53 = {MAX_EXACT_INT} (larger integers are "
            f"not exactly representable as float64), got {value}"
        )
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or float(value) != int(value)
        ):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        if abs(value) > MAX_EXACT_INT:
            raise ConfigError(
                f"{key} must be an integer of magnitude <= 2^53 = {MAX_EXACT_INT} (larger integers "
                f"are not exactly representable as float64), got {value!r}"
            )
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


def _grid_angle_inside(lo_rad: float, hi_rad: float, n: int) -> bool:
    """Whether an angle of the LS synthesis grid, np.linspace(-pi/2, pi/2, n)
    (model/grids.full_angle_grid), lies in [lo_rad, hi_rad]. Computed as numpy does
    (i * step + start, the last point = stop) for the few points around lo_rad."""
    start, stop = -math.pi / 2, math.pi / 2
    if n == 1:
        return lo_rad <= start <= hi_rad
    step = (stop - start) / (n - 1)
    i0 = math.floor((lo_rad - start) / step)
    for i in range(max(0, i0 - 1), min(n - 1, i0 + 2) + 1):
        angle = stop if i == n - 1 else i * step + start
        if lo_rad <= angle <= hi_rad:
            return True
    return False


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
    def of(cls, value: "Scenario | str | os.PathLike | Mapping | None") -> "Scenario":
        """The scenario ``value`` stands for: a Scenario itself, a TOML file path, a tree of
        sections (``from_dict``), or None / "" for the paper's default (Sec. V-A). How every
        block and app takes its ``scenario`` argument."""
        if isinstance(value, Scenario):
            return value
        if value is None or (isinstance(value, str) and not value.strip()):
            return cls.default()
        if isinstance(value, (str, os.PathLike)):
            return cls.load(os.fspath(value))
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        raise ConfigError(
            f"a scenario is a Scenario, a TOML file path or None (the default), got {type(value).__name__}"
        )

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
                raw = fh.read()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ConfigError(
                    f"{path}: not a UTF-8 text file (TOML must be UTF-8): byte 0x{raw[exc.start]:02x} "
                    f"at offset {exc.start}"
                ) from None
            try:
                tree = tomllib.loads(text)
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
        """Check every key against its range in the schema (config_schema.KEYS), then the
        cross-key rules; raise ConfigError naming the key and its allowed range."""
        d = self.data
        for spec in KEYS.values():  # keys registered after this scenario's base was made: their default
            d[spec.section].setdefault(spec.name, copy.deepcopy(spec.default))
            ref = None
            if spec.maximum_ref is not None:
                ref = (spec.maximum_ref, _DERIVED_BOUNDS[spec.maximum_ref](self))
            message = spec.violation(d[spec.section][spec.name], ref)
            if message:
                raise ConfigError(message)
        for key in ("scene.target_sector_deg", "scene.comm_sector_deg"):
            self._check_beam_grid_sector(key)
        self._check_dynamic_range()
        self._check_element_impairments()
        self._check_motion()
        return self

    def _check_motion(self) -> None:
        """Moving targets over M OFDM symbols: the speeds stay within the unambiguous speed
        lambda / (4 T_O) (|f_D| <= 1 / (2 T_O): the Doppler phase per symbol within +-pi), and with
        several symbols (or the time-domain ICI model) the delays of the range interval fit in the
        cyclic prefix, which the per-symbol model of the echo assumes."""
        lo, hi = self.speed_interval_mps
        vmax = self.unambiguous_speed_mps
        if max(abs(lo), abs(hi)) > vmax:
            raise ConfigError(
                f"scene.speed_mps = [{lo:g}, {hi:g}] m/s exceeds the unambiguous speed lambda / (4 T_O) = "
                f"{vmax:.4g} m/s (f_c = {self.data['array']['carrier_hz']:g} Hz, T_O = (1 + ofdm.cp_fraction) / "
                f"ofdm.spacing_hz = {self.symbol_duration_s * 1e6:.4g} us): keep every |v| <= {vmax:.4g} m/s"
            )
        o = self.data["ofdm"]
        if o["symbols"] > 1 or o["ici"] == "on":
            r_max = self.range_interval_m[1]
            r_cp = SPEED_OF_LIGHT * o["cp_fraction"] / (2.0 * o["spacing_hz"])
            if r_max > r_cp:
                raise ConfigError(
                    f"scene.range_m reaches {r_max:g} m, beyond the {r_cp:.4g} m whose delays fit in the cyclic "
                    f"prefix (c * ofdm.cp_fraction / (2 ofdm.spacing_hz), ofdm.cp_fraction = {o['cp_fraction']:g}): "
                    f"with ofdm.symbols > 1 or ofdm.ici = on, raise ofdm.cp_fraction to at least "
                    f"{2.0 * r_max * o['spacing_hz'] / SPEED_OF_LIGHT:.4g} or lower the range"
                )

    def _check_element_impairments(self) -> None:
        """The element models of the array (model/impairments.py): at most K - 1 coupling
        taps (a K-element array has K - 1 neighbour distances), and the dead elements given
        either as a count or as a list."""
        a = self.data["array"]
        if a["coupling_taps"] > a["antennas"] - 1:
            raise ConfigError(
                f"array.coupling_taps must be <= array.antennas - 1 = {a['antennas'] - 1} (neighbour "
                f"distances of the array), got {a['coupling_taps']}"
            )
        if a["dead_elements"] > 0 and a["dead_list"]:
            raise ConfigError(
                f"array.dead_elements = {a['dead_elements']} and array.dead_list = {a['dead_list']} "
                "are exclusive: give the dead elements as a count (drawn) or as a list of indices"
            )

    def _check_beam_grid_sector(self, key: str) -> None:
        """The desired beampattern b of (6) is K on the LS grid angles inside the sector and 0
        elsewhere (model/beamforming.desired_beampattern); with no grid angle inside, b = 0
        and the LS beam (7) is zero. The same grid restricts the dOMP argmax to the sector."""
        n = self.data["transmitter"]["beam_grid"]
        lo, hi = self.get(key)
        if _grid_angle_inside(math.radians(lo), math.radians(hi), n):
            return
        if n == 1:
            grid = "transmitter.beam_grid = 1: the single angle -90 degrees"
            fix = "raise transmitter.beam_grid"
        else:
            step = 180.0 / (n - 1)
            width = math.ceil(step * 1e4) / 1e4
            grid = f"transmitter.beam_grid = {n} angles over [-90, 90] degrees, step 180/{n - 1} = {step:.4g} degrees"
            fix = f"make it at least {width:g} degrees wide or raise transmitter.beam_grid"
        raise ConfigError(
            f"{key} = [{lo}, {hi}] contains no angle of the LS beam grid ({grid}), so the desired "
            f"beampattern (6) and its beam are zero: {fix}"
        )

    def _check_dynamic_range(self) -> None:
        """The frames and maps are float32. Peak powers, from (1), (4) and the map (10) with
        |a^T f|^2 <= K P: sensing map N0 K S (1 + 10^(SNR_r/10) P K), comm samples
        10^(SNR_c/10) N0 P K; both must stay <= MAX_FLOAT32_POWER."""
        sc, tx = self.data["scene"], self.data["transmitter"]
        n0, p = sc["noise_power"], tx["power"]
        K, S = self.data["array"]["antennas"], self.data["ofdm"]["subcarriers"]
        sensing = n0 * K * S * (1.0 + 10.0 ** (sc["snr_sensing_db"] / 10.0) * p * K)
        comm = 10.0 ** (sc["snr_comm_db"] / 10.0) * n0 * p * K
        for what, peak, formula in (
            ("peak angle-delay map power", sensing, "N0*K*S*(1 + 10^(scene.snr_sensing_db/10)*P*K)"),
            ("peak comm sample power", comm, "10^(scene.snr_comm_db/10)*N0*P*K"),
        ):
            if not peak <= MAX_FLOAT32_POWER:
                raise ConfigError(
                    f"scene.noise_power = {n0:g} with transmitter.power = {p:g}, array.antennas = {K}, "
                    f"ofdm.subcarriers = {S} and the SNRs gives a {what} {formula} = {peak:.3g} above "
                    f"{MAX_FLOAT32_POWER:g} (float32 overflows at 3.4e38): lower scene.noise_power or "
                    f"transmitter.power (N0 only sets the scale: the SNRs fix the physics)"
                )

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
            if key in KEYS:  # registered (config_schema.register_keys) after this scenario was made
                return copy.deepcopy(KEYS[key].default)
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
        """SHA-256 (hex, first 16 chars) of the physical scenario, excluding ``run``.

        Keys whose schema entry has ``hash_default=False`` (the array's element impairment
        models: gain_std_db, phase_std_deg, coupling_*, dead_*, weak_gain) enter the hash only
        when they differ from their default ("off"): a scenario that does not use them hashes as
        it did before they existed (the default scenario is 321bd814ba1ac987, the hash that
        the shipped weights record), and turning one on changes the hash."""
        blob = json.dumps(
            {s: {k: v for k, v in self.data[s].items() if _hashed(f"{s}.{k}", v)} for s in sections}, sort_keys=True
        )
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
    def symbol_duration_s(self) -> float:
        """T_O = (1 + cp) / Delta_f: one OFDM symbol with its cyclic prefix (s)."""
        o = self.data["ofdm"]
        return (1.0 + o["cp_fraction"]) / o["spacing_hz"]

    @property
    def unambiguous_speed_mps(self) -> float:
        """lambda / (4 T_O): the largest |v| whose Doppler phase per symbol 2 pi f_D T_O stays
        within +-pi (m/s)."""
        return self.wavelength_m / (4.0 * self.symbol_duration_s)

    @property
    def speed_resolution_mps(self) -> float:
        """lambda / (2 M T_O): the Rayleigh resolution of the speed over M symbols (m/s)."""
        return self.wavelength_m / (2.0 * self.data["ofdm"]["symbols"] * self.symbol_duration_s)

    @property
    def doppler_points(self) -> int:
        """N_v, the number of speeds of the sensing receiver's Doppler grid over scene.speed_mps
        (the one definition: model.dictionaries.doppler_speeds spaces this many speeds, the map
        stream and the display size their range-velocity maps with it): 1 for frames of one OFDM
        symbol (no Doppler dictionary; the map is the speed-0 slice) and for a one-speed interval;
        else receiver.doppler_grid, or (0) the fewest points whose step is at most half the speed
        resolution res = lambda / (2 M T_O) (m/s): ceil(2 (v_max - v_min) / res) + 1."""
        lo, hi = self.speed_interval_mps
        if self.data["ofdm"]["symbols"] == 1 or hi <= lo:
            return 1
        return int(self.data["receiver"]["doppler_grid"] or math.ceil(2.0 * (hi - lo) / self.speed_resolution_mps) + 1)

    @property
    def speed_interval_mps(self) -> tuple[float, float]:
        lo, hi = self.data["scene"]["speed_mps"]
        return float(lo), float(hi)

    def derived_bound(self, name: str) -> float:
        """Value of a bound that depends on other keys (``maximum_ref`` of the schema)."""
        return _DERIVED_BOUNDS[name](self)

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


def _hashed(key: str, value: Any) -> bool:
    """Whether ``key`` = ``value`` enters Scenario.hash (config_schema.Key.hash_default)."""
    spec = KEYS[key]
    return spec.hash_default or value != spec.default


#: the bounds that depend on other keys (``config_schema.Key.maximum_ref``): cross-key rules
_DERIVED_BOUNDS = {
    "ofdm.subcarriers": lambda s: s.data["ofdm"]["subcarriers"],  # comm_taps <= S
    "c/(2*ofdm.spacing_hz)": lambda s: s.unambiguous_range_m,  # range without delay aliasing
    "array.antennas - 1": lambda s: s.data["array"]["antennas"] - 1,  # at least one live element
}


__all__ = ["DEFAULTS", "ConfigError", "MAX_FLOAT32_POWER", "SPEED_OF_LIGHT", "Scenario"]
