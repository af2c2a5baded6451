"""isac.comm_receiver: subcarrier-wise ML detection (15) with CSI."""

from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from ..model.ofdm import ml_detect
from . import base

NAME = "isac_comm_receiver"
INVALID_TAG = "invalid_comm"


class comm_receiver(base.FrameBlock, gr.sync_block):
    """In 0: received comm frames y_c, in 1: CSI frames kappa; out: detected message frames
    (int32 in {0..3}) by ``model.ofdm.ml_detect``. Frames with NaN/Inf in y_c or kappa are
    counted in ``invalid_frames``, logged and tagged ``invalid_comm`` (their non-finite
    subcarriers are detected as message 0, as ml_detect does). A frame whose detection raises is
    handled the same way (all messages 0, tagged, counted in ``failed_frames``, logged)."""

    NAME = NAME

    def __init__(self, scenario=None):
        self.setup(scenario)
        self.invalid_frames = 0
        n = self.geometry.symbol_items
        gr.sync_block.__init__(self, name=NAME, in_sig=[(np.complex64, n), (np.complex64, n)], out_sig=[(np.int32, n)])
        self.buffer_frames((0,), base.SYMBOL_FRAMES)

    def work_frames(self, input_items, output_items):
        n = len(input_items[0])
        read = self.nitems_read(0)
        y, kappa, out = input_items[0][:n], input_items[1][:n], output_items[0]
        bad = ~(np.isfinite(y) & np.isfinite(kappa)).all(axis=1)

        def batch():
            out[:n] = ml_detect(y, kappa)

        def one(i):
            out[i] = ml_detect(y[i], kappa[i])

        def failed(i):
            out[i] = 0
            bad[i] = True

        self.per_frame(read, n, one, failed, batch)
        for i in np.nonzero(bad)[0]:
            self.invalid_frames += 1
            self.logger.warn(f"frame {read + int(i)}: non-finite y_c or CSI ({self.invalid_frames} such frames so far)")
            self.add_item_tag(0, self.nitems_written(0) + int(i), pmt.intern(INVALID_TAG), pmt.PMT_T)
        return n
