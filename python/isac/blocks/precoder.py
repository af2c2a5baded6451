"""isac.precoder: the ISAC transmitter, X = f x^T with f the precoder (5) of a method (the
transceiver layer): LS beams (6)-(7) on the nominal array (baseline, perfect), on a learned array
(impairment, dictionary), or the NNBL precoder MLP (nn)."""

from __future__ import annotations

import threading

import numpy as np
import pmt
from gnuradio import gr

from .. import transceiver
from ..config import ConfigError
from ..messages import MessageError, from_pmt
from . import base
from .weights import block_weights

NAME = "isac_precoder"
#: the scenario keys that may change at run time (callbacks, set_scenario, the config port)
RUNTIME = {
    "eta": "transmitter.eta",
    "phi": "transmitter.phi_rad",
    "power": "transmitter.power",
    "target_sector_deg": "scene.target_sector_deg",
    "comm_sector_deg": "scene.comm_sector_deg",
}
#: stream tag carrying f (c32vector, K) on the first frame and on every frame where f changed
PRECODER_TAG = "precoder"


class precoder(base.FrameBlock, gr.sync_block):
    """QPSK symbol frames x in, transmitted array frames X = f x^T out (antenna-major:
    item[k*S + s] = f_k x_s; docs/blocks.md).

    ``scenario``: a Scenario, a TOML file, or None for the paper's (GRC: an ISAC Scenario block).
    f is the precoder (5) of ``method`` (transceiver layer) for the scenario's sectors, eta, phi
    and P: "baseline" / "perfect" (LS beams on the nominal lambda/2 array), "impairment" /
    "dictionary" (LS beams on the learned array) or "nn" (the NNBL precoder MLP), or a registered
    method; learned methods take ``weights`` (a file of isac-train, or a loaded weights.Weights,
    validated against the scenario unless ``weights_other_array``); ``method=""`` means the method
    of the weights, else baseline.

    Run-time changes of eta, phi, P and the sectors (``set_scenario`` with a scenario that differs
    only in those, ``set_eta``, ``set_phi``, ``set_power``, ``set_target_sector``,
    ``set_comm_sector``, or the message port ``config``: a PMT dict with any of eta, phi, power,
    target_sector_deg, comm_sector_deg) recompute f; the new f applies from the next work call
    and is announced by a ``precoder`` tag. Item 0 carries a ``frame_shape`` tag."""

    NAME = NAME

    def __init__(self, scenario=None, method: str = "", weights="", weights_other_array: bool = False):
        self.setup(scenario)
        self.method, self.weights = block_weights(NAME, self.scenario, method, weights, weights_other_array)
        self.transmitter = transceiver.transmitter(self.scenario, self.method, self.weights)
        self._lock = threading.Lock()
        self._f = self.transmitter.precoder(self.scenario)
        self._announce = True
        g = self.geometry
        gr.sync_block.__init__(
            self, name=NAME, in_sig=[(np.complex64, g.symbol_items)], out_sig=[(np.complex64, g.array_items)]
        )
        self.buffer_frames((0,))
        self._cpp = _cpp_array_frames()
        self.message_port_register_in(pmt.intern("config"))
        self.set_msg_handler(pmt.intern("config"), self.handle_config)

    # --- configuration ---------------------------------------------------------------
    def precoder(self) -> np.ndarray:
        """The current f (K,), complex64."""
        with self._lock:
            return self._f.copy()

    def reconfigure(self, **changes) -> None:
        """Apply changes of the run-time keys (names of RUNTIME) and recompute f; BlockParameterError
        (the old f kept) when a value is invalid."""
        unknown = sorted(set(changes) - set(RUNTIME))
        if unknown:
            raise base.error(NAME, unknown[0], f"cannot be changed at run time (only {', '.join(RUNTIME)})")
        try:
            scenario = self.scenario.with_overrides({RUNTIME[k]: _plain(v) for k, v in changes.items()})
        except ConfigError as exc:
            named = [k for k in changes if RUNTIME[k] in str(exc)] or list(changes)
            raise base.error(NAME, named[0], str(exc)) from None
        f = self.transmitter.precoder(scenario)
        with self._lock:
            self.scenario, self._f, self._announce = scenario, f, True

    def set_scenario(self, scenario) -> None:
        """A new scenario (GRC calls it when a field of its ISAC Scenario block changes): its
        run-time keys (RUNTIME) apply; a change of any other key is logged and waits for the
        flowgraph to be rebuilt (the array, the frame geometry and the weights are fixed)."""
        new, old = _flat(base.scenario_argument(NAME, scenario)), _flat(self.scenario)
        changed = {k for k, v in new.items() if old.get(k) != v}
        fixed = sorted(changed - set(RUNTIME.values()))
        if fixed:
            self.logger.warn(f"scenario keys {', '.join(fixed)} apply when the flowgraph is rebuilt, not at run time")
        runtime = {name: new[key] for name, key in RUNTIME.items() if key in changed}
        if runtime:
            self.reconfigure(**runtime)

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
        """``config`` port: PMT dict with any of the RUNTIME names. Invalid messages are logged
        and ignored."""
        try:
            self.reconfigure(**from_pmt(msg))
            self.logger.info(f"config applied: {from_pmt(msg)}")
        except (ValueError, TypeError, MessageError) as exc:
            self.logger.error(f"config message ignored: {exc}")

    # --- stream ---------------------------------------------------------------------
    def work_frames(self, input_items, output_items):
        x = input_items[0]
        n = len(x)
        with self._lock:
            f, announce, self._announce = self._f, self._announce, False
        # X = f x_m^T for each symbol m (model.channels_stream.array_frame, or its C++ twin: the same
        # bits), in place; a frame's M symbols are M rows of (symbols, K, S)
        g = self.geometry
        out = g.array_frames(output_items[0], n).reshape(-1, g.antennas, g.subcarriers)
        xs = g.symbol_frames(x, n).reshape(-1, g.subcarriers)
        if self._cpp is not None:
            self._cpp(f, xs, 1, out)
        else:
            np.multiply(f[None, :, None], xs[:, None, :], out=out)
        self.tag_geometry(0)
        if announce:
            f32 = np.asarray(f, np.complex64)
            self.add_item_tag(0, self.nitems_written(0), pmt.intern(PRECODER_TAG), pmt.init_c32vector(len(f32), f32))
        return n


def _plain(value):
    """A run-time value as the scenario takes it (vectors as lists of floats)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [float(v) for v in np.asarray(value, dtype=float).reshape(-1)]
    return float(value) if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) else value


def _flat(scenario) -> dict:
    return {f"{s}.{k}": v for s, sec in scenario.to_dict().items() for k, v in sec.items()}


def _cpp_array_frames():
    """``gnuradio.isac.array_frames`` (bit-equal to model.channels_stream.array_frame), None when not built."""
    try:
        from .. import array_frames
    except ImportError:
        return None
    return array_frames
