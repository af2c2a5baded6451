"""The method and weights of a block (precoder, receiver, map): one rule for every block."""

from __future__ import annotations

import copy

from .. import transceiver
from ..weights import Weights, WeightsError
from .base import error


def block_weights(block: str, scenario, method: str, weights, other_array: bool):
    """(method, weights.Weights or None) of a block: ``weights`` is an already loaded Weights
    object (isac-sim and Python users load a file once and pass it to every block), a file path
    (read and validated here against the block's scenario, by transceiver.load_weights), or empty /
    None (no weights). ``method`` "" means the method of the weights, else baseline; it must
    accept the weights (transceiver.get). Errors name the block and the parameter."""
    try:
        if isinstance(weights, Weights):  # loaded once by the caller: checked, not read again
            w = weights
            if other_array and not weights.other_array:  # a shallow copy: shares tensors and cached networks
                w = copy.copy(weights)
                w.other_array = True
            transceiver.validate_weights(w, scenario)
        elif weights:
            w = transceiver.load_weights(str(weights), scenario, None, bool(other_array))
        else:
            w = None
    except WeightsError as exc:
        raise error(block, "weights", str(exc)) from None
    method = method or (w.method if w is not None else "baseline")
    try:
        transceiver.get(method, w)
    except ValueError as exc:
        text = str(exc)
        raise error(block, "method", text[len("method ") :] if text.startswith("method ") else f"({text})") from None
    return method, w


__all__ = ["block_weights"]
