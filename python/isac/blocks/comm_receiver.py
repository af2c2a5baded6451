"""isac.comm_receiver: subcarrier-wise ML detection (15) with CSI."""

from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from ..model.ofdm import ml_detect
from . import _common as c
from ._thread_state import HeldThreadState

NAME = "isac_comm_receiver"
INVALID_TAG = "invalid_comm"


class comm_receiver(HeldThreadState, gr.sync_block):
    """In 0: received comm frames y_c (vlen S), in 1: CSI kappa (vlen S); out: detected
    messages (vlen S, int32 in {0..3}) by ``model.ofdm.ml_detect``. Frames with NaN/Inf in
    y_c or kappa are counted in ``invalid_frames``, logged and tagged ``invalid_comm``
    (their non-finite subcarriers are detected as message 0, as ml_detect does). A frame whose
    detection raises is handled the same way (all messages 0, tagged, counted in
    ``failed_frames``, logged); 32 in a row stop the flowgraph (``fatal_error``)."""

    @classmethod
    def from_scenario(cls, scenario, **kwargs) -> "comm_receiver":
        """The block for ``scenario`` (its parameters taken from it), plus ``kwargs``."""
        return cls(**c.scenario_parameters(cls, scenario), **kwargs)

    def __init__(self, S: int = 256):
        self.S = c.positive_int(NAME, "S", S)
        self.invalid_frames = 0
        self.failures = c.FrameFailures(self)
        self.fatal_error = None
        #: optional handler(block, message) of a failure that stops the flowgraph (flowgraph.SimFlowgraph)
        self.on_fatal = None
        gr.sync_block.__init__(
            self, name=NAME, in_sig=[(np.complex64, self.S), (np.complex64, self.S)], out_sig=[(np.int32, self.S)]
        )
        c.frame_buffers(self, (0,), c.SYMBOL_FRAMES)

    @property
    def failed_frames(self) -> int:
        return self.failures.count

    def work(self, input_items, output_items):
        try:
            return self._work(input_items, output_items)
        except Exception as exc:  # noqa: BLE001 - not a frame's failure: the block cannot go on
            return c.stop_flowgraph(self, f"{self.alias()}: {type(exc).__name__}: {exc}")

    def _work(self, input_items, output_items):
        y, kappa = input_items
        n = len(y)
        y, kappa = y[:n], kappa[:n]
        bad = ~(np.isfinite(y) & np.isfinite(kappa)).all(axis=1)
        try:
            output_items[0][:n] = ml_detect(y, kappa)
            self.failures.ok()
        except Exception:  # noqa: BLE001 - frame by frame: flag the failing ones
            for i in range(n):
                try:
                    output_items[0][i] = ml_detect(y[i], kappa[i])
                    self.failures.ok()
                except Exception as exc:  # noqa: BLE001
                    output_items[0][i] = 0
                    bad[i] = True
                    self.failures.failed(self.nitems_read(0) + i, exc)
                    if self.failures.fatal:
                        return c.stop_flowgraph(
                            self,
                            f"{self.alias()}: {self.failures.consecutive} frames in a row "
                            f"failed, last: {type(exc).__name__}: {exc}",
                        )
        for i in np.nonzero(bad)[0]:
            self.invalid_frames += 1
            self.logger.warn(
                f"frame {self.nitems_read(0) + int(i)}: non-finite y_c or CSI "
                f"({self.invalid_frames} such frames so far)"
            )
            self.add_item_tag(0, self.nitems_written(0) + int(i), pmt.intern(INVALID_TAG), pmt.PMT_T)
        return n
