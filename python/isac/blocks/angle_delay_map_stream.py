"""isac.angle_delay_map_stream: the angle-delay map of Algorithm 1, line 5, as a stream (for
display, e.g. a QT GUI time raster: the map of Fig. 3 of the paper, one frame per screen)."""

from __future__ import annotations

import numpy as np
from gnuradio import gr

from .. import transceiver
from ..model.angle_delay import angle_delay_map
from ..model.dictionaries import omp_dictionaries
from ..model.impairments import receiver_array
from . import _common as c
from ._thread_state import HeldThreadState
from .omp_receiver import receiver_scenario

NAME = "isac_angle_delay_map_stream"


class angle_delay_map_stream(HeldThreadState, gr.sync_block):
    """Reciprocal-filtered frames Y~ (vlen K*S) in; out: the map L = |Phi_a^H Y~ Phi_d^*|^2 / (K S)
    (float, vlen angle_grid*delay_grid, angle-major: item[i*delay_grid + j] is angle i, delay j),
    in dB (10 log10) when ``db``. The division by K S puts noise-only cells at N0 on average
    (0 dB for N0 = 1). Dictionaries (8) (``model.dictionaries.omp_dictionaries``) of the array the
    receiver of ``method`` assumes (baseline, perfect, impairment, dictionary; ``weights`` as in
    isac.omp_receiver), its atoms scaled to norm sqrt(K) when that array has element gains or
    coupling (``model.impairments.receiver_array``, as the receivers match them). Non-finite
    input gives non-finite map entries. A frame whose map raises (e.g. MemoryError) is output as
    NaN, counted in ``failed_frames`` and logged; 32 in a row stop the flowgraph
    (``fatal_error``). A ``frame_shape`` tag on the input with another K x S (same K*S) stops the
    flowgraph with an error naming both blocks."""

    def __init__(
        self,
        K: int = 64,
        S: int = 256,
        fc: float = 60e9,
        spacing_hz: float = 120e3,
        target_sector_deg=(-40.0, -20.0),
        range_m=(10.0, 190.0),
        angle_grid: int = 180,
        delay_grid: int = 100,
        method: str = "",
        weights="",
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
        db: bool = True,
        weights_other_array: bool = False,
    ):
        self.scenario = receiver_scenario(NAME, **c.scenario_arguments(locals()))
        self.method, self.weights = c.load_weights(NAME, weights, self.scenario, method, weights_other_array)
        if self.method == "nn":
            raise c.error(NAME, "method", "'nn' (NNBL) has no array, so no angle-delay map")
        # the atoms the receiver matches: equal-norm for an impaired array (model.impairments.ReceiverArray)
        self.array = receiver_array(
            transceiver.get(self.method, self.weights).receive_array(self.scenario, self.weights)
        )
        self.dictionaries = omp_dictionaries(self.scenario, self.array)
        self.K, self.S = self.scenario.array["antennas"], self.scenario.ofdm["subcarriers"]
        self.db = bool(db)
        self.size = self.dictionaries.phi_a.shape[1] * self.dictionaries.phi_d.shape[1]
        self.failures = c.FrameFailures(self)
        self.fatal_error = None
        #: optional handler(block, message) of a failure that stops the flowgraph (flowgraph.SimFlowgraph)
        self.on_fatal = None
        gr.sync_block.__init__(
            self, name=NAME, in_sig=[(np.complex64, self.K * self.S)], out_sig=[(np.float32, self.size)]
        )

    @classmethod
    def from_scenario(cls, scenario, **kwargs) -> "angle_delay_map_stream":
        """The block for ``scenario`` (its parameters taken from it), plus ``kwargs``."""
        return cls(**c.scenario_parameters(cls, scenario), **kwargs)

    def map(self, y: np.ndarray) -> np.ndarray:
        """Maps of frames Y~ (B, K, S): (B, angle_grid, delay_grid) float32, as ``work`` emits them."""
        D = self.dictionaries
        L = angle_delay_map(y, D.phi_a, D.phi_d) / np.float32(self.K * self.S)
        if self.db:
            with np.errstate(divide="ignore", invalid="ignore"):
                L = 10.0 * np.log10(np.maximum(L, np.float32(1e-12)))
        return L.astype(np.float32)

    @property
    def failed_frames(self) -> int:
        return self.failures.count

    def work(self, input_items, output_items):
        try:
            return self._work(input_items, output_items)
        except Exception as exc:  # noqa: BLE001 - not a frame's failure: the block cannot go on
            return c.stop_flowgraph(self, f"{self.alias()}: {type(exc).__name__}: {exc}")

    def _work(self, input_items, output_items):
        y = input_items[0]
        n = len(y)
        read = self.nitems_read(0)
        if read == 0:
            problem = c.shape_mismatch(self, 0, self.K, self.S, n)
            if problem:
                return c.stop_flowgraph(self, problem)
        Y = y[:n].reshape(n, self.K, self.S)
        try:
            output_items[0][:n] = self.map(Y).reshape(n, self.size)
            self.failures.ok()
        except Exception:  # noqa: BLE001 - frame by frame: flag the failing ones
            for i in range(n):
                try:
                    output_items[0][i] = self.map(Y[i : i + 1]).reshape(self.size)
                    self.failures.ok()
                except Exception as exc:  # noqa: BLE001
                    output_items[0][i] = np.nan
                    self.failures.failed(read + i, exc)
                    if self.failures.fatal:
                        return c.stop_flowgraph(
                            self,
                            f"{self.alias()}: {self.failures.consecutive} frames in a row "
                            f"failed, last: {type(exc).__name__}: {exc}",
                        )
        return n


__all__ = ["angle_delay_map_stream"]
