"""Publishing results over ZeroMQ (pyzmq PUB sockets), for isac-sim and the JSON block; the
messages' wire forms are gnuradio.isac.messages'.

Two wire formats on their own endpoints:
  json  two frames per message: topic (b"detections", b"truth", b"metrics") and a strict-JSON
        dict (arrays as lists, NaN/Inf as null). Clients need only pyzmq.
  pmt   one frame per message: the dict, with its topic under the key "topic", as a serialized
        PMT (``pmt.serialize_str``), the format of gr-zeromq's pub_msg_sink; clients decode
        with ``pmt.deserialize_str``.

Endpoints are checked before anything binds (``validate_endpoint``): tcp://HOST:PORT with PORT
1-65535 (0 or * = any free port; zmq itself would silently take a port > 65535 modulo 65536),
ipc://PATH or inproc://NAME. To bind, HOST is *, an IP address or a network interface of this
machine (eth0, lo): ZeroMQ never resolves a host name when it binds (it said "No such device"),
so a name that is not an interface is refused with that sentence. ``Publisher.endpoint`` is the
endpoint actually bound (zmq's LAST_ENDPOINT), e.g. the port chosen for tcp://127.0.0.1:0.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket

import zmq

from .messages import to_json, to_pmt

FORMATS = ("json", "pmt")
SCHEMES = ("tcp", "ipc", "inproc")
ENDPOINT_FORMS = "tcp://HOST:PORT (PORT 1-65535, or 0 for any free port), ipc://PATH or inproc://NAME"
_NAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?")  # DNS name or interface (eth0, lo)


def _tcp_problem(rest: str, bind: bool) -> str | None:
    """Why ``HOST:PORT`` of a tcp endpoint is unusable (None when it is fine)."""
    host, colon, port = rest.rpartition(":")
    if not colon or not host:
        return "a tcp endpoint needs HOST:PORT"
    if host.startswith("["):
        try:
            if not host.endswith("]"):
                raise ValueError(host)
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"host {host} is not a bracketed IPv6 address"
    elif host == "*":
        if not bind:
            return "host * (all interfaces) is for binding only"
    elif re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"host {host} is not an IPv4 address"
    elif not _NAME.fullmatch(host):
        return f"host {host!r} is not a host name, interface or IP address"
    elif bind and host not in interfaces():
        return _not_an_interface(host)
    if port == "*" and bind:
        return None
    if not re.fullmatch(r"[0-9]+", port):
        return f"port {port!r} is not a number"
    if not (0 if bind else 1) <= int(port) <= 65535:
        return f"port {port} is out of range"
    return None


def interfaces() -> list[str]:
    """The names of this machine's network interfaces (lo, eth0, ...)."""
    try:
        return [name for _, name in socket.if_nameindex()]
    except OSError:
        return []


def _not_an_interface(host: str) -> str:
    names = ", ".join(interfaces()) or "none found"
    return (
        f"host {host!r} is not a network interface of this machine ({names}): ZeroMQ binds to *, an IP "
        f"address of this machine or an interface, not to a host name"
    )


def validate_endpoint(text, name: str = "endpoint", bind: bool = True) -> str:
    """``text`` if it is a ZeroMQ endpoint this package can bind (``bind``) or connect to, else
    ValueError naming ``name`` (the option, e.g. --zmq-json) and the allowed forms. Nothing
    is opened and no host name is resolved: to bind, a tcp host must be *, an IP address or one of
    this machine's interfaces (ZeroMQ binds no host name)."""
    problem = None
    if not isinstance(text, str):
        problem = f"not a string ({type(text).__name__})"
    elif not text:
        problem = "empty"
    elif any(ch.isspace() for ch in text):
        problem = "contains white space"
    else:
        scheme, sep, rest = text.partition("://")
        if not sep:
            problem = "no scheme://"
        elif scheme not in SCHEMES:
            problem = f"scheme {scheme!r} is not one of {', '.join(SCHEMES)}"
        elif not rest:
            problem = f"nothing after {scheme}://"
        elif scheme == "tcp":
            problem = _tcp_problem(rest, bind)
    if problem:
        forms = ENDPOINT_FORMS if bind else ENDPOINT_FORMS.replace(", or 0 for any free port", "")
        raise ValueError(f"{name} {text!r}: {problem}; expected {forms}")
    return text


def _bind_problem(endpoint: str, exc: zmq.ZMQError) -> str:
    """A sentence for ZeroMQ's bind error (its own words for the errors it explains itself)."""
    host = endpoint.partition("://")[2].rpartition(":")[0].strip("[]")
    if endpoint.startswith("tcp://") and exc.errno == errno.ENODEV:
        return _not_an_interface(host)
    if endpoint.startswith("tcp://") and exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an IP address of this machine (bind to one of its own addresses, or *)"
    if exc.errno == errno.EADDRINUSE:
        return f"{exc} (another program, or another isac-sim, publishes on it)"
    return str(exc)


def encode(topic: str, message: dict) -> list[bytes]:
    """The two frames of one JSON publication: topic, then the strict-JSON body (messages.to_json)."""
    return [topic.encode(), to_json(message).encode()]


class Publisher:
    """A PUB socket bound to ``endpoint`` sending dicts in format ``json`` or ``pmt``.

    ``requested`` is the endpoint as given, ``endpoint`` the one bound (zmq's LAST_ENDPOINT:
    the actual port of tcp://HOST:0, tcp://0.0.0.0:PORT for tcp://*:PORT). ``name`` names the
    option the endpoint came from in error messages."""

    def __init__(self, endpoint: str, fmt: str = "json", name: str = "endpoint"):
        if fmt not in FORMATS:
            raise ValueError(f"publisher format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        self.requested = validate_endpoint(endpoint, name)
        self.fmt = fmt
        self.published = 0
        self._socket = zmq.Context.instance().socket(zmq.PUB)
        self._socket.setsockopt(zmq.LINGER, 2000)  # let queued messages leave at close
        try:
            self._socket.bind(endpoint)
        except zmq.ZMQError as exc:
            self._socket.close()
            raise ValueError(f"{name} {endpoint!r}: cannot bind: {_bind_problem(endpoint, exc)}") from None
        self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def publish(self, topic: str, message: dict) -> None:
        if self.fmt == "json":
            self._socket.send_multipart(encode(topic, message))
        else:
            import pmt

            self._socket.send(pmt.serialize_str(to_pmt({"topic": topic, **message})))
        self.published += 1

    def close(self) -> None:
        self._socket.close()
