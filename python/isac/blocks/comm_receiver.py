"""isac.comm_receiver: subcarrier-wise ML detection (15) with CSI."""

from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from ..model.ofdm import ml_detect
from ..transceiver.stream import rescaled_pairs
from . import base

NAME = "isac_comm_receiver"
INVALID_TAG = "invalid_comm"


class comm_receiver(base.FrameBlock, gr.sync_block):
    """In 0: received comm frames y_c, in 1: CSI frames kappa; out: detected message frames (int32 in
    {0..3}) by ``model.ofdm.ml_detect``. A subcarrier whose |y_c| or |kappa| lies outside the single-
    precision range of the distances (above transceiver.stream.MAX_COMM_AMPLITUDE, below 2^-40) is
    detected on a power-of-two rescaled copy (exact: the decision does not change), so huge or tiny
    frames get the messages of the frame at the usual scale. Frames that cannot be detected, with
    NaN/Inf in y_c or kappa or kappa = 0 on a subcarrier (no CSI: every message is as likely), are
    counted in ``invalid_frames``, logged and tagged ``invalid_comm`` (the metrics block does not score
    them; such subcarriers are detected as message 0, as ml_detect does). A frame whose detection raises
    is handled the same way (all messages 0, tagged, counted in ``failed_frames``, logged)."""

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
        nonfinite = ~(np.isfinite(y) & np.isfinite(kappa)).all(axis=1)
        no_csi = (kappa == 0).any(axis=1)
        bad = nonfinite | no_csi

        def batch():
            out[:n] = ml_detect(*rescaled_pairs(y, kappa))

        def one(i):
            out[i] = ml_detect(*rescaled_pairs(y[i : i + 1], kappa[i : i + 1]))[0]

        def failed(i):
            out[i] = 0
            bad[i] = True

        self.per_frame(read, n, one, failed, batch)
        for i in np.nonzero(bad)[0]:
            self.invalid_frames += 1
            why = (
                "non-finite y_c or CSI" if nonfinite[i] else "CSI kappa = 0 on a subcarrier" if no_csi[i] else "failed"
            )
            self.logger.warn(
                f"frame {read + int(i)}: {why}: flagged invalid, not scored ({self.invalid_frames} such frames so far)"
            )
            self.add_item_tag(0, self.nitems_written(0) + int(i), pmt.intern(INVALID_TAG), pmt.PMT_T)
        return n
