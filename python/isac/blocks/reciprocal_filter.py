"""isac.reciprocal_filter: reciprocal filtering (3), Y~ = Y_r (/) 1 x^T."""
from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from ..model import reciprocal as model
from . import _common as c

NAME = "isac_reciprocal_filter"
INVALID_TAG = "invalid_symbols"


class reciprocal_filter(gr.sync_block):
    """In 0: received sensing frames Y_r (vlen K*S, antenna-major), in 1: the transmitted
    symbols x (vlen S); out: Y~ (vlen K*S) by ``model.reciprocal.reciprocal_filter``.

    Zero, near-zero or non-finite symbols cannot be divided by: their subcarrier columns are
    set to 0 (``invalid="zero"``), the frame is counted in ``invalid_frames``, logged, and
    tagged ``invalid_symbols`` (value: number of nulled subcarriers) on the output."""

    @classmethod
    def from_scenario(cls, scenario, **kwargs) -> "reciprocal_filter":
        """The block for ``scenario`` (its parameters taken from it), plus ``kwargs``."""
        return cls(**c.scenario_parameters(cls, scenario), **kwargs)

    def __init__(self, K: int = 64, S: int = 256):
        self.K = c.positive_int(NAME, "K", K)
        self.S = c.positive_int(NAME, "S", S)
        self.invalid_frames = 0
        gr.sync_block.__init__(self, name=NAME, in_sig=[(np.complex64, self.K * self.S), (np.complex64, self.S)],
                               out_sig=[(np.complex64, self.K * self.S)])

    def work(self, input_items, output_items):
        y, x = input_items
        n = len(y)
        x = x[:n]
        out = model.reciprocal_filter(y[:n].reshape(n, self.K, self.S), x, invalid="zero")
        output_items[0][:n] = out.reshape(n, self.K * self.S)
        bad = model.invalid_symbols(x).sum(axis=1)
        for i in np.nonzero(bad)[0]:
            self.invalid_frames += 1
            frame = self.nitems_read(0) + int(i)
            self.logger.warn(f"frame {frame}: {int(bad[i])} zero or non-finite symbols, subcarriers nulled "
                             f"({self.invalid_frames} such frames so far)")
            self.add_item_tag(0, self.nitems_written(0) + int(i), pmt.intern(INVALID_TAG),
                              pmt.from_long(int(bad[i])))
        return n
