"""isac.sigmf_sink: records received array frames Y_r (with their ground truth) or transmitted
symbols x as a SigMF recording (recording.py: cf32_le, antenna-major, isac: metadata)."""

from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from .. import recording
from ..messages import MessageError, Truth
from ..model.array import draw_spacings
from ..model.impairments import parameters_as_lists, true_parameters
from . import base

NAME = "isac_sigmf_sink"
TRUTH_TAG = "truth"  # the ground-truth tag isac.ula_channel puts on Y_r


class sigmf_sink(base.FrameBlock, gr.sync_block):
    """In: ``kind="rx"``: received array frames Y_r (the reciprocal filter's input; the ``truth``
    tags of isac.ula_channel become per-frame annotations) or ``kind="tx"``: transmitted symbol
    frames x. Writes ``path``.sigmf-data as frames come and ``path``.sigmf-meta at stop: sample rate
    S*spacing_hz, centre frequency f_c, the frame geometry, every [array] key of the ``scenario``,
    the gr-isac version, the scenario and its hash, and ``description``. When ``simulated``, the
    true array too: the spacings (``spacings_m`` if given, else the ones drawn from the impairment
    seed) and the true parameters of its element models; a measured array: ``simulated=False``
    with its ``spacings_m``. ``path`` is the recording's base name (``DIR/rx``) or a directory
    (then ``DIR/<kind>``). ``metadata`` (dict attribute, ``isac:`` keys) is added at stop."""

    NAME = NAME

    def __init__(
        self,
        scenario=None,
        path: str = "",
        kind: str = "rx",
        spacings_m=(),
        simulated: bool = True,
        description: str = "",
    ):
        self.setup(scenario)
        sc, g = self.scenario, self.geometry
        self.kind = base.choice(NAME, "kind", kind, recording.KINDS)
        if not isinstance(path, str):
            raise base.error(NAME, "path", f"must be a string (the recording's base name or directory), got {path!r}")
        self.path = path
        d = np.asarray(base.parameter(NAME, "spacings_m", np.ravel(spacings_m)), dtype=np.float64)
        if d.size not in (0, g.antennas):
            raise base.error(NAME, "spacings_m", f"must be empty or have K = {g.antennas} entries, got {d.size}")
        if d.size == 0 and simulated:
            a = sc.array
            d = draw_spacings(g.antennas, sc.wavelength_m, a["spacing_std_m"], a["impairment_seed"])
        self._array = dict(
            true_spacings_m=d if d.size else None,
            true_impairments=parameters_as_lists(true_parameters(sc)) if simulated else None,
            description=str(description),
        )
        self.simulated = bool(simulated)
        #: further global metadata (``isac:`` keys), written at stop
        self.metadata: dict = {"isac:scenario_hash": sc.hash(), "isac:scenario": sc.to_dict()}
        self.info = recording.global_metadata(self.kind, sc, **self._array)  # checked now; written at stop
        self.writer: recording.Writer | None = None
        self.error: str | None = None  # why start() could not open the recording
        self.meta_path = None
        self.n = recording.frame_samples(self.kind, g)
        gr.sync_block.__init__(self, name=NAME, in_sig=[(np.complex64, self.n)], out_sig=None)

    def start(self) -> bool:
        # An exception here would stall GNU Radio's scheduler: the error is logged, kept in
        # ``error``, and work() ends the flowgraph at once.
        super().start()
        self.error = None
        try:
            if not self.path:
                raise base.error(NAME, "path", "is empty: give the recording's base name (e.g. rec/rx) or directory")
            info = recording.global_metadata(
                self.kind, self.scenario, **self._array, extra=dict(self.metadata, **{"isac:simulated": self.simulated})
            )
            self.writer = recording.Writer(recording.base_path(self.path, self.kind), info)
        except ValueError as exc:  # RecordingError, BlockParameterError
            self.error = str(exc)
            self.logger.error(self.error)
        return True

    def work_frames(self, input_items, output_items):
        if self.writer is None:
            return -1  # WORK_DONE: nothing can be recorded (see ``error``)
        n = len(input_items[0])
        if self.kind == "rx":
            self.array_input(input_items[0], 0, n)  # the geometry check of the first frames
        self.writer.write(input_items[0][:n])
        if self.kind == "rx":
            for tag in self.get_tags_in_window(0, 0, n, pmt.intern(TRUTH_TAG)):
                try:
                    self.writer.annotate(tag.offset, Truth.from_pmt(tag.value))
                except (MessageError, ValueError) as exc:  # RecordingError included
                    self.logger.warn(f"frame {tag.offset}: truth tag not recorded: {exc}")
        return n

    def stop(self) -> bool:
        if self.writer is not None:
            self.meta_path = self.writer.close()
            self.logger.info(f"{self.writer.frames} frames recorded to {self.meta_path}")
        return super().stop()

    @property
    def frames(self) -> int:
        """Frames written so far."""
        return 0 if self.writer is None else self.writer.frames
