"""isac.comm_receiver: subcarrier-wise ML detection (15) with CSI."""
from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from ..model.ofdm import ml_detect
from . import _common as c

NAME = "isac_comm_receiver"
INVALID_TAG = "invalid_comm"


class comm_receiver(gr.sync_block):
    """In 0: received comm frames y_c (vlen S), in 1: CSI kappa (vlen S); out: detected
    messages (vlen S, int32 in {0..3}) by ``model.ofdm.ml_detect``. Frames with NaN/Inf in
    y_c or kappa are counted in ``invalid_frames``, logged and tagged ``invalid_comm``
    (their non-finite subcarriers are detected as message 0, as ml_detect does)."""

    @classmethod
    def from_scenario(cls, scenario, **kwargs) -> "comm_receiver":
        """The block for ``scenario`` (its parameters taken from it), plus ``kwargs``."""
        return cls(**c.scenario_parameters(cls, scenario), **kwargs)

    def __init__(self, S: int = 256):
        self.S = c.positive_int(NAME, "S", S)
        self.invalid_frames = 0
        gr.sync_block.__init__(self, name=NAME, in_sig=[(np.complex64, self.S), (np.complex64, self.S)],
                               out_sig=[(np.int32, self.S)])

    def work(self, input_items, output_items):
        y, kappa = input_items
        n = len(y)
        output_items[0][:n] = ml_detect(y[:n], kappa[:n]).astype(np.int32)
        bad = ~(np.isfinite(y[:n]) & np.isfinite(kappa[:n])).all(axis=1)
        for i in np.nonzero(bad)[0]:
            self.invalid_frames += 1
            self.logger.warn(f"frame {self.nitems_read(0) + int(i)}: non-finite y_c or CSI "
                             f"({self.invalid_frames} such frames so far)")
            self.add_item_tag(0, self.nitems_written(0) + int(i), pmt.intern(INVALID_TAG), pmt.PMT_T)
        return n
