"""isac.message_source: the transmitter's random messages and their QPSK symbols, frame by
frame, drawn exactly as ``simulation.Simulator.frame`` draws them."""

from __future__ import annotations

import numpy as np
from gnuradio import gr

from ..model.ofdm import qpsk_map, random_messages
from ..simulation import STREAMS, frame_rng
from . import _common as c
from ._thread_state import HeldThreadState

NAME = "isac_message_source"


class message_source(HeldThreadState, gr.sync_block):
    """Source of messages m (vlen S, int32 in {0..3}) and QPSK symbols x(m) (vlen S,
    complex64). Frame i comes from ``simulation.frame_rng(seed, stream, first_frame + i)``,
    so it equals the messages and symbols of ``Simulator(...).frame(first_frame + i, stream)``
    for a scenario with ``run.seed = seed``. ``frames = 0`` runs without end. The frames of a
    work call are drawn at once by the C++ twin of the stream (``gnuradio.isac.frame_messages``,
    numpy's own generator and distribution code) when it is built, else by numpy."""

    @classmethod
    def from_scenario(cls, scenario, **kwargs) -> "message_source":
        """The block for ``scenario`` (its parameters taken from it), plus ``kwargs``."""
        return cls(**c.scenario_parameters(cls, scenario), **kwargs)

    def __init__(self, S: int = 256, seed: int = 0, stream: str = "test", frames: int = 0, first_frame: int = 0):
        self.S = c.positive_int(NAME, "S", S)
        if isinstance(seed, bool) or int(seed) != seed or seed < 0:
            raise c.error(NAME, "seed", f"must be an integer >= 0, got {seed!r}")
        if stream not in STREAMS:
            raise c.error(NAME, "stream", f"must be one of {', '.join(STREAMS)}, got {stream!r}")
        if int(frames) != frames or frames < 0:
            raise c.error(NAME, "frames", f"must be an integer >= 0 (0 = endless), got {frames!r}")
        if int(first_frame) != first_frame or first_frame < 0:
            raise c.error(NAME, "first_frame", f"must be an integer >= 0, got {first_frame!r}")
        self.seed, self.stream, self.frames, self.first_frame = int(seed), stream, int(frames), int(first_frame)
        self._draw = _cpp_messages()
        self.failures = c.FrameFailures(self)
        self.fatal_error = None
        #: optional handler(block, message) of a failure that stops the flowgraph (flowgraph.SimFlowgraph)
        self.on_fatal = None
        gr.sync_block.__init__(self, name=NAME, in_sig=None, out_sig=[(np.int32, self.S), (np.complex64, self.S)])
        c.frame_buffers(self, (0, 1), c.SYMBOL_FRAMES)

    def messages(self, first: int, count: int) -> np.ndarray:
        """Messages of stream frames ``first .. first+count-1`` ((count, S) int32): the model
        call behind ``work``."""
        if self._draw is not None:
            return self._draw(self.seed, STREAMS[self.stream], self.first_frame + first, count, self.S)
        return (
            np.stack(
                [
                    random_messages(frame_rng(self.seed, self.stream, self.first_frame + first + i), self.S)
                    for i in range(count)
                ]
            )
            .astype(np.int32)
            .reshape(count, self.S)
        )

    def work(self, input_items, output_items):
        start = self.nitems_written(0)
        n = len(output_items[0])
        if self.frames:
            n = min(n, self.frames - start)
            if n <= 0:
                return -1  # WORK_DONE
        try:
            m = self.messages(start, n)
        except Exception:  # noqa: BLE001 - frame by frame, so that one bad frame does not stop the others
            m = np.zeros((n, self.S), np.int32)
            for i in range(n):
                try:
                    m[i] = self.messages(start + i, 1)[0]
                    self.failures.ok()
                except Exception as exc:  # noqa: BLE001
                    self.failures.failed(start + i, exc)  # message 0 on every subcarrier
                    if self.failures.fatal:
                        return c.stop_flowgraph(
                            self,
                            f"{self.alias()}: {self.failures.consecutive} frames in a row "
                            f"failed, last: {type(exc).__name__}: {exc}",
                        )
        output_items[0][:n] = m
        output_items[1][:n] = qpsk_map(m)
        return n


def _cpp_messages():
    """``gnuradio.isac.frame_messages`` when the module was built with numpy's libnpyrandom."""
    try:
        from .. import frame_messages, numpy_stream_available
    except ImportError:
        return None
    return frame_messages if numpy_stream_available() else None
