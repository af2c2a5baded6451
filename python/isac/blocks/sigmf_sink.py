"""isac.sigmf_sink: records received array frames Y_r (with their ground truth) or transmitted
symbols x as a SigMF recording (recording.py: cf32_le, antenna-major, isac: metadata)."""

from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from .. import recording
from ..model.array import draw_spacings
from ..model.impairments import element_response
from . import _common as c
from ._thread_state import HeldThreadState

NAME = "isac_sigmf_sink"
TRUTH_TAG = "truth"  # the ground-truth tag isac.ula_channel puts on Y_r


class sigmf_sink(HeldThreadState, gr.sync_block):
    """In: ``kind="rx"``: received array frames Y_r (vlen K*S, antenna-major, the reciprocal
    filter's input; the ``truth`` tags of isac.ula_channel become per-frame annotations) or
    ``kind="tx"``: transmitted symbols x (vlen S). Writes ``path``.sigmf-data as frames come and
    ``path``.sigmf-meta at stop: sample rate S*spacing_hz, centre frequency fc, the array (K,
    nominal spacing lambda/2, ``impairment`` model, ``spacing_std_m``, ``impairment_seed`` and,
    when ``simulated``, the true spacings: ``spacings_m`` if given, else the ones drawn from
    ``impairment_seed``; a measured array: ``simulated=False`` with its ``spacings_m``), the
    gr-isac version and ``description``. ``path`` is the recording's base name (``DIR/rx``) or
    a directory (then ``DIR/<kind>``). The element models of ``model.impairments`` (gain_std_db,
    phase_std_deg, coupling_taps, coupling_db, dead_elements, dead_list, weak_gain) are recorded
    as ``isac:`` keys and, when ``simulated``, the drawn element gains and coupling coefficients
    (``isac:true_element_gains``, ``isac:true_coupling``). ``metadata`` (dict attribute, ``isac:`` keys) is added to
    the global metadata: ``from_scenario`` puts the scenario and its hash there."""

    @classmethod
    def from_scenario(cls, scenario, **kwargs) -> "sigmf_sink":
        """The block for ``scenario`` (its parameters taken from it), plus ``kwargs`` (path, kind);
        the scenario and Scenario.hash() go into the metadata."""
        blk = cls(**c.scenario_parameters(cls, scenario), **kwargs)
        blk.metadata.update({"isac:scenario_hash": scenario.hash(), "isac:scenario": scenario.to_dict()})
        return blk

    def __init__(
        self,
        path: str = "",
        kind: str = "rx",
        K: int = 64,
        S: int = 256,
        fc: float = 60e9,
        spacing_hz: float = 120e3,
        impairment: str = "spacing",
        spacing_std_m: float = 2e-4,
        impairment_seed: int = 1,
        gain_std_db: float = 0.0,
        phase_std_deg: float = 0.0,
        coupling_taps: int = 0,
        coupling_db: float = -20.0,
        dead_elements: int = 0,
        dead_list=(),
        weak_gain: float = 0.0,
        spacings_m=(),
        simulated: bool = True,
        description: str = "",
    ):
        if kind not in recording.KINDS:
            raise c.error(NAME, "kind", f"must be one of {', '.join(recording.KINDS)}, got {kind!r}")
        if not isinstance(path, str):
            raise c.error(NAME, "path", f"must be a string (the recording's base name or directory), got {path!r}")
        sc = c.scenario(NAME, c.scenario_arguments(locals()))
        self.K, self.S, self.kind, self.path = sc.array["antennas"], sc.ofdm["subcarriers"], kind, path
        d = np.asarray(spacings_m, dtype=np.float64).reshape(-1)
        if d.size and (d.size != self.K or not np.all(np.isfinite(d)) or np.any(d <= 0)):
            raise c.error(
                NAME, "spacings_m", f"must be empty or K = {self.K} finite spacings > 0 (m), got {d.size} values"
            )
        if d.size == 0 and simulated:
            a = sc.array
            d = draw_spacings(self.K, sc.wavelength_m, a["spacing_std_m"], a["impairment_seed"])
        self._array = dict(
            kind=kind,
            K=self.K,
            S=self.S,
            carrier_hz=sc.array["carrier_hz"],
            spacing_hz=sc.ofdm["spacing_hz"],
            impairment=sc.array["impairment"],
            spacing_std_m=sc.array["spacing_std_m"],
            impairment_seed=sc.array["impairment_seed"],
            true_spacings_m=d if d.size else None,
            description=str(description),
            elements={name: sc.array[name] for name in recording.ELEMENT_KEYS},
        )
        if simulated:  # the drawn element response (None for a model that is off)
            self._array["true_gains"], self._array["true_coupling"] = element_response(sc)
        self.simulated = bool(simulated)
        self.info = recording.global_metadata(**self._array)  # checked now; written at stop
        #: further global metadata (``isac:`` keys), written at stop
        self.metadata: dict = {}
        self.writer: recording.Writer | None = None
        self.error: str | None = None  # why start() could not open the recording
        self.meta_path = None
        self.n = recording.frame_samples(kind, self.K, self.S)
        gr.sync_block.__init__(self, name=NAME, in_sig=[(np.complex64, self.n)], out_sig=None)

    def start(self) -> bool:
        # An exception here would stall GNU Radio's scheduler: the error is logged, kept in
        # ``error``, and work() ends the flowgraph at once.
        super().start()
        self.error = None
        try:
            if not self.path:
                raise c.error(NAME, "path", "is empty: give the recording's base name (e.g. rec/rx) or directory")
            info = recording.global_metadata(
                **self._array, extra=dict(self.metadata, **{"isac:simulated": self.simulated})
            )
            self.writer = recording.Writer(recording.base_path(self.path, self.kind), info)
        except ValueError as exc:  # RecordingError, BlockParameterError
            self.error = str(exc)
            self.logger.error(self.error)
        return True

    def work(self, input_items, output_items):
        if self.writer is None:
            return -1  # WORK_DONE: nothing can be recorded (see ``error``)
        x = input_items[0]
        n = len(x)
        self.writer.write(x[:n])
        if self.kind == "rx":
            for tag in self.get_tags_in_window(0, 0, n, pmt.intern(TRUTH_TAG)):
                try:
                    self.writer.annotate(tag.offset, c.to_python(tag.value))
                except (ValueError, TypeError) as exc:  # RecordingError included
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
