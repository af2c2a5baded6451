"""isac.sigmf_source: plays back a SigMF recording of gr-isac (recording.py): the received array
frames Y_r with their ground truth, or the transmitted symbols x with their messages."""

from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from .. import recording
from ..model.ofdm import ml_detect
from . import _common as c
from ._thread_state import HeldThreadState

NAME = "isac_sigmf_source"
TRUTH_TAG = "truth"


class sigmf_source(HeldThreadState, gr.sync_block):
    """Plays the recording ``path`` (a recording directory, or a SigMF recording's base name /
    .sigmf-meta / .sigmf-data) of ``kind``, one frame per item, then ends:

    - ``kind="rx"``: out 0 the received array frames Y_r (vlen K*S, antenna-major), the input
      of isac.reciprocal_filter; the annotations' ground truth, as isac.ula_channel gives it
      (frame, sim_frame, count, angle_deg, range_m, gain_abs, comm_angle_deg), as a PMT dict on
      the ``truth`` port and a ``truth`` tag on the frame (frames without annotation: none);
    - ``kind="tx"``: out 0 the transmitted symbols x (vlen S), out 1 the messages m (int32,
      vlen S) of the symbols by QPSK ML detection (15) with kappa = 1 (exact: x is noise-free).

    The recording is opened and checked when the block is built: SigMF schema, cf32_le, and
    K, S, ``fc``, ``spacing_hz`` equal to the parameters, else BlockParameterError naming
    ``path`` and the key. A data file ending inside a frame is played up to its last whole frame
    (a warning says so at start, and ``warnings`` lists it). ``frames`` > 0 plays at most that
    many frames. An empty ``path`` builds the block but refuses to start."""

    @classmethod
    def from_scenario(cls, scenario, **kwargs) -> "sigmf_source":
        """The block for ``scenario`` (its K, S, fc, spacing_hz), plus ``kwargs`` (path, kind, frames)."""
        return cls(**c.scenario_parameters(cls, scenario), **kwargs)

    def __init__(
        self,
        path: str = "",
        kind: str = "rx",
        K: int = 64,
        S: int = 256,
        fc: float = 60e9,
        spacing_hz: float = 120e3,
        frames: int = 0,
    ):
        if kind not in recording.KINDS:
            raise c.error(NAME, "kind", f"must be one of {', '.join(recording.KINDS)}, got {kind!r}")
        if isinstance(frames, bool) or int(frames) != frames or frames < 0:
            raise c.error(NAME, "frames", f"must be an integer >= 0 (0 = the whole recording), got {frames!r}")
        sc = c.scenario(NAME, dict(K=K, S=S, fc=fc, spacing_hz=spacing_hz))
        self.K, self.S, self.kind, self.path = sc.array["antennas"], sc.ofdm["subcarriers"], kind, str(path)
        self.recording = None
        self.warnings: list[str] = []
        self.frames = 0
        self.error: str | None = None  # set by start() without a recording
        if self.path:
            try:
                rec = recording.read(self.path, kind)
                rec.check(
                    self.K,
                    self.S,
                    sc.array["carrier_hz"],
                    sc.ofdm["spacing_hz"],
                    who=f"{NAME} (parameters K, S, fc, spacing_hz)",
                )
            except recording.RecordingError as exc:
                raise c.error(NAME, "path", f"({self.path}): {exc}") from None
            self.recording, self.warnings = rec, list(rec.warnings)
            self.frames = rec.frames if not frames else min(int(frames), rec.frames)
        n = recording.frame_samples(kind, self.K, self.S)
        out = [(np.complex64, n)] if kind == "rx" else [(np.complex64, self.S), (np.int32, self.S)]
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
            self.error = str(c.error(NAME, "path", "is empty: give a recording directory or a SigMF recording"))
            self.logger.error(self.error)
        for note in self.warnings:
            self.logger.warn(note)
        return True

    def truth_dict(self, frame: int) -> dict | None:
        """The truth message of frame ``frame`` (None when it has no annotation)."""
        truth = self.recording.truth.get(frame)
        if truth is None:
            return None
        return {"sim_frame": frame, **truth, "frame": frame}

    def work(self, input_items, output_items):
        first = self.nitems_written(0)
        n = min(len(output_items[0]), self.frames - first)
        if n <= 0:
            return -1  # WORK_DONE: the recording is played
        data = self.recording.data[first : first + n]
        output_items[0][:n] = data
        if self.kind == "tx":
            output_items[1][:n] = ml_detect(data, np.ones(1, np.complex64)).astype(np.int32)
            return n
        for i in range(n):
            truth = self.truth_dict(first + i)
            if truth is not None:
                msg = c.make_dict(truth)
                self.add_item_tag(0, first + i, pmt.intern(TRUTH_TAG), msg)
                self.message_port_pub(pmt.intern("truth"), msg)
        return n
