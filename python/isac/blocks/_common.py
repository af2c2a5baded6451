"""Helpers shared by the blocks: parameter checks whose errors name the block and the
parameter, the Scenario a block's parameters describe, PMT conversions, the frame-shape tag,
per-frame failure bookkeeping and stream buffer sizes."""

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
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or float(value) != int(value)
        or int(value) < 1
    ):
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


def scenario_arguments(arguments: dict) -> dict:
    """The scenario parameters among a block constructor's arguments (``locals()`` at the top of
    ``__init__``): every argument named in PARAMETER_KEYS, tuples as lists. With
    :func:`scenario_parameters`, the two directions between block parameters and the scenario."""
    return {n: list(v) if isinstance(v, tuple) else v for n, v in arguments.items() if n in PARAMETER_KEYS}


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
        raise error(block, "method", text[len("method ") :] if text.startswith("method ") else f"({text})") from None
    return method or "baseline", w


def check_vlen(block: str, param: str, got: int, expected: int, what: str) -> None:
    if got != expected:
        raise error(block, param, f"gives {what} = {expected}, but the vector length is {got}")


# --- PMT -------------------------------------------------------------------------------
_KEYS: dict[str, pmt.pmt_t] = {}


def key(name: str) -> pmt.pmt_t:
    """The interned PMT symbol ``name`` (cached: interning costs a lookup per call)."""
    k = _KEYS.get(name)
    if k is None:
        k = _KEYS[name] = pmt.intern(name)
    return k


def f64(values) -> pmt.pmt_t:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    return pmt.init_f64vector(len(v), v.tolist())


def c32(values) -> pmt.pmt_t:
    v = np.asarray(values, dtype=np.complex64).reshape(-1)
    return pmt.init_c32vector(len(v), v.tolist())


def _cpp_pmt():
    """(pmt_dict_from, pmt_dict_to, pmt_dicts) of the compiled module, or Nones."""
    try:
        from .. import pmt_dict_from, pmt_dict_to, pmt_dicts
    except ImportError:
        return None, None, None
    return pmt_dict_from, pmt_dict_to, pmt_dicts


_DICT_FROM, _DICT_TO, _DICTS = _cpp_pmt()


def make_dict(items: dict) -> pmt.pmt_t:
    """PMT dict from python values: bool, int, float, numpy vectors (float -> f64vector,
    complex -> c32vector), str. Built in C++ (``gnuradio.isac.pmt_dict_from``, the same dict)
    when the module is built."""
    if _DICT_FROM is not None:
        return _DICT_FROM(items)
    return make_dict_py(items)


def make_dict_py(items: dict) -> pmt.pmt_t:
    """:func:`make_dict` through the pmt Python API (the reference of the C++ twin)."""
    d = pmt.make_dict()
    for name, value in items.items():
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
        d = pmt.dict_add(d, key(name), v)
    return d


def make_dicts(fields: list, counts) -> list:
    """One PMT dict per row b, keys in the order of ``fields`` [(key, array)]: a (B,) array gives
    the row's scalar (bool, int, float), a (B, W) array the float vector of the first
    ``counts[b]`` entries of row b. The same dicts as :func:`make_dict` of each row; built in C++
    (``gnuradio.isac.pmt_dicts``) when the module is built."""
    counts = np.asarray(counts, dtype=np.int64)
    if _DICTS is not None:
        return _DICTS(fields, counts)
    rows = []
    for b in range(counts.shape[0]):
        row = {}
        for name, arr in fields:
            arr = np.asarray(arr)
            if arr.ndim == 2:
                row[name] = arr[b, : counts[b]].astype(np.float64)
            elif arr.dtype.kind == "b":
                row[name] = bool(arr[b])
            elif arr.dtype.kind in "iu":
                row[name] = int(arr[b])
            else:
                row[name] = float(arr[b])
        rows.append(make_dict_py(row))
    return rows


def _value(v: pmt.pmt_t):
    """pmt.to_python of one dict value, with the common types first (same results)."""
    if pmt.is_f64vector(v):
        return np.array(pmt.f64vector_elements(v), dtype=np.float64)
    if pmt.is_bool(v):
        return pmt.to_bool(v)
    if pmt.is_integer(v):
        return pmt.to_long(v)
    if pmt.is_real(v):
        return pmt.to_double(v)
    if pmt.is_symbol(v) and not pmt.is_null(v):
        return pmt.symbol_to_string(v)
    return pmt.to_python(v)


def to_python(msg: pmt.pmt_t) -> dict:
    """A PMT dict as a python dict (vectors as numpy arrays), as pmt.to_python gives it
    (converted in C++ by ``gnuradio.isac.pmt_dict_to`` when the module is built); ValueError if
    not a dict."""
    if pmt.is_null(msg):
        return {}
    if not pmt.is_dict(msg):
        raise ValueError(f"expected a PMT dict, got {pmt.write_string(msg)[:80]}")
    if _DICT_TO is not None:
        return _DICT_TO(msg)
    return to_python_py(msg)


def to_python_py(msg: pmt.pmt_t) -> dict:
    """:func:`to_python` of a PMT dict through the pmt Python API, walking its items once."""
    out = {}
    items = pmt.dict_items(msg)
    while pmt.is_pair(items):
        pair = pmt.car(items)
        items = pmt.cdr(items)
        k = pmt.car(pair)
        out[pmt.symbol_to_string(k) if pmt.is_symbol(k) else pmt.to_python(k)] = _value(pmt.cdr(pair))
    return out


# --- frame shape ---------------------------------------------------------------------
#: stream tag on the first item of an array-frame output (vlen K*S): PMT dict {K, S, block}
SHAPE_TAG = "frame_shape"


def add_shape_tag(block, port: int, K: int, S: int) -> None:
    """Tag item 0 of output ``port`` with the frame shape K x S and the block's name, so that the
    next block can tell K x S from S x K (both have vector length K*S)."""
    value = make_dict({"K": int(K), "S": int(S), "block": block.alias()})
    block.add_item_tag(port, 0, key(SHAPE_TAG), value)


def shape_mismatch(block, port: int, K: int, S: int, n: int) -> str | None:
    """The error text when a ``frame_shape`` tag on items [0, n) of input ``port`` gives another
    K x S than this block's (None when they agree or there is no tag); names both blocks."""
    if block.nitems_read(port) != 0:
        return None
    senders = []
    for tag in block.get_tags_in_window(port, 0, max(1, n), key(SHAPE_TAG)):
        try:
            shape = to_python(tag.value)
            k, s, who = int(shape["K"]), int(shape["S"]), str(shape.get("block", "?"))
        except (ValueError, KeyError, TypeError):
            continue
        if (k, s) != (int(K), int(S)):
            senders.append(f"{who} (K = {k}, S = {s})")
    if not senders:
        return None
    return (
        f"{block.alias()}: input frames come from {', '.join(senders)}, but this block has K = {K}, S = {S}; "
        f"K*S is equal, so GNU Radio connected them: give both blocks the same K and S"
    )


# --- per-frame failures ------------------------------------------------------------------
#: consecutive failed frames after which a block gives up (the failure is not per frame)
MAX_CONSECUTIVE_FAILURES = 32


class FrameFailures:
    """Per-frame failure bookkeeping of a stream block: a frame whose computation raised is
    flagged by the block (invalid output), counted here and logged (the first 10, then every
    100th); ``MAX_CONSECUTIVE_FAILURES`` failures in a row make :attr:`fatal` true."""

    def __init__(self, block):
        self.block = block
        self.count = 0
        self.consecutive = 0

    def failed(self, frame: int, exc: BaseException) -> None:
        self.count += 1
        self.consecutive += 1
        if self.count <= 10 or self.count % 100 == 0:
            self.block.logger.error(
                f"frame {frame}: {type(exc).__name__}: {exc} -- frame flagged invalid, "
                f"going on ({self.count} failed frames so far)"
            )

    def ok(self) -> None:
        self.consecutive = 0

    @property
    def fatal(self) -> bool:
        return self.consecutive >= MAX_CONSECUTIVE_FAILURES


def holding_top_block(block):
    """The Python top block whose stream edges name ``block`` (by its alias), found among the live
    objects (GNU Radio gives a block no link to its flowgraph); None when there is not exactly
    one (a C++ top block, a block inside a hierarchical block)."""
    import gc

    from gnuradio import gr

    alias = block.alias()
    found = []
    for obj in gc.get_objects():
        if gr.top_block in type(obj).__mro__:
            try:
                edges = obj.edge_list()
            except Exception:  # noqa: BLE001 - a half-built or closed top block: not ours
                continue
            ends = (end.strip().rpartition(":")[0] for line in edges.splitlines() for end in line.split("->"))
            if alias in ends:
                found.append(obj)
    return found[0] if len(found) == 1 else None


def stop_flowgraph(block, message: str) -> int:
    """A failure the block cannot survive: log ``message``, keep it in ``block.fatal_error``, and
    stop the flowgraph: through its handler ``block.on_fatal(block, message)`` when one is set
    (isac-sim's flowgraph stops and raises it), else by stopping the Python top block that holds
    the block (a GRC flowgraph's ``wait()`` then returns). Returns WORK_DONE (-1) for ``work``."""
    if getattr(block, "fatal_error", None) is None:
        block.fatal_error = message
        block.logger.error(message)
        handler = getattr(block, "on_fatal", None)
        if handler is not None:
            handler(block, message)
        else:
            import threading

            tb = holding_top_block(block)
            if tb is not None:
                block.logger.error("stopping the flowgraph")
                threading.Thread(target=tb.stop, name="isac_fatal_stop", daemon=True).start()
    return -1


# --- buffers -------------------------------------------------------------------------
#: frames an array-frame output buffer (vlen K*S) holds at least: the next block then gets 8-32
#: frames per work call instead of 1-2 (GNU Radio's default buffers hold a couple of 128 kB frames)
STREAM_FRAMES = 32
#: frames a symbol-frame output buffer (vlen S: messages, symbols, y_c, CSI) holds at least: the
#: comm side may run ahead of the metrics block, which consumes frames only once they are sensed
SYMBOL_FRAMES = 128


def frame_buffers(block, ports, frames: int = STREAM_FRAMES) -> None:
    """Let output ``ports`` of ``block`` buffer at least ``frames`` items (frames)."""
    for port in ports:
        block.set_min_output_buffer(port, int(frames))
