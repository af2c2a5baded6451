"""Helpers shared by the blocks: parameter checks whose errors name the block and the
parameter, the Scenario a block's parameters describe, and PMT conversions."""
from __future__ import annotations

import copy
import math
import numbers

import numpy as np
import pmt

from ..config import ConfigError, Scenario
from ..config_schema import BLOCK_PARAMETERS


class BlockParameterError(ValueError):
    """A block constructor parameter is invalid; the message names block and parameter."""


def error(block: str, param: str, message: str) -> BlockParameterError:
    return BlockParameterError(f"{block}: parameter '{param}' {message}")


def positive_int(block: str, param: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or float(value) != int(value) or int(value) < 1:
        raise error(block, param, f"must be an integer >= 1, got {value!r}")
    return int(value)


def number(block: str, param: str, value, minimum: float | None = None, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise error(block, param, f"must be a finite number, got {value!r}")
    value = float(value)
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise error(block, param, f"must be {'>' if strict else '>='} {minimum}, got {value}")
    return value


def interval(block: str, param: str, value, unit: str = "") -> list[float]:
    """A [min, max] pair with min < max."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise error(block, param, f"must be a pair [min, max]{unit}, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise error(block, param, f"must satisfy min < max{unit}, got [{lo}, {hi}]")
    return [lo, hi]


#: block parameter name -> scenario key: ONE name per key in every block, from the one
#: configuration schema (config_schema.KEYS, listed in docs/config.md)
PARAMETER_KEYS = BLOCK_PARAMETERS


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list, np.ndarray)):
        return [v.item() if isinstance(v, np.generic) else v for v in value]
    return value


def scenario(block: str, params: dict) -> Scenario:
    """The Scenario (defaults of Sec. V-A) with the block's scenario parameters ``params``
    (name -> value, names of PARAMETER_KEYS) applied. A value the Scenario refuses is reported
    with the block's parameter name as well as the config key."""
    keys = {name: PARAMETER_KEYS[name] for name in params}
    try:
        return Scenario.default().with_overrides({keys[n]: _plain(v) for n, v in params.items()})
    except ConfigError as exc:
        text = str(exc)
        for name, key in keys.items():
            if text.startswith(key):
                raise error(block, name, f"({key}): {text}") from None
        for name, key in keys.items():
            if key in text:
                raise error(block, name, f"({key}): {text}") from None
        raise BlockParameterError(f"{block}: {text}") from None


def scenario_parameters(block_class, scenario: Scenario) -> dict:
    """The constructor arguments of ``block_class`` that a scenario gives (its parameters named in
    PARAMETER_KEYS), for ``block_class.from_scenario``: the inverse of :func:`scenario`."""
    import inspect

    names = inspect.signature(block_class.__init__).parameters
    return {name: _plain(scenario.get(key)) for name, key in PARAMETER_KEYS.items() if name in names}


def load_weights(block: str, weights, scenario: Scenario, method: str, other_array: bool):
    """The weights.Weights of a block: ``weights`` is an already loaded Weights object (isac-sim and
    Python users load a file once and pass it to every block), a file path (read and validated
    here against the block's scenario, by the one rule of weights.load), or empty / None (no
    weights). The method must need them (transceiver.get). Errors name the block and parameter."""
    from .. import transceiver
    from ..weights import Weights, WeightsError, load, validate

    try:
        if isinstance(weights, Weights):  # loaded once by the caller: checked, not read again
            w = weights
            if other_array and not weights.other_array:  # a shallow copy: shares tensors and cached networks
                w = copy.copy(weights)
                w.other_array = True
            validate(w, scenario)
        elif weights:
            w = load(str(weights), scenario, None, bool(other_array))
        else:
            w = None
    except WeightsError as exc:
        raise error(block, "weights", str(exc)) from None
    if w is not None and method == "":
        method = w.method
    try:
        transceiver.get(method or "baseline", w)
    except ValueError as exc:
        text = str(exc)
        raise error(block, "method", text[len("method "):] if text.startswith("method ") else f"({text})") from None
    return method or "baseline", w


def check_vlen(block: str, param: str, got: int, expected: int, what: str) -> None:
    if got != expected:
        raise error(block, param, f"gives {what} = {expected}, but the vector length is {got}")


# --- PMT -------------------------------------------------------------------------------
def f64(values) -> pmt.pmt_t:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    return pmt.init_f64vector(len(v), v.tolist())


def c32(values) -> pmt.pmt_t:
    v = np.asarray(values, dtype=np.complex64).reshape(-1)
    return pmt.init_c32vector(len(v), v.tolist())


def make_dict(items: dict) -> pmt.pmt_t:
    """PMT dict from python values: bool, int, float, numpy vectors (float -> f64vector,
    complex -> c32vector), str."""
    d = pmt.make_dict()
    for key, value in items.items():
        if isinstance(value, (bool, np.bool_)):
            v = pmt.from_bool(bool(value))
        elif isinstance(value, (int, np.integer)):
            v = pmt.from_long(int(value))
        elif isinstance(value, (float, np.floating)):
            v = pmt.from_double(float(value))
        elif isinstance(value, str):
            v = pmt.intern(value)
        else:
            arr = np.asarray(value)
            v = c32(arr) if np.iscomplexobj(arr) else f64(arr)
        d = pmt.dict_add(d, pmt.intern(key), v)
    return d


def to_python(msg: pmt.pmt_t) -> dict:
    """A PMT dict as a python dict (vectors as numpy arrays); ValueError if not a dict."""
    if pmt.is_null(msg):
        return {}
    if not pmt.is_dict(msg):
        raise ValueError(f"expected a PMT dict, got {pmt.write_string(msg)[:80]}")
    out = pmt.to_python(msg)
    if not isinstance(out, dict):
        raise ValueError(f"expected a PMT dict, got {out!r}")
    return out
