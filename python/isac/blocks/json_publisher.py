"""isac.json_publisher: publish the blocks' messages as JSON over ZeroMQ (pyzmq), for clients
without GNU Radio (gr-zeromq's pub_msg_sink sends serialized PMTs instead)."""

from __future__ import annotations

import pmt
from gnuradio import gr

from ..messages import MessageError, from_pmt
from ..publish import Publisher
from . import base

NAME = "isac_json_publisher"
PORTS = ("detections", "truth", "metrics")


class json_publisher(base.HeldThreadState, gr.basic_block):
    """Message in ``detections``, ``truth``, ``metrics`` (PMT dicts); each message is sent on a
    ZeroMQ PUB socket bound to ``address`` as two frames: the port name (topic) and the dict
    as JSON (messages.to_json: arrays as lists, NaN as null); see gnuradio.isac.publish and
    isac-subscribe.

    Like every message-only GNU Radio block, it may not handle the last queued messages when
    a finite flowgraph stops; isac-sim therefore publishes from its metrics callback instead."""

    def __init__(self, address: str = "tcp://127.0.0.1:5556"):
        try:
            self.publisher = Publisher(address, "json")
        except ValueError as exc:
            raise base.error(NAME, "address", str(exc)) from None
        gr.basic_block.__init__(self, name=NAME, in_sig=None, out_sig=None)
        self.address = address
        for port, handler in zip(PORTS, (self.handle_detections, self.handle_truth, self.handle_metrics)):
            self.message_port_register_in(pmt.intern(port))
            self.set_msg_handler(pmt.intern(port), handler)

    @property
    def published(self) -> int:
        return self.publisher.published

    # GNU Radio's Python gateway needs named methods as message handlers (no lambdas)
    def handle_detections(self, msg) -> None:
        self._publish("detections", msg)

    def handle_truth(self, msg) -> None:
        self._publish("truth", msg)

    def handle_metrics(self, msg) -> None:
        self._publish("metrics", msg)

    def _publish(self, topic: str, msg) -> None:
        try:
            body = from_pmt(msg)
        except MessageError as exc:  # a malformed message is logged, never fatal
            self.logger.warn(f"{NAME}: dropped a non-dict message on '{topic}': {exc}")
            return
        self.publisher.publish(topic, body)
