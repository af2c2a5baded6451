"""isac.positions_pdu: target positions (2) of a truth or detections message as a PDU of x + j y
samples (m), for files, ZeroMQ or custom plots (the live x-y picture is isac.map_display's scatter)."""

from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from ..messages import Detections, MessageError, from_pmt, to_pmt
from ..model.scene import positions
from . import base

NAME = "isac_positions_pdu"


def positions_message(message: dict) -> pmt.pmt_t:
    """PDU (meta, c32vector) of the positions p = R [cos theta, sin theta] (2) of a truth or
    detections dict (keys frame, angle_deg, range_m), as x + j y in metres. meta: frame, count."""
    record = Detections.from_dict({k: message[k] for k in ("frame", "angle_deg", "range_m") if k in message})
    p = positions(record.angle_rad, record.range_m).reshape(-1, 2)
    xy = (p[:, 0] + 1j * p[:, 1]).astype(np.complex64)
    return pmt.cons(to_pmt({"frame": record.frame, "count": record.count}), pmt.init_c32vector(len(xy), xy))


class positions_pdu(base.HeldThreadState, gr.basic_block):
    """Message in ``in``: truth (isac.ula_channel) or detections (isac.omp_receiver) messages;
    message out ``pdu``: one PDU per message, a c32vector of positions x + j y (m) with meta
    dict (frame, count). Messages that are not truth or detections are logged and dropped."""

    def __init__(self):
        gr.basic_block.__init__(self, name=NAME, in_sig=None, out_sig=None)
        self.message_port_register_in(pmt.intern("in"))
        self.message_port_register_out(pmt.intern("pdu"))
        self.set_msg_handler(pmt.intern("in"), self.handle)

    def handle(self, msg) -> None:
        try:
            pdu = positions_message(from_pmt(msg))
        except (MessageError, ValueError, TypeError) as exc:
            self.logger.error(f"message dropped: {exc}")
            return
        self.message_port_pub(pmt.intern("pdu"), pdu)
