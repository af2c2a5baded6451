"""isac.ula_channel: the multi-target sensing echo (1) and the MISO downlink (4) through the
true (impaired) ULA, one frame per item, with ground truth."""
from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from ..model.array import spacing_array, true_array
from ..model.channels import comm_tap_variances
from ..model.channels_stream import channel_frame
from ..model.scene import Scene, sensing_gain_variance
from ..simulation import STREAMS, frame_rng
from . import _common as c
from .precoder import PRECODER_TAG

NAME = "isac_ula_channel"
TRUTH_TAG = "truth"


class ula_channel(gr.sync_block):
    """Transmitted array frames X (vlen K*S) in; out 0: received sensing frames Y_r (vlen K*S,
    antenna-major), out 1: communication frames y_c (vlen S), out 2: CSI kappa (vlen S).

    Frame i (counted from ``first_frame``) draws its randomness from
    ``simulation.frame_rng(seed, stream, i)`` in the order of ``simulation.Simulator.frame``
    (``model.channels_stream.channel_frame``), so with the Simulator's transmitted frames it
    reproduces the Simulator's scenes, noise and comm angles exactly and its signals to
    float rounding. The array is ``model.array.true_array`` of the parameters (spacings drawn
    from ``impairment_seed`` with std ``spacing_std_m``; 0 = ideal lambda/2 ULA), or the array
    of a given spacing vector ``spacings_m`` (K values, m) under ``impairment``.

    kappa = beta f^T a(phi) needs the precoder f: it is read from the ``precoder`` stream tag
    of isac.precoder (or given as ``precoder``); without either, kappa is NaN and an error is
    logged once.

    Fixed targets: non-empty ``fixed_angles_deg`` / ``fixed_ranges_m`` (equal lengths) give
    the same scene in every frame, with gains ``fixed_gains`` (default: sigma_r, the
    real amplitude of SNR_r = K sigma_r^2 / N0 per target).

    Ground truth of each frame: PMT dict on the ``truth`` message port and a ``truth`` tag on
    out 0 with keys frame (item number), sim_frame (frame_rng index = first_frame + frame),
    count, angle_deg, range_m, gain_abs, comm_angle_deg."""

    def __init__(self, K: int = 64, S: int = 256, fc: float = 60e9, spacing_hz: float = 120e3,
                 spacing_std_m: float = 2e-4, impairment_seed: int = 1, impairment: str = "spacing",
                 snr_sensing_db: float = 15.0, snr_comm_db: float = 20.0, comm_taps: int = 5,
                 target_sector_deg=(-40.0, -20.0), comm_sector_deg=(30.0, 50.0), range_m=(10.0, 190.0),
                 max_targets: int = 5, seed: int = 0, noise_power: float = 1.0,
                 fixed_angles_deg=(), fixed_ranges_m=(), fixed_gains=(), precoder=(),
                 stream: str = "test", first_frame: int = 0, spacings_m=()):
        self.K = c.positive_int(NAME, "K", K)
        self.S = c.positive_int(NAME, "S", S)
        c.interval(NAME, "target_sector_deg", target_sector_deg, " (degrees)")
        c.interval(NAME, "comm_sector_deg", comm_sector_deg, " (degrees)")
        c.interval(NAME, "range_m", range_m, " (m)")
        if stream not in STREAMS:
            raise c.error(NAME, "stream", f"must be one of {', '.join(STREAMS)}, got {stream!r}")
        if int(first_frame) != first_frame or first_frame < 0:
            raise c.error(NAME, "first_frame", f"must be an integer >= 0, got {first_frame!r}")
        self.scenario = c.scenario(NAME, dict(
            K=self.K, S=self.S, fc=fc, spacing_hz=spacing_hz, spacing_std_m=spacing_std_m,
            impairment_seed=impairment_seed, impairment=impairment, snr_sensing_db=snr_sensing_db,
            snr_comm_db=snr_comm_db, comm_taps=comm_taps, target_sector_deg=list(target_sector_deg),
            comm_sector_deg=list(comm_sector_deg), range_m=list(range_m), max_targets=max_targets, seed=seed,
            noise_power=noise_power))
        sc = self.scenario
        self.seed, self.stream, self.first_frame = sc.run["seed"], stream, int(first_frame)
        d = np.asarray(spacings_m, dtype=np.float64).reshape(-1)
        if d.size:  # a given spacing vector replaces the drawn impairment
            if d.size != self.K or not np.all(np.isfinite(d)) or np.any(d <= 0):
                raise c.error(NAME, "spacings_m", f"must be empty or K = {self.K} finite spacings > 0 (m), "
                                                  f"got {d.size} values")
            self.array = spacing_array(d, sc.wavelength_m, sc.array["impairment"])
        else:
            self.array = true_array(sc)
        self.gain_variance = sensing_gain_variance(sc.scene["snr_sensing_db"], self.K, sc.scene["noise_power"])
        self.tap_variances = comm_tap_variances(sc.scene["comm_taps"], sc.scene["snr_comm_db"], self.S,
                                                sc.scene["noise_power"])
        self.fixed_scene = self._fixed_scene(fixed_angles_deg, fixed_ranges_m, fixed_gains)
        f = np.asarray(precoder, dtype=np.complex64).reshape(-1)
        if f.size not in (0, self.K):
            raise c.error(NAME, "precoder", f"must have K = {self.K} entries (or none), got {f.size}")
        self._f = f if f.size else None
        self._warned_no_precoder = False
        gr.sync_block.__init__(self, name=NAME, in_sig=[(np.complex64, self.K * self.S)],
                               out_sig=[(np.complex64, self.K * self.S), (np.complex64, self.S),
                                        (np.complex64, self.S)])
        self.message_port_register_out(pmt.intern("truth"))

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
            raise c.error(NAME, "fixed_ranges_m", f"must have as many entries as fixed_angles_deg ({th.size}), "
                                                  f"got {r.size}")
        if g.size == 0:
            g = np.full(th.size, np.sqrt(self.gain_variance), dtype=np.complex128)
        if g.size != th.size:
            raise c.error(NAME, "fixed_gains", f"must be empty or have {th.size} entries, got {g.size}")
        try:
            return Scene(np.deg2rad(th), r, g)
        except ValueError as exc:
            raise c.error(NAME, "fixed_angles_deg", f"/ fixed_ranges_m / fixed_gains: {exc}") from None

    def frame(self, index: int, X: np.ndarray):
        """Channel outputs of frame ``index`` for the transmitted frame X (K x S): the model call
        behind ``work``. Returns (scene, Y_r, y_c, kappa, phi)."""
        sc = self.scenario
        return channel_frame(frame_rng(self.seed, self.stream, index), self.array, X, self._f,
                             max_targets=sc.scene["max_targets"], sector_rad=sc.target_sector_rad,
                             range_m=sc.range_interval_m, gain_variance=self.gain_variance,
                             comm_sector_rad=sc.comm_sector_rad, spacing_hz=sc.ofdm["spacing_hz"],
                             noise_power=sc.scene["noise_power"], tap_variances=self.tap_variances,
                             scene=self.fixed_scene)

    @staticmethod
    def truth_dict(frame: int, scene: Scene, phi: float, sim_frame: int | None = None) -> dict:
        """Ground truth of stream frame ``frame`` (the item number, as in every block's messages);
        ``sim_frame`` is its index in the frame_rng stream (frame + first_frame)."""
        return {"frame": frame, "sim_frame": frame if sim_frame is None else sim_frame, "count": scene.count,
                "angle_deg": np.rad2deg(scene.angles_rad), "range_m": scene.ranges_m,
                "gain_abs": np.abs(scene.gains), "comm_angle_deg": float(np.rad2deg(phi))}

    def work(self, input_items, output_items):
        x = input_items[0]
        n = len(x)
        read, written = self.nitems_read(0), self.nitems_written(0)
        tags = {t.offset: t.value for t in self.get_tags_in_window(0, 0, n, pmt.intern(PRECODER_TAG))}
        for i in range(n):
            if read + i in tags:
                self._f = np.asarray(pmt.c32vector_elements(tags[read + i]), dtype=np.complex64)
            if self._f is None and not self._warned_no_precoder:
                self.logger.error("no precoder tag or parameter: CSI kappa is NaN (connect isac.precoder "
                                  "or set the precoder parameter)")
                self._warned_no_precoder = True
            index = self.first_frame + read + i
            scene, y_r, y_c, kappa, phi = self.frame(index, x[i].reshape(self.K, self.S))
            output_items[0][i] = y_r.reshape(-1)
            output_items[1][i] = y_c
            output_items[2][i] = kappa
            truth = c.make_dict(self.truth_dict(read + i, scene, phi, index))
            self.add_item_tag(0, written + i, pmt.intern(TRUTH_TAG), truth)
            self.message_port_pub(pmt.intern("truth"), truth)
        return n
