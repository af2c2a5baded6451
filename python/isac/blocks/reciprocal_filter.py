"""isac.reciprocal_filter: reciprocal filtering (3), Y~ = Y_r (/) 1 x^T."""

from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from ..model import reciprocal as model
from . import _common as c
from ._thread_state import HeldThreadState

NAME = "isac_reciprocal_filter"
INVALID_TAG = "invalid_symbols"


def _cpp_filter():
    """``gnuradio.isac.reciprocal_filter_frames`` (bit-equal to the model), None when not built."""
    try:
        from .. import reciprocal_filter_frames
    except ImportError:
        return None
    return reciprocal_filter_frames


class reciprocal_filter(HeldThreadState, gr.sync_block):
    """In 0: received sensing frames Y_r (vlen K*S, antenna-major), in 1: the transmitted
    symbols x (vlen S); out: Y~ (vlen K*S) by ``model.reciprocal.reciprocal_filter`` (or its C++
    twin ``gnuradio.isac.reciprocal_filter_frames``, the same result bit for bit, when built).

    Zero, near-zero or non-finite symbols cannot be divided by: their subcarrier columns are
    set to 0 (``invalid="zero"``), the frame is counted in ``invalid_frames``, logged, and
    tagged ``invalid_symbols`` (value: number of nulled subcarriers) on the output.

    A frame whose filtering raises is flagged (output NaN, so the receiver skips it), counted in
    ``failed_frames`` and logged; 32 in a row stop the flowgraph (``fatal_error``). Item 0 of the
    output carries a ``frame_shape`` tag (K, S, block name); a ``frame_shape`` tag on in 0 with
    another K x S (same K*S) stops the flowgraph with an error naming both blocks."""

    @classmethod
    def from_scenario(cls, scenario, **kwargs) -> "reciprocal_filter":
        """The block for ``scenario`` (its parameters taken from it), plus ``kwargs``."""
        return cls(**c.scenario_parameters(cls, scenario), **kwargs)

    def __init__(self, K: int = 64, S: int = 256):
        self.K = c.positive_int(NAME, "K", K)
        self.S = c.positive_int(NAME, "S", S)
        self.invalid_frames = 0
        self.threads = 1
        self.failures = c.FrameFailures(self)
        self.fatal_error = None
        #: optional handler(block, message) of a failure that stops the flowgraph (flowgraph.SimFlowgraph)
        self.on_fatal = None
        self._cpp = _cpp_filter()
        gr.sync_block.__init__(
            self,
            name=NAME,
            in_sig=[(np.complex64, self.K * self.S), (np.complex64, self.S)],
            out_sig=[(np.complex64, self.K * self.S)],
        )
        c.frame_buffers(self, (0,))

    @property
    def failed_frames(self) -> int:
        return self.failures.count

    def set_threads(self, threads: int) -> None:
        """Split the frames of a work call over ``threads`` threads (C++ twin only)."""
        self.threads = c.positive_int(NAME, "threads", threads)

    def filter(self, y: np.ndarray, x: np.ndarray, out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(Y~ (B, K, S), nulled subcarriers per frame (B,)) of Y_r (B, K, S) and x (B, S): the model
        call behind ``work``; Y~ is written into ``out`` (B, K, S) when given."""
        if self._cpp is not None:
            return self._cpp(y, x, model.MIN_SYMBOL_MAGNITUDE, self.threads, out)
        res = model.reciprocal_filter(y, x, invalid="zero")
        if out is not None:
            out[:] = res
            res = out
        return res, model.invalid_symbols(x).sum(axis=-1)

    def work(self, input_items, output_items):
        try:
            return self._work(input_items, output_items)
        except Exception as exc:  # noqa: BLE001 - not a frame's failure: the block cannot go on
            return c.stop_flowgraph(self, f"{self.alias()}: {type(exc).__name__}: {exc}")

    def _work(self, input_items, output_items):
        y, x = input_items
        n = len(y)
        read, written = self.nitems_read(0), self.nitems_written(0)
        if read == 0:
            problem = c.shape_mismatch(self, 0, self.K, self.S, n)
            if problem:
                return c.stop_flowgraph(self, problem)
        if written == 0:
            c.add_shape_tag(self, 0, self.K, self.S)
        Y, x = y[:n].reshape(n, self.K, self.S), x[:n]
        out = output_items[0][:n].reshape(n, self.K, self.S)
        try:
            _, bad = self.filter(Y, x, out)
            self.failures.ok()
        except Exception:  # noqa: BLE001 - frame by frame: flag the failing ones
            bad = np.zeros(n, np.int64)
            for i in range(n):
                try:
                    res, nulled = self.filter(Y[i : i + 1], x[i : i + 1])
                    out[i], bad[i] = res[0], nulled[0]
                    self.failures.ok()
                except Exception as exc:  # noqa: BLE001
                    out[i] = np.nan
                    self.failures.failed(read + i, exc)
                    if self.failures.fatal:
                        return c.stop_flowgraph(
                            self,
                            f"{self.alias()}: {self.failures.consecutive} frames in a row "
                            f"failed, last: {type(exc).__name__}: {exc}",
                        )
        for i in np.nonzero(bad)[0]:
            self.invalid_frames += 1
            frame = read + int(i)
            self.logger.warn(
                f"frame {frame}: {int(bad[i])} zero or non-finite symbols, subcarriers nulled "
                f"({self.invalid_frames} such frames so far)"
            )
            self.add_item_tag(0, written + int(i), pmt.intern(INVALID_TAG), pmt.from_long(int(bad[i])))
        return n
