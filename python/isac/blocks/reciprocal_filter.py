"""isac.reciprocal_filter: reciprocal filtering (3), Y~ = Y_r (/) 1 x^T."""

from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from ..model import reciprocal as model
from . import base

NAME = "isac_reciprocal_filter"
INVALID_TAG = "invalid_symbols"


def _cpp_filter():
    """``gnuradio.isac.reciprocal_filter_frames`` (bit-equal to the model), None when not built."""
    try:
        from .. import reciprocal_filter_frames
    except ImportError:
        return None
    return reciprocal_filter_frames


class reciprocal_filter(base.FrameBlock, gr.sync_block):
    """In 0: received sensing frames Y_r, in 1: the transmitted symbol frames x; out: Y~ by
    ``model.reciprocal.reciprocal_filter`` (or its C++ twin, the same result bit for bit).

    Zero, near-zero or non-finite symbols cannot be divided by: their subcarrier columns are set to
    0, the frame is counted in ``invalid_frames``, logged, and tagged ``invalid_symbols`` (value:
    number of nulled subcarriers) on the output. A frame whose filtering raises is flagged (output
    NaN, so the receiver skips it), counted and logged (base.FrameBlock)."""

    NAME = NAME

    def __init__(self, scenario=None):
        self.setup(scenario)
        self.invalid_frames = 0
        self.threads = 1
        self._cpp = _cpp_filter()
        g = self.geometry
        gr.sync_block.__init__(
            self,
            name=NAME,
            in_sig=[(np.complex64, g.array_items), (np.complex64, g.symbol_items)],
            out_sig=[(np.complex64, g.array_items)],
        )
        self.buffer_frames((0,))

    def set_threads(self, threads: int) -> None:
        """Split the frames of a work call over ``threads`` threads (C++ twin only)."""
        self.threads = base.integer(NAME, "threads", threads)

    def filter(self, y: np.ndarray, x: np.ndarray, out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(Y~ (B, *array_shape), nulled subcarriers per frame (B,)) of Y_r and x: the model call of
        ``work``; Y~ is written into ``out`` when given. The M symbols of a frame are filtered as M
        one-symbol frames (each by its own data x_m)."""
        g = self.geometry
        if g.symbols > 1:
            B = y.shape[0]
            rows = None if out is None else out.reshape(-1, g.antennas, g.subcarriers)
            res, bad = self._filter(y.reshape(-1, g.antennas, g.subcarriers), x.reshape(-1, g.subcarriers), rows)
            return res.reshape(y.shape), bad.reshape(B, -1).sum(axis=1)
        return self._filter(y, x, out)

    def _filter(self, y, x, out):
        if self._cpp is not None:
            return self._cpp(y, x, model.MIN_SYMBOL_MAGNITUDE, self.threads, out)
        res = model.reciprocal_filter(y, x, invalid="zero")
        if out is not None:
            out[:] = res
            res = out
        return res, model.invalid_symbols(x).sum(axis=-1)

    def work_frames(self, input_items, output_items):
        n = len(input_items[0])
        read, written = self.nitems_read(0), self.nitems_written(0)
        Y = self.array_input(input_items[0], 0, n)
        x = self.geometry.symbol_frames(input_items[1], n)
        self.tag_geometry(0)
        out = self.geometry.array_frames(output_items[0], n)
        bad = np.zeros(n, np.int64)

        def batch():
            bad[:] = self.filter(Y, x, out)[1]

        def one(i):
            res, nulled = self.filter(Y[i : i + 1], x[i : i + 1])
            out[i], bad[i] = res[0], nulled[0]

        def failed(i):
            out[i] = np.nan

        self.per_frame(read, n, one, failed, batch)
        for i in np.nonzero(bad)[0]:
            self.invalid_frames += 1
            self.logger.warn(
                f"frame {read + int(i)}: {int(bad[i])} zero or non-finite symbols, subcarriers nulled "
                f"({self.invalid_frames} such frames so far)"
            )
            self.add_item_tag(0, written + int(i), pmt.intern(INVALID_TAG), pmt.from_long(int(bad[i])))
        return n
