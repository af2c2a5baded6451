"""isac.angle_delay_map_stream: the angle-delay map of Algorithm 1, line 5, as a stream (for
display, e.g. a QT GUI time raster or isac.map_display: the map of Fig. 3 of the paper), and its
range-velocity map (frames of M OFDM symbols: the targets' speeds)."""

from __future__ import annotations

import numpy as np
from gnuradio import gr

from .. import transceiver
from ..model.angle_delay import angle_delay_doppler_map, angle_delay_map, map_views
from ..model.dictionaries import doppler_speeds, omp_dictionaries
from ..model.impairments import receiver_array
from ..transceiver.stream import frame_amplitudes, max_amplitude, power_of_two_scales, rescaled
from . import base
from .weights import block_weights

NAME = "isac_angle_delay_map_stream"
#: angles x delays of the displayed map (coarser than the receiver's dictionaries: a picture)
DISPLAY_POINTS = (180, 100)
#: frames of M > 1 symbols mapped per call (their 3-D maps are N_v times the 2-D one)
DOPPLER_CHUNK = 4


class angle_delay_map_stream(base.FrameBlock, gr.sync_block):
    """Reciprocal-filtered frames Y~ in; out 0: the map L = |Phi_a^H Y~ Phi_d^*|^2 / (K S) (float,
    vlen angles*delays, angle-major: item[i*delays + j] is angle i, delay j), in dB (10 log10) when
    ``db``. The division by K S puts noise-only cells at N0 on average (0 dB for N0 = 1).

    Frames of M > 1 OFDM symbols (the scenario's ofdm.symbols): the map is that of the frame over
    angle, delay and speed, L3 = |sum Phi_v^* (x) Phi_a^H Y~ Phi_d^*|^2 / (K S M) (model.angle_delay.
    angle_delay_doppler_map on the receiver's speed grid, model.dictionaries.doppler_speeds: N_v =
    ``speed_points`` speeds over scene.speed_mps), normalised like the 2-D one (noise-only cells at
    N0 on average; a target's peak grows with M, the coherent gain of the M symbols), and out 0 is
    its maximum over the speeds: each angle-delay cell shows its strongest echo whatever its speed
    (model.angle_delay.map_views).

    Out 1 (optional): the range-velocity map, the maximum of L3 over the angles (float, vlen
    speeds*delays, speed-major: item[l*delays + j] is speed l, delay j; same scale and dB): where
    the targets are in range and speed. For M = 1 it has the one speed 0 (the maximum of L over
    the angles: a range profile).

    ``map_points`` = (angles, delays) of the map's grids over the scenario's target sector and
    range interval (Algorithm 1's dictionaries (8), model.dictionaries.omp_dictionaries, at the
    display's resolution). The atoms are those of the array the receiver of ``method`` assumes
    (``weights`` as in isac.omp_receiver), scaled to norm sqrt(K) for an impaired array as the
    receivers match them; a method without an array (nn) has no map.

    A frame beyond the single-precision range is computed on a power-of-two rescaled copy (exact)
    and scaled back; a linear map that cannot be represented in float32 is flagged (NaN, counted in
    ``invalid_frames``). Non-finite input gives non-finite map entries. A frame whose map raises
    is output as NaN, counted and logged (base.FrameBlock)."""

    NAME = NAME

    def __init__(
        self,
        scenario=None,
        map_points=DISPLAY_POINTS,
        method: str = "",
        weights="",
        db: bool = True,
        weights_other_array: bool = False,
    ):
        self.setup(scenario)
        self.method, self.weights = block_weights(NAME, self.scenario, method, weights, weights_other_array)
        m = transceiver.get(self.method, self.weights)
        if not m.has_array:
            raise base.error(NAME, "method", f"{self.method!r} has no array, so no angle-delay map")
        angles, delays = base.parameter(NAME, "map_points", map_points)
        grid = self.scenario.with_overrides({"receiver.angle_grid": angles, "receiver.delay_grid": delays})
        # the atoms the receiver matches: equal-norm for an impaired array (model.impairments.ReceiverArray)
        self.array = receiver_array(m.receive_array(self.scenario, self.weights))
        self.dictionaries = omp_dictionaries(grid, self.array)
        g = self.geometry
        #: the speeds (m/s) of the range-velocity map: the receiver's Doppler grid ([0] for M = 1)
        self.speeds_mps = self.dictionaries.speeds_mps if self.dictionaries.doppler else doppler_speeds(grid)
        self.phi_v = self.dictionaries.phi_v  # (M, N_v); None for M = 1
        self.map_points = (angles, delays)
        self.speed_points = int(self.speeds_mps.size)
        self.db = bool(db)
        self.size = angles * delays
        self.rv_size = self.speed_points * delays
        self.invalid_frames = 0
        self._high = max_amplitude(g)
        gr.sync_block.__init__(
            self,
            name=NAME,
            in_sig=[(np.complex64, g.array_items)],
            out_sig=gr.py_io_signature(1, 2, [(np.float32, self.size), (np.float32, self.rv_size)]),
        )

    def maps(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The maps of frames Y~ (B, *array_shape), as ``work`` emits them: the angle-delay map
        (B, angles, delays) and the range-velocity map (B, speeds, delays), float32 (dB when ``db``)."""
        D, g = self.dictionaries, self.geometry
        scales = power_of_two_scales(frame_amplitudes(y), self._high)
        y = rescaled(y, scales)
        if self.phi_v is None:
            L = angle_delay_map(y, D.phi_a, D.phi_d) / np.float32(g.antennas * g.subcarriers)
            views = (L, L.max(axis=1)[:, None, :])
        else:
            L3 = angle_delay_doppler_map(y, D.phi_a, D.phi_d, self.phi_v) / np.float32(g.array_items)
            views = map_views(L3)
        return tuple(self._scaled(v, scales) for v in views)

    def map(self, y: np.ndarray) -> np.ndarray:
        """The angle-delay maps of frames Y~ (B, *array_shape): (B, angles, delays) float32."""
        return self.maps(y)[0]

    def _scaled(self, L: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """A view (B, a, b) of frames rescaled by ``scales``: back to the frames' scale, in dB when ``db``."""
        if self.db:
            with np.errstate(divide="ignore", invalid="ignore"):
                L = 10.0 * np.log10(np.maximum(L, np.float32(1e-12)))
            if np.any(scales != 1.0):
                L = L + (20.0 * np.log10(scales))[:, None, None]  # 10 log10 of scale^2
        elif np.any(scales != 1.0):
            with np.errstate(over="ignore"):
                L = (L * (scales * scales)[:, None, None]).astype(np.float32)
        return L.astype(np.float32)

    def work_frames(self, input_items, output_items):
        n = len(input_items[0])
        read = self.nitems_read(0)
        Y = self.array_input(input_items[0], 0, n)
        outs = [output_items[0]] + ([output_items[1]] if len(output_items) > 1 else [])  # out 1 is optional
        chunk = n if self.phi_v is None else DOPPLER_CHUNK

        def put(i0, i1):
            for out, view in zip(outs, self.maps(Y[i0:i1])):
                out[i0:i1] = view.reshape(i1 - i0, -1)

        def batch():
            for i0 in range(0, n, chunk):
                put(i0, min(n, i0 + chunk))

        checked = np.isfinite(frame_amplitudes(Y))  # finite input whose map was computed

        def failed(i):
            for out in outs:
                out[i] = np.nan
            checked[i] = False

        self.per_frame(read, n, lambda i: put(i, i + 1), failed, batch)
        for i in np.nonzero(checked & ~np.all([np.isfinite(out[:n]).all(axis=1) for out in outs], axis=0))[0]:
            for out in outs:
                out[i] = np.nan
            self.invalid_frames += 1
            self.logger.warn(
                f"frame {read + int(i)}: its linear map exceeds the float32 range (dB maps do not): flagged "
                f"invalid ({self.invalid_frames} such frames so far)"
            )
        return n


__all__ = ["angle_delay_map_stream"]
