"""isac.ula_channel: the multi-target sensing echo (1) and the MISO downlink (4) through the
true (impaired) ULA of a scenario, one frame per item, with ground truth."""

from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from ..messages import TruthBatch
from ..model.array import spacing_array
from ..model.channels_stream import FrameBatch
from ..model.impairments import impaired_array, true_array
from ..model.scene import Scene, sensing_gain_variance
from ..simulation import STREAMS, StreamChannel
from . import base
from .precoder import PRECODER_TAG

NAME = "isac_ula_channel"
TRUTH_TAG = "truth"


class ula_channel(base.FrameBlock, gr.sync_block):
    """Transmitted array frames X in; out 0: received sensing frames Y_r, out 1: communication
    frames y_c, out 2: CSI kappa (layouts in docs/blocks.md).

    ``scenario`` (a Scenario, a TOML file, or None for the paper's) gives the true array
    (model.impairments.true_array: spacings drawn from array.impairment_seed, and the element
    models it turns on), the targets' distribution, the SNRs and the seed. Frame i (counted from
    ``first_frame``) of ``stream`` is drawn as simulation.Simulator.frame draws it
    (simulation.StreamChannel: the C++ twin when it applies, else the numpy model), so with the
    Simulator's transmitted frames it reproduces the Simulator's frames. ``spacings_m`` (K values,
    m) replaces the drawn spacings by a given vector (the element models still apply).

    kappa = beta f^T a(phi) needs the precoder f: from the ``precoder`` stream tag of isac.precoder
    or the ``precoder`` parameter; without either kappa is NaN (logged once). Fixed targets:
    ``fixed_angles_deg`` / ``fixed_ranges_m`` (equal lengths) give the same scene in every frame,
    with gains ``fixed_gains`` (default: sigma_r, the amplitude of SNR_r per target) and radial
    speeds ``fixed_speeds_mps`` (m/s, positive = approaching, |v| up to the scenario's unambiguous
    speed; default: static), which move them over the frame's M OFDM symbols.

    Ground truth of each frame (messages.Truth): on the ``truth`` message port and as a ``truth``
    tag on out 0. A frame whose computation raises is flagged (NaN outputs, truth valid False),
    counted and logged; the stream goes on (base.FrameBlock). ``set_threads(n)`` splits a call's
    frames over n threads (C++ twin)."""

    NAME = NAME

    def __init__(
        self,
        scenario=None,
        stream: str = "test",
        first_frame: int = 0,
        fixed_angles_deg=(),
        fixed_ranges_m=(),
        fixed_gains=(),
        precoder=(),
        spacings_m=(),
        fixed_speeds_mps=(),
    ):
        self.setup(scenario)
        sc, g = self.scenario, self.geometry
        base.choice(NAME, "stream", stream, STREAMS)
        self.first_frame = base.parameter(NAME, "first_frame", first_frame)
        d = np.asarray(base.parameter(NAME, "spacings_m", np.ravel(spacings_m)), dtype=np.float64)
        if d.size not in (0, g.antennas):
            raise base.error(NAME, "spacings_m", f"must be empty or have K = {g.antennas} entries, got {d.size}")
        array = (
            impaired_array(spacing_array(d, sc.wavelength_m, sc.array["impairment"]), sc) if d.size else true_array(sc)
        )
        fixed = self._fixed_scene(fixed_angles_deg, fixed_ranges_m, fixed_gains, fixed_speeds_mps)
        self.channel = StreamChannel(sc, array, stream, fixed)
        self.array, self.stream = array, stream
        f = np.asarray(precoder, dtype=np.complex64).reshape(-1)
        if f.size not in (0, g.antennas):
            raise base.error(NAME, "precoder", f"must have K = {g.antennas} entries (or none), got {f.size}")
        self._f = f if f.size else None
        self._warned_no_precoder = False
        gr.sync_block.__init__(
            self,
            name=NAME,
            in_sig=[(np.complex64, g.array_items)],
            out_sig=[(np.complex64, g.array_items), (np.complex64, g.symbol_items), (np.complex64, g.symbol_items)],
        )
        self.buffer_frames((0,))
        self.buffer_frames((1, 2), base.SYMBOL_FRAMES)
        self.message_port_register_out(pmt.intern("truth"))

    @property
    def use_cpp(self) -> bool:
        """True when the frames are computed by the C++ twin."""
        return self.channel.use_cpp

    def set_threads(self, threads: int) -> None:
        """Split the frames of a work call over ``threads`` threads (C++ twin only)."""
        self.channel.threads = base.integer(NAME, "threads", threads)

    def _fixed_scene(self, angles_deg, ranges_m, gains, speeds_mps=()) -> Scene | None:
        th = np.asarray(base.parameter(NAME, "fixed_angles_deg", np.ravel(angles_deg)), dtype=np.float64)
        r = np.asarray(base.parameter(NAME, "fixed_ranges_m", np.ravel(ranges_m)), dtype=np.float64)
        v = np.asarray(base.parameter(NAME, "fixed_speeds_mps", np.ravel(speeds_mps)), dtype=np.float64)
        g = np.asarray(gains, dtype=np.complex128).reshape(-1)
        vmax = self.scenario.unambiguous_speed_mps
        if np.any(np.abs(v) > vmax):
            raise base.error(
                NAME,
                "fixed_speeds_mps",
                f"entries must each lie in [-{vmax:.6g}, {vmax:.6g}] (m/s: the unambiguous speed lambda / (4 T_O) of "
                f"the scenario), got {float(v[np.argmax(np.abs(v))])!r}",
            )
        if th.size == 0 and r.size == 0:
            if v.size:
                raise base.error(
                    NAME,
                    "fixed_speeds_mps",
                    f"needs fixed targets (fixed_angles_deg, fixed_ranges_m), got {v.size} speeds",
                )
            return None
        if th.size != r.size:
            raise base.error(
                NAME, "fixed_ranges_m", f"must have as many entries as fixed_angles_deg ({th.size}), got {r.size}"
            )
        if g.size == 0:
            sc = self.scenario.scene
            sigma = np.sqrt(sensing_gain_variance(sc["snr_sensing_db"], self.geometry.antennas, sc["noise_power"]))
            g = np.full(th.size, sigma, dtype=np.complex128)
        if g.size != th.size:
            raise base.error(NAME, "fixed_gains", f"must be empty or have {th.size} entries, got {g.size}")
        if not np.all(np.isfinite(g)):
            bad = int(np.flatnonzero(~np.isfinite(g))[0])
            raise base.error(
                NAME, "fixed_gains", f"entries must be finite complex numbers, got {g[bad]!r} (entry {bad})"
            )
        if v.size not in (0, th.size):
            raise base.error(
                NAME, "fixed_speeds_mps", f"must be empty (static targets) or have {th.size} entries, got {v.size}"
            )
        try:
            return Scene(np.deg2rad(th), r, g, v if v.size else None)
        except ValueError as exc:
            raise base.error(NAME, "fixed_angles_deg", f"/ fixed_ranges_m / fixed_gains: {exc}") from None

    def frames(self, index: int, X: np.ndarray, precoder=None, out: np.ndarray | None = None) -> FrameBatch:
        """Channel outputs of stream frames ``index ..`` (simulation indices) for the transmitted
        frames X (B, K, S) and the precoder f (None: the current one): the model call of ``work``."""
        return self.channel.frames(index, X, self._f if precoder is None else precoder, out)

    def _batch(self, first: int, X: np.ndarray, y_r: np.ndarray) -> FrameBatch:
        """Frames of stream items ``first ..``, Y_r into ``y_r``; a frame that raises is left invalid
        (NaN, no targets), counted and logged."""
        index = self.first_frame + first
        try:
            out = self.frames(index, X, out=y_r)
            self.frame_ok()
            return out
        except Exception:  # noqa: BLE001 - frame by frame: a failing frame stays as FrameBatch.empty
            g = self.geometry
            out = FrameBatch.empty(X.shape[0], g.antennas, g.subcarriers, self.scenario.scene["max_targets"], g.symbols)

        def one(b):
            f = self.frames(index + b, X[b : b + 1])
            out.put(b, f.scene(0), f.y_sensing[0], f.y_comm[0], f.csi[0], f.comm_angle_rad[0])  # speeds in scene

        self.per_frame(first, X.shape[0], one, lambda b: None)  # invalid rows: NaN signals, no targets
        return out

    def work_frames(self, input_items, output_items):
        n = len(input_items[0])
        read, written = self.nitems_read(0), self.nitems_written(0)
        X = self.array_input(input_items[0], 0, n)
        self.tag_geometry(0)
        # a precoder tag changes f from its item on: one batch per stretch of constant f
        changes = {t.offset - read: t.value for t in self.get_tags_in_window(0, 0, n, pmt.intern(PRECODER_TAG))}
        bounds = sorted({0, n, *changes})
        tag, port = pmt.intern(TRUTH_TAG), pmt.intern("truth")
        for i0, i1 in zip(bounds[:-1], bounds[1:]):
            if i0 in changes:
                self._f = np.asarray(pmt.c32vector_elements(changes[i0]), dtype=np.complex64)
            if self._f is None and not self._warned_no_precoder:
                self.logger.error(
                    "no precoder tag or parameter: CSI kappa is NaN (connect isac.precoder or set the precoder "
                    "parameter)"
                )
                self._warned_no_precoder = True
            y_r = self.geometry.array_frames(output_items[0][i0:i1])
            out = self._batch(read + i0, X[i0:i1], y_r)
            if out.y_sensing is not y_r:
                y_r[:] = out.y_sensing
            output_items[1][i0:i1] = out.y_comm.reshape(i1 - i0, -1)  # a frame's M symbols in a row
            output_items[2][i0:i1] = out.csi.reshape(i1 - i0, -1)
            for b, truth in enumerate(TruthBatch.of_frames(read + i0, self.first_frame + read + i0, out).pmts()):
                self.add_item_tag(0, written + i0 + b, tag, truth)
                self.message_port_pub(port, truth)
        return n
