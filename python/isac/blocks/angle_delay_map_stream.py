"""isac.angle_delay_map_stream: the angle-delay map of Algorithm 1, line 5, as a stream (for
display, e.g. a QT GUI time raster or isac.map_display: the map of Fig. 3 of the paper)."""

from __future__ import annotations

import numpy as np
from gnuradio import gr

from .. import transceiver
from ..model.angle_delay import angle_delay_map
from ..model.dictionaries import omp_dictionaries
from ..model.impairments import receiver_array
from ..transceiver.stream import frame_amplitudes, max_amplitude, power_of_two_scales, rescaled
from . import base
from .weights import block_weights

NAME = "isac_angle_delay_map_stream"
#: angles x delays of the displayed map (coarser than the receiver's dictionaries: a picture)
DISPLAY_POINTS = (180, 100)


class angle_delay_map_stream(base.FrameBlock, gr.sync_block):
    """Reciprocal-filtered frames Y~ in; out: the map L = |Phi_a^H Y~ Phi_d^*|^2 / (K S) (float,
    vlen angles*delays, angle-major: item[i*delays + j] is angle i, delay j), in dB (10 log10) when
    ``db``. The division by K S puts noise-only cells at N0 on average (0 dB for N0 = 1).

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
        self.map_points = (angles, delays)
        self.db = bool(db)
        self.size = angles * delays
        self.invalid_frames = 0
        self._high = max_amplitude(self.geometry)
        gr.sync_block.__init__(
            self, name=NAME, in_sig=[(np.complex64, self.geometry.array_items)], out_sig=[(np.float32, self.size)]
        )

    def map(self, y: np.ndarray) -> np.ndarray:
        """Maps of frames Y~ (B, K, S): (B, angles, delays) float32, as ``work`` emits them."""
        D, g = self.dictionaries, self.geometry
        scales = power_of_two_scales(frame_amplitudes(y), self._high)
        L = angle_delay_map(rescaled(y, scales), D.phi_a, D.phi_d) / np.float32(g.antennas * g.subcarriers)
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
        out = output_items[0]

        def batch():
            out[:n] = self.map(Y).reshape(n, self.size)

        def one(i):
            out[i] = self.map(Y[i : i + 1]).reshape(self.size)

        checked = np.isfinite(frame_amplitudes(Y))  # finite input whose map was computed

        def failed(i):
            out[i] = np.nan
            checked[i] = False

        self.per_frame(read, n, one, failed, batch)
        for i in np.nonzero(checked & ~np.isfinite(out[:n]).all(axis=1))[0]:
            out[i] = np.nan
            self.invalid_frames += 1
            self.logger.warn(
                f"frame {read + int(i)}: its linear map exceeds the float32 range (dB maps do not): flagged "
                f"invalid ({self.invalid_frames} such frames so far)"
            )
        return n


__all__ = ["angle_delay_map_stream"]
