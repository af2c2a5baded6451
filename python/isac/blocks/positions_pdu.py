"""isac.positions_pdu: target positions (2) of a truth or detections message as a PDU of x + j y
samples (m), for files, ZeroMQ or custom plots (the live x-y picture is isac.map_display's scatter)."""

from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from ..model.scene import positions
from . import _common as c
from ._thread_state import HeldThreadState

NAME = "isac_positions_pdu"


def positions_message(message: dict) -> pmt.pmt_t:
    """PDU (meta, c32vector) of the positions p = R [cos theta, sin theta] (2) of a ``truth`` or
    ``detections`` dict (keys angle_deg, range_m), as x + j y in metres. meta: frame, count."""
    theta = np.deg2rad(np.atleast_1d(np.asarray(message.get("angle_deg", []), dtype=np.float64)))
    r = np.atleast_1d(np.asarray(message.get("range_m", []), dtype=np.float64))
    if theta.shape != r.shape:
        raise ValueError(f"angle_deg and range_m differ in length: {theta.size} vs {r.size}")
    p = positions(theta, r).reshape(-1, 2)
    meta = c.make_dict({"frame": int(message.get("frame", -1)), "count": int(theta.size)})
    return pmt.cons(meta, c.c32(p[:, 0] + 1j * p[:, 1]))


class positions_pdu(HeldThreadState, gr.basic_block):
    """Message in ``in``: truth (isac.ula_channel) or detections (isac.omp_receiver) dicts;
    message out ``pdu``: one PDU per message, a c32vector of positions x + j y (m) with meta
    dict (frame, count). Messages without angle_deg / range_m are logged and dropped."""

    def __init__(self):
        gr.basic_block.__init__(self, name=NAME, in_sig=None, out_sig=None)
        self.message_port_register_in(pmt.intern("in"))
        self.message_port_register_out(pmt.intern("pdu"))
        self.set_msg_handler(pmt.intern("in"), self.handle)

    def handle(self, msg) -> None:
        try:
            pdu = positions_message(c.to_python(msg))
        except (ValueError, TypeError) as exc:
            self.logger.error(f"message dropped: {exc}")
            return
        self.message_port_pub(pmt.intern("pdu"), pdu)
