"""isac.sigmf_source: plays back a SigMF recording of gr-isac (recording.py): the received array
frames Y_r with their ground truth, or the transmitted symbols x with their messages."""

from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from .. import recording
from ..model.ofdm import ml_detect
from . import base

NAME = "isac_sigmf_source"
TRUTH_TAG = "truth"


class sigmf_source(base.FrameBlock, gr.sync_block):
    """Plays the recording ``path`` (a recording directory, or a SigMF recording's base name /
    .sigmf-meta / .sigmf-data) of ``kind``, one frame per item, then ends:

    - ``kind="rx"``: out 0 the received array frames Y_r, the input of isac.reciprocal_filter; the
      annotations' ground truth (messages.Truth) on the ``truth`` port and as a ``truth`` tag on the
      frame (frames without annotation: none);
    - ``kind="tx"``: out 0 the transmitted symbol frames x, out 1 the messages m (int32) of the
      symbols by QPSK ML detection (15) with kappa = 1 (exact: x is noise-free).

    The recording is opened and checked when the block is built: SigMF schema, cf32_le, and the
    frame geometry, f_c and Delta_f equal to the ``scenario``'s, else BlockParameterError naming
    ``path`` and the key. A data file ending inside a frame is played up to its last whole frame
    (a warning says so at start, and ``warnings`` lists it). ``frame_count`` > 0 plays at most that
    many frames (``frames``: the number it plays). An empty ``path`` builds the block but refuses to start."""

    NAME = NAME

    def __init__(self, scenario=None, path: str = "", kind: str = "rx", frame_count: int = 0):
        self.setup(scenario)
        self.kind = base.choice(NAME, "kind", kind, recording.KINDS)
        frames = base.parameter(NAME, "frame_count", frame_count)
        self.path = str(path)
        self.recording = None
        self.warnings: list[str] = []
        self.frames = 0
        self.error: str | None = None  # set by start() without a recording
        if self.path:
            try:
                rec = recording.read(self.path, kind)
                rec.check(self.scenario, who=f"{NAME} (its scenario)")
            except recording.RecordingError as exc:
                raise base.error(NAME, "path", f"({self.path}): {exc}") from None
            self.recording, self.warnings = rec, list(rec.warnings)
            self.frames = rec.frames if not frames else min(frames, rec.frames)
        g = self.geometry
        n = recording.frame_samples(kind, g)
        out = [(np.complex64, n)] if kind == "rx" else [(np.complex64, n), (np.int32, n)]
        gr.sync_block.__init__(self, name=NAME, in_sig=None, out_sig=out)
        if kind == "rx":
            self.message_port_register_out(pmt.intern("truth"))

    @property
    def annotated(self) -> bool:
        """Whether the recording has ground truth (annotations)."""
        return self.recording is not None and self.recording.annotated

    def start(self) -> bool:
        # An exception here would stall GNU Radio's scheduler: the error is logged, kept in
        # ``error``, and work() ends the flowgraph at once.
        super().start()
        if self.recording is None:
            self.error = str(base.error(NAME, "path", "is empty: give a recording directory or a SigMF recording"))
            self.logger.error(self.error)
        for note in self.warnings:
            self.logger.warn(note)
        return True

    def work_frames(self, input_items, output_items):
        first = self.nitems_written(0)
        n = min(len(output_items[0]), self.frames - first)
        if n <= 0:
            return -1  # WORK_DONE: the recording is played
        data = self.recording.data[first : first + n]
        output_items[0][:n] = data
        if self.kind == "tx":
            output_items[1][:n] = ml_detect(data, np.ones(1, np.complex64)).astype(np.int32)
            return n
        self.tag_geometry(0)
        for i in range(n):
            truth = self.recording.truth.get(first + i)
            if truth is not None:
                msg = truth.to_pmt()
                self.add_item_tag(0, first + i, pmt.intern(TRUTH_TAG), msg)
                self.message_port_pub(pmt.intern("truth"), msg)
        return n
