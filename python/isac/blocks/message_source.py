"""isac.message_source: the transmitter's random messages and their QPSK symbols, frame by
frame, drawn exactly as ``simulation.Simulator.frame`` draws them."""

from __future__ import annotations

import numpy as np
from gnuradio import gr

from ..model.ofdm import qpsk_map
from ..simulation import STREAMS, stream_messages
from . import base

NAME = "isac_message_source"


class message_source(base.FrameBlock, gr.sync_block):
    """Source of message frames m (int32 in {0..3}) and their QPSK symbols x(m) (complex64).
    Frame i comes from ``simulation.frame_rng(run.seed, stream, first_frame + i)`` of the
    ``scenario`` (simulation.stream_messages: the C++ twin of numpy's generator when built), so
    it equals the messages and symbols of ``Simulator(scenario).frame(first_frame + i, stream)``.
    ``frame_count = 0`` runs without end."""

    NAME = NAME

    def __init__(self, scenario=None, stream: str = "test", frame_count: int = 0, first_frame: int = 0):
        self.setup(scenario)
        self.stream = base.choice(NAME, "stream", stream, STREAMS)
        self.frames = base.parameter(NAME, "frame_count", frame_count)
        self.first_frame = base.parameter(NAME, "first_frame", first_frame)
        self.seed = self.scenario.run["seed"]
        n = self.geometry.symbol_items
        gr.sync_block.__init__(self, name=NAME, in_sig=None, out_sig=[(np.int32, n), (np.complex64, n)])
        self.buffer_frames((0, 1), base.SYMBOL_FRAMES)

    def messages(self, first: int, count: int) -> np.ndarray:
        """Messages of stream frames ``first .. first+count-1`` ((count, M S) int32): the model call of ``work``."""
        return stream_messages(self.seed, self.stream, self.first_frame + first, count, self.geometry)

    def work_frames(self, input_items, output_items):
        start = self.nitems_written(0)
        n = len(output_items[0])
        if self.frames:
            n = min(n, self.frames - start)
            if n <= 0:
                return -1  # WORK_DONE
        m = np.zeros((n, self.geometry.symbol_items), np.int32)  # a frame that fails: message 0 everywhere

        def batch():
            m[:] = self.messages(start, n)

        def one(i):
            m[i] = self.messages(start + i, 1)[0]

        self.per_frame(start, n, one, lambda i: None, batch)
        output_items[0][:n] = m
        output_items[1][:n] = qpsk_map(m)
        return n
