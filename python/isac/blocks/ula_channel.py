"""isac.ula_channel: the multi-target sensing echo (1) and the MISO downlink (4) through the
true (impaired) ULA, one frame per item, with ground truth."""

from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from ..model.array import PositionArray, spacing_array, true_array
from ..model.channels import comm_tap_variances
from ..model.channels_stream import FrameBatch, channel_frames, channel_frames_cpp
from ..model.impairments import impaired_array
from ..model.scene import Scene, sensing_gain_variance
from ..simulation import STREAMS, frame_rng
from . import _common as c
from ._thread_state import HeldThreadState
from .precoder import PRECODER_TAG

NAME = "isac_ula_channel"
TRUTH_TAG = "truth"


class _GiveUp(Exception):
    """Too many frames in a row failed: the block stops the flowgraph."""


class ula_channel(HeldThreadState, gr.sync_block):
    """Transmitted array frames X (vlen K*S) in; out 0: received sensing frames Y_r (vlen K*S,
    antenna-major), out 1: communication frames y_c (vlen S), out 2: CSI kappa (vlen S).

    Frame i (counted from ``first_frame``) draws its randomness from
    ``simulation.frame_rng(seed, stream, i)`` in the order of ``simulation.Simulator.frame``
    (``model.channels_stream.channel_frame``), so with the Simulator's transmitted frames it
    reproduces the Simulator's scenes, noise and comm angles exactly and its signals to
    float rounding. The array is ``model.array.true_array`` of the parameters (spacings drawn
    from ``impairment_seed`` with std ``spacing_std_m``; 0 = ideal lambda/2 ULA), or the array
    of a given spacing vector ``spacings_m`` (K values, m) under ``impairment``; either way with the
    element models a(theta) = C diag(g) a_pos(theta) of ``model.impairments`` (gain_std_db,
    phase_std_deg, coupling_taps, coupling_db, dead_elements, dead_list, weak_gain; all off by
    default) drawn from ``impairment_seed``.

    kappa = beta f^T a(phi) needs the precoder f: it is read from the ``precoder`` stream tag
    of isac.precoder (or given as ``precoder``); without either, kappa is NaN and an error is
    logged once.

    Fixed targets: non-empty ``fixed_angles_deg`` / ``fixed_ranges_m`` (equal lengths) give
    the same scene in every frame, with gains ``fixed_gains`` (default: sigma_r, the
    real amplitude of SNR_r = K sigma_r^2 / N0 per target).

    Ground truth of each frame: PMT dict on the ``truth`` message port and a ``truth`` tag on
    out 0 with keys frame (item number), sim_frame (frame_rng index = first_frame + frame),
    count, angle_deg, range_m, gain_abs, comm_angle_deg, valid.

    The frames of a work call are computed at once by the C++ twin (``gnuradio.isac.FrameChannel``:
    the same draws from numpy's generator and distribution code, the echo in C++, the downlink
    completed by ``model.channels_stream.comm_from_draws``) when it is built and agrees with
    ``channel_frame`` on a check frame at construction, else by ``channel_frame`` frame by frame
    (``use_cpp`` says which; the C++ twin takes arrays given by element positions, so arrays with
    element gains or coupling run the numpy model). ``set_threads(n)`` splits a call's frames over n threads.

    A frame whose computation raises (e.g. MemoryError) is flagged, counted in ``failed_frames``
    and logged, and the stream goes on: its outputs are NaN (the receivers skip it) and its truth
    has valid = False and no targets. 32 failed frames in a row stop the flowgraph
    (``fatal_error``; see ``_common.stop_flowgraph``). Item 0 of out 0 carries a ``frame_shape``
    tag (K, S, block name); a ``frame_shape`` tag on the input with another K x S (same K*S)
    stops the flowgraph with an error naming both blocks."""

    def __init__(
        self,
        K: int = 64,
        S: int = 256,
        fc: float = 60e9,
        spacing_hz: float = 120e3,
        spacing_std_m: float = 2e-4,
        impairment_seed: int = 1,
        gain_std_db: float = 0.0,
        phase_std_deg: float = 0.0,
        coupling_taps: int = 0,
        coupling_db: float = -20.0,
        dead_elements: int = 0,
        dead_list=(),
        weak_gain: float = 0.0,
        impairment: str = "spacing",
        snr_sensing_db: float = 15.0,
        snr_comm_db: float = 20.0,
        comm_taps: int = 5,
        target_sector_deg=(-40.0, -20.0),
        comm_sector_deg=(30.0, 50.0),
        range_m=(10.0, 190.0),
        max_targets: int = 5,
        seed: int = 0,
        noise_power: float = 1.0,
        fixed_angles_deg=(),
        fixed_ranges_m=(),
        fixed_gains=(),
        precoder=(),
        stream: str = "test",
        first_frame: int = 0,
        spacings_m=(),
    ):
        self.K = c.positive_int(NAME, "K", K)
        self.S = c.positive_int(NAME, "S", S)
        c.interval(NAME, "target_sector_deg", target_sector_deg, " (degrees)")
        c.interval(NAME, "comm_sector_deg", comm_sector_deg, " (degrees)")
        c.interval(NAME, "range_m", range_m, " (m)")
        if stream not in STREAMS:
            raise c.error(NAME, "stream", f"must be one of {', '.join(STREAMS)}, got {stream!r}")
        if int(first_frame) != first_frame or first_frame < 0:
            raise c.error(NAME, "first_frame", f"must be an integer >= 0, got {first_frame!r}")
        self.scenario = c.scenario(NAME, c.scenario_arguments(locals()))
        sc = self.scenario
        self.seed, self.stream, self.first_frame = sc.run["seed"], stream, int(first_frame)
        d = np.asarray(spacings_m, dtype=np.float64).reshape(-1)
        if d.size:  # a given spacing vector replaces the drawn impairment
            if d.size != self.K or not np.all(np.isfinite(d)) or np.any(d <= 0):
                raise c.error(
                    NAME, "spacings_m", f"must be empty or K = {self.K} finite spacings > 0 (m), got {d.size} values"
                )
            self.array = impaired_array(spacing_array(d, sc.wavelength_m, sc.array["impairment"]), sc)
        else:
            self.array = true_array(sc)
        self.gain_variance = sensing_gain_variance(sc.scene["snr_sensing_db"], self.K, sc.scene["noise_power"])
        self.tap_variances = comm_tap_variances(
            sc.scene["comm_taps"], sc.scene["snr_comm_db"], self.S, sc.scene["noise_power"]
        )
        self.fixed_scene = self._fixed_scene(fixed_angles_deg, fixed_ranges_m, fixed_gains)
        f = np.asarray(precoder, dtype=np.complex64).reshape(-1)
        if f.size not in (0, self.K):
            raise c.error(NAME, "precoder", f"must have K = {self.K} entries (or none), got {f.size}")
        self._f = f if f.size else None
        self._warned_no_precoder = False
        self.threads = 1
        self.failures = c.FrameFailures(self)
        self.fatal_error = None
        #: optional handler(block, message) of a failure that stops the flowgraph (flowgraph.SimFlowgraph)
        self.on_fatal = None
        self._cpp = self._cpp_channel()
        gr.sync_block.__init__(
            self,
            name=NAME,
            in_sig=[(np.complex64, self.K * self.S)],
            out_sig=[(np.complex64, self.K * self.S), (np.complex64, self.S), (np.complex64, self.S)],
        )
        c.frame_buffers(self, (0,))
        c.frame_buffers(self, (1, 2), c.SYMBOL_FRAMES)
        self.message_port_register_out(pmt.intern("truth"))

    @property
    def use_cpp(self) -> bool:
        """True when the frames are computed by the C++ twin."""
        return self._cpp is not None

    @property
    def failed_frames(self) -> int:
        return self.failures.count

    def set_threads(self, threads: int) -> None:
        """Split the frames of a work call over ``threads`` threads (C++ twin only)."""
        self.threads = c.positive_int(NAME, "threads", threads)

    def _params(self) -> dict:
        sc = self.scenario
        return dict(
            max_targets=sc.scene["max_targets"],
            sector_rad=sc.target_sector_rad,
            range_m=sc.range_interval_m,
            gain_variance=self.gain_variance,
            comm_sector_rad=sc.comm_sector_rad,
            spacing_hz=sc.ofdm["spacing_hz"],
            noise_power=sc.scene["noise_power"],
            tap_variances=self.tap_variances,
            scene=self.fixed_scene,
        )

    def _cpp_channel(self):
        """The C++ twin of this channel, or None when it is not built or does not reproduce
        ``channel_frame`` on a check frame (then the numpy model runs, with a warning)."""
        try:
            from .. import FrameChannel, numpy_stream_available
        except ImportError:
            return None
        if not numpy_stream_available() or not isinstance(self.array, PositionArray):
            return None  # e.g. element gains / coupling (model.impairments): the numpy model runs
        p, fs = self._params(), self.fixed_scene
        kernel = FrameChannel(
            self.array.positions_m,
            self.array.wavelength_m,
            p["spacing_hz"],
            self.S,
            p["max_targets"],
            p["sector_rad"],
            p["range_m"],
            p["gain_variance"],
            p["comm_sector_rad"],
            np.asarray(self.tap_variances, np.float64),
            p["noise_power"],
            *((fs.angles_rad, fs.ranges_m, fs.gains) if fs is not None else ()),
        )
        # check frame: the stream's first frame with a fixed transmitted frame and precoder
        f = np.exp(1j * np.arange(self.K)).astype(np.complex64) / np.sqrt(self.K)
        X = (f[:, None] * np.exp(-1j * np.arange(self.S))[None, :]).astype(np.complex64)[None]
        stream = STREAMS[self.stream]
        got = channel_frames_cpp(kernel, self.seed, stream, self.first_frame, self.array, X, f)
        ref = channel_frames(lambda i: frame_rng(self.seed, self.stream, i), self.first_frame, self.array, X, f, **p)
        n = int(ref.counts[0])
        same = (
            got.counts[0] == n
            and np.array_equal(got.angles_rad[0, :n], ref.angles_rad[0, :n])
            and np.array_equal(got.ranges_m[0, :n], ref.ranges_m[0, :n])
            and np.array_equal(got.gains[0, :n], ref.gains[0, :n])
            and got.comm_angle_rad[0] == ref.comm_angle_rad[0]
            and np.array_equal(got.csi, ref.csi)
            and np.allclose(got.y_sensing, ref.y_sensing, rtol=0, atol=1e-5 * np.abs(ref.y_sensing).max())
            and np.allclose(got.y_comm, ref.y_comm, rtol=0, atol=1e-5 * np.abs(ref.y_comm).max())
        )
        if not same:
            import warnings

            warnings.warn(
                f"{NAME}: the C++ channel does not reproduce numpy's frames with this numpy "
                f"({np.__version__}); using the numpy model (slower)",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        return kernel

    @classmethod
    def from_scenario(cls, scenario, **kwargs) -> "ula_channel":
        """The block for ``scenario`` (its parameters taken from it), plus ``kwargs``."""
        return cls(**c.scenario_parameters(cls, scenario), **kwargs)

    def _fixed_scene(self, angles_deg, ranges_m, gains) -> Scene | None:
        th = np.asarray(angles_deg, dtype=np.float64).reshape(-1)
        r = np.asarray(ranges_m, dtype=np.float64).reshape(-1)
        g = np.asarray(gains, dtype=np.complex128).reshape(-1)
        if th.size == 0 and r.size == 0:
            return None
        if th.size != r.size:
            raise c.error(
                NAME, "fixed_ranges_m", f"must have as many entries as fixed_angles_deg ({th.size}), got {r.size}"
            )
        if g.size == 0:
            g = np.full(th.size, np.sqrt(self.gain_variance), dtype=np.complex128)
        if g.size != th.size:
            raise c.error(NAME, "fixed_gains", f"must be empty or have {th.size} entries, got {g.size}")
        try:
            return Scene(np.deg2rad(th), r, g)
        except ValueError as exc:
            raise c.error(NAME, "fixed_angles_deg", f"/ fixed_ranges_m / fixed_gains: {exc}") from None

    def frames(self, index: int, X: np.ndarray, precoder=None, out: np.ndarray | None = None) -> FrameBatch:
        """Channel outputs of frames ``index ..`` (frame_rng indices) for the transmitted frames
        X (B, K, S) and the precoder f (None: the current one): the model call behind ``work``.
        ``out`` (B, K, S) complex64, C-contiguous: where the C++ twin writes Y_r."""
        f = self._f if precoder is None else precoder
        if self._cpp is not None:
            return channel_frames_cpp(
                self._cpp, self.seed, STREAMS[self.stream], index, self.array, X, f, self.threads, out
            )
        return channel_frames(lambda i: frame_rng(self.seed, self.stream, i), index, self.array, X, f, **self._params())

    def frame(self, index: int, X: np.ndarray):
        """Channel outputs of frame ``index`` for the transmitted frame X (K x S). Returns
        (scene, Y_r, y_c, kappa, phi)."""
        out = self.frames(index, np.asarray(X).reshape(1, self.K, self.S))
        return out.scene(0), out.y_sensing[0], out.y_comm[0], out.csi[0], float(out.comm_angle_rad[0])

    @staticmethod
    def truth_dict(frame: int, scene: Scene, phi: float, sim_frame: int | None = None) -> dict:
        """Ground truth of stream frame ``frame`` (the item number, as in every block's messages);
        ``sim_frame`` is its index in the frame_rng stream (frame + first_frame)."""
        return {
            "frame": frame,
            "sim_frame": frame if sim_frame is None else sim_frame,
            "count": scene.count,
            "angle_deg": np.rad2deg(scene.angles_rad),
            "range_m": scene.ranges_m,
            "gain_abs": np.abs(scene.gains),
            "comm_angle_deg": float(np.rad2deg(phi)),
            "valid": True,
        }

    def _batch(self, first: int, X: np.ndarray, y_r: np.ndarray) -> FrameBatch:
        """Frames of stream items ``first ..``, Y_r into ``y_r`` (B, K, S); when the batch raises,
        frame by frame, a failing frame left invalid (NaN, no targets) and counted."""
        index = self.first_frame + first
        try:
            out = self.frames(index, X, out=y_r)
        except Exception:  # noqa: BLE001 - isolate the failing frames
            B = X.shape[0]
            out = FrameBatch.empty(B, self.K, self.S, self.scenario.scene["max_targets"])
            for b in range(B):
                try:
                    one = self.frames(index + b, X[b : b + 1])
                except Exception as exc:  # noqa: BLE001
                    self.failures.failed(first + b, exc)
                    if self.failures.fatal:
                        raise _GiveUp(
                            f"{self.alias()}: {self.failures.consecutive} frames in a row failed, last: "
                            f"{type(exc).__name__}: {exc}"
                        ) from None
                    continue
                self.failures.ok()
                out.put(b, one.scene(0), one.y_sensing[0], one.y_comm[0], one.csi[0], one.comm_angle_rad[0])
            return out
        if len(out):
            self.failures.ok()
        return out

    def work(self, input_items, output_items):
        try:
            return self._work(input_items, output_items)
        except _GiveUp as exc:
            return c.stop_flowgraph(self, str(exc))
        except Exception as exc:  # noqa: BLE001 - not a frame's failure: the block cannot go on
            return c.stop_flowgraph(self, f"{self.alias()}: {type(exc).__name__}: {exc}")

    def _work(self, input_items, output_items):
        x = input_items[0]
        n = len(x)
        read, written = self.nitems_read(0), self.nitems_written(0)
        if read == 0:
            problem = c.shape_mismatch(self, 0, self.K, self.S, n)
            if problem:
                return c.stop_flowgraph(self, problem)
        if written == 0:
            c.add_shape_tag(self, 0, self.K, self.S)
        # a precoder tag changes f from its item on: one batch per stretch of constant f
        changes = {t.offset - read: t.value for t in self.get_tags_in_window(0, 0, n, c.key(PRECODER_TAG))}
        bounds = sorted({0, n, *changes})
        X = x[:n].reshape(n, self.K, self.S)
        for i0, i1 in zip(bounds[:-1], bounds[1:]):
            if i0 in changes:
                self._f = np.asarray(pmt.c32vector_elements(changes[i0]), dtype=np.complex64)
            if self._f is None and not self._warned_no_precoder:
                self.logger.error(
                    "no precoder tag or parameter: CSI kappa is NaN (connect isac.precoder "
                    "or set the precoder parameter)"
                )
                self._warned_no_precoder = True
            y_r = output_items[0][i0:i1].reshape(i1 - i0, self.K, self.S)
            out = self._batch(read + i0, X[i0:i1], y_r)
            if out.y_sensing is not y_r:
                y_r[:] = out.y_sensing
            output_items[1][i0:i1] = out.y_comm
            output_items[2][i0:i1] = out.csi
            frames = read + i0 + np.arange(i1 - i0, dtype=np.int64)
            truths = c.make_dicts(
                [  # truth_dict of each frame
                    ("frame", frames),
                    ("sim_frame", self.first_frame + frames),
                    ("count", out.counts),
                    ("angle_deg", np.rad2deg(out.angles_rad)),
                    ("range_m", out.ranges_m),
                    ("gain_abs", np.abs(out.gains)),
                    ("comm_angle_deg", np.rad2deg(out.comm_angle_rad)),
                    ("valid", out.valid),
                ],
                out.counts,
            )
            tag, port = c.key(TRUTH_TAG), c.key("truth")
            for b, truth in enumerate(truths):
                self.add_item_tag(0, written + i0 + b, tag, truth)
                self.message_port_pub(port, truth)
        return n
