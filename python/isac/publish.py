"""Publishing results over ZeroMQ (pyzmq PUB sockets), for isac-sim and the JSON block.

Two wire formats on their own endpoints:
  json  two frames per message: topic (b"detections", b"truth", b"metrics") and a strict-JSON
        dict (arrays as lists, NaN/Inf as null). Clients need only pyzmq.
  pmt   one frame per message: the dict, with its topic under the key "topic", as a serialized
        PMT (``pmt.serialize_str``), the format of gr-zeromq's pub_msg_sink; clients decode
        with ``pmt.deserialize_str``.
"""
from __future__ import annotations

import json
import math

import numpy as np
import zmq

FORMATS = ("json", "pmt")


def jsonable(value):
    """Plain-JSON form of a message value: numpy arrays -> lists, non-finite floats -> null,
    complex -> [re, im]."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
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


def encode(topic: str, message: dict) -> list[bytes]:
    """The two frames of one JSON publication: topic, then the strict-JSON body."""
    return [topic.encode(), json.dumps(jsonable(message), allow_nan=False).encode()]


class Publisher:
    """A PUB socket bound to ``endpoint`` sending dicts in format ``json`` or ``pmt``."""

    def __init__(self, endpoint: str, fmt: str = "json"):
        if fmt not in FORMATS:
            raise ValueError(f"publisher format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        if not isinstance(endpoint, str) or "://" not in endpoint:
            raise ValueError(f"ZeroMQ endpoint must look like tcp://127.0.0.1:5556, got {endpoint!r}")
        self.fmt = fmt
        self.endpoint = endpoint
        self.published = 0
        self._socket = zmq.Context.instance().socket(zmq.PUB)
        self._socket.setsockopt(zmq.LINGER, 2000)  # let queued messages leave at close
        try:
            self._socket.bind(endpoint)
        except zmq.ZMQError as exc:
            self._socket.close()
            raise ValueError(f"cannot bind ZeroMQ endpoint {endpoint}: {exc}") from None

    def publish(self, topic: str, message: dict) -> None:
        if self.fmt == "json":
            self._socket.send_multipart(encode(topic, message))
        else:
            import pmt

            from .blocks._common import make_dict

            self._socket.send(pmt.serialize_str(make_dict({"topic": topic, **message})))
        self.published += 1

    def close(self) -> None:
        self._socket.close()
