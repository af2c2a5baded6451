"""isac.precoder: the ISAC transmitter, X = f x^T with f the precoder (5) of a method (the
transceiver layer): LS beams (6)-(7) on the nominal array (baseline, perfect), on a learned array
(impairment, dictionary), or the NNBL precoder MLP (nn)."""

from __future__ import annotations

import threading

import numpy as np
import pmt
from gnuradio import gr

from .. import transceiver
from . import _common as c
from ._thread_state import HeldThreadState

NAME = "isac_precoder"
#: parameters that may change at run time (callbacks and the config port)
RUNTIME = ("eta", "phi", "power", "target_sector_deg", "comm_sector_deg")
#: stream tag carrying f (c32vector, K) on the first frame and on every frame where f changed
PRECODER_TAG = "precoder"


class precoder(HeldThreadState, gr.sync_block):
    """QPSK symbols x (vlen S) in, transmitted array frames X = f x^T out (vlen K*S,
    antenna-major: item[k*S + s] = f_k x_s).

    f is the precoder (5) of ``method`` (transceiver layer): "baseline" / "perfect" (LS beams on
    the nominal lambda/2 array), "impairment" / "dictionary" (LS beams on the learned array) or
    "nn" (the NNBL precoder MLP); learned methods take ``weights`` (a file of isac-train, or a
    loaded weights.Weights); ``method=""`` means the method of the weights, else baseline. The
    weights are validated against the block's scenario parameters (K, S, fc, spacing_hz,
    impairment and, unless ``weights_other_array``, the array they were learned on:
    spacing_std_m, impairment_seed; for nn also max_targets, the T_max of the networks; range_m
    and noise_power set the numerology of the NNBL networks, shared with the receiver block when
    both get the same loaded weights). Run-time changes: ``set_eta``, ``set_phi``,
    ``set_target_sector``, ``set_comm_sector``, ``set_power`` and the message port ``config``
    (PMT dict with any of eta, phi, power, target_sector_deg, comm_sector_deg) recompute f; the
    new f applies from the next work call and is announced by a ``precoder`` tag. Item 0 carries a
    ``frame_shape`` tag (K, S, block name) that the array-frame blocks downstream check."""

    def __init__(
        self,
        K: int = 64,
        S: int = 256,
        fc: float = 60e9,
        spacing_hz: float = 120e3,
        eta: float = 0.5,
        phi: float = 0.0,
        power: float = 1.0,
        target_sector_deg=(-40.0, -20.0),
        comm_sector_deg=(30.0, 50.0),
        beam_grid: int = 720,
        beam_rcond: float = 0.1,
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
        max_targets: int = 5,
        range_m=(10.0, 190.0),
        noise_power: float = 1.0,
        weights_other_array: bool = False,
    ):
        self.K = c.positive_int(NAME, "K", K)
        self.S = c.positive_int(NAME, "S", S)
        c.interval(NAME, "target_sector_deg", target_sector_deg, " (degrees)")
        c.interval(NAME, "comm_sector_deg", comm_sector_deg, " (degrees)")
        self._params = c.scenario_arguments(locals())
        self.scenario = c.scenario(NAME, self._params)
        self.method, self.weights = c.load_weights(NAME, weights, self.scenario, method, weights_other_array)
        self.transmitter = transceiver.transmitter(self.scenario, self.method, self.weights)
        self._lock = threading.Lock()
        self._f = self.transmitter.precoder(self.scenario)
        self._announce = True
        gr.sync_block.__init__(
            self, name=NAME, in_sig=[(np.complex64, self.S)], out_sig=[(np.complex64, self.K * self.S)]
        )
        c.frame_buffers(self, (0,))
        self._cpp = _cpp_array_frames()
        self.fatal_error = None
        #: optional handler(block, message) of a failure that stops the flowgraph (flowgraph.SimFlowgraph)
        self.on_fatal = None
        self.message_port_register_in(pmt.intern("config"))
        self.set_msg_handler(pmt.intern("config"), self.handle_config)

    @classmethod
    def from_scenario(cls, scenario, **kwargs) -> "precoder":
        """The block for ``scenario`` (its parameters taken from it), plus ``kwargs`` (method, weights, ...)."""
        return cls(**c.scenario_parameters(cls, scenario), **kwargs)

    # --- configuration ---------------------------------------------------------------
    def precoder(self) -> np.ndarray:
        """The current f (K,), complex64."""
        with self._lock:
            return self._f.copy()

    def reconfigure(self, **changes) -> None:
        """Apply parameter changes (names of the constructor, those of RUNTIME) and recompute f.
        Raises BlockParameterError (and keeps the old f) when a value is invalid."""
        params = dict(self._params)
        for name, value in changes.items():
            if name not in RUNTIME:
                raise c.error(NAME, name, "cannot be changed at run time")
            if name.endswith("sector_deg"):
                value = c.interval(NAME, name, value, " (degrees)")
            params[name] = value
        scenario = c.scenario(NAME, params)
        f = self.transmitter.precoder(scenario)
        with self._lock:
            self._params, self.scenario, self._f, self._announce = params, scenario, f, True

    def set_eta(self, eta: float) -> None:
        self.reconfigure(eta=eta)

    def set_phi(self, phi: float) -> None:
        self.reconfigure(phi=phi)

    def set_power(self, power: float) -> None:
        self.reconfigure(power=power)

    def set_target_sector(self, sector_deg) -> None:
        self.reconfigure(target_sector_deg=sector_deg)

    def set_comm_sector(self, sector_deg) -> None:
        self.reconfigure(comm_sector_deg=sector_deg)

    def handle_config(self, msg) -> None:
        """``config`` port: PMT dict with any of eta, phi, power, target_sector_deg, comm_sector_deg.
        Invalid messages are logged and ignored."""
        keys = {k: k for k in RUNTIME}
        try:
            items = c.to_python(msg)
            unknown = sorted(set(items) - set(keys))
            if unknown:
                raise ValueError(f"unknown keys {unknown}; known: {', '.join(sorted(keys))}")
            changes = {
                keys[k]: (list(np.asarray(v, dtype=float)) if k.endswith("sector_deg") else float(v))
                for k, v in items.items()
            }
            self.reconfigure(**changes)
            self.logger.info(f"config applied: {changes}")
        except (ValueError, TypeError) as exc:
            self.logger.error(f"config message ignored: {exc}")

    # --- stream ---------------------------------------------------------------------
    def work(self, input_items, output_items):
        x = input_items[0]
        n = len(x)
        with self._lock:
            f, announce, self._announce = self._f, self._announce, False
        try:
            # X = f x^T (model.channels_stream.array_frame, or its C++ twin: the same bits), in place
            out = output_items[0][:n].reshape(n, self.K, self.S)
            if self._cpp is not None:
                self._cpp(f, x[:n], 1, out)
            else:
                np.multiply(f[None, :, None], x[:n, None, :], out=out)
        except Exception as exc:  # noqa: BLE001 - nothing per frame can fail here: a broken block
            return c.stop_flowgraph(self, f"{self.alias()}: {type(exc).__name__}: {exc}")
        written = self.nitems_written(0)
        if written == 0:
            c.add_shape_tag(self, 0, self.K, self.S)
        if announce:
            self.add_item_tag(0, written, c.key(PRECODER_TAG), c.c32(f))
        return n


def _cpp_array_frames():
    """``gnuradio.isac.array_frames`` (bit-equal to model.channels_stream.array_frame), None when not built."""
    try:
        from .. import array_frames
    except ImportError:
        return None
    return array_frames
