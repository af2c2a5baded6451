"""isac_precoder: the baseline ISAC transmitter of Sec. III-A, X = f x^T with f of eq. (5)
from LS beams (6)-(7) on the nominal array."""
from __future__ import annotations

import threading

import numpy as np
import pmt
from gnuradio import gr

from ..model.channels_stream import array_frame
from ..simulation import baseline_precoder
from . import _common as c

NAME = "isac_precoder"
#: stream tag carrying f (c32vector, K) on the first frame and on every frame where f changed
PRECODER_TAG = "precoder"


class isac_precoder(gr.sync_block):
    """QPSK symbols x (vlen S) in, transmitted array frames X = f x^T out (vlen K*S,
    antenna-major: item[k*S + s] = f_k x_s).

    f = ``model.beamforming.transmit_beam`` on the nominal lambda/2 array (the baseline
    transmitter, ``simulation.baseline_precoder``), or on the array learned by isac-train when
    ``weights`` names its file (impairment or dictionary learning, Sec. IV-A). Run-time changes: ``set_eta``,
    ``set_phi``, ``set_sensing_sector``, ``set_comm_sector``, ``set_power`` and the message
    port ``config`` (PMT dict with any of eta, phi, power, sector_deg (sensing sector),
    comm_sector_deg) recompute f; the new f applies from the next work call and is announced
    by a ``precoder`` tag."""

    def __init__(self, K: int = 64, S: int = 256, fc: float = 60e9, eta: float = 0.5, phi: float = 0.0,
                 power: float = 1.0, sensing_sector_deg=(-40.0, -20.0), comm_sector_deg=(30.0, 50.0),
                 beam_grid: int = 720, beam_rcond: float = 0.1, weights: str = ""):
        self.K = c.positive_int(NAME, "K", K)
        self.S = c.positive_int(NAME, "S", S)
        c.interval(NAME, "sensing_sector_deg", sensing_sector_deg, " (degrees)")
        c.interval(NAME, "comm_sector_deg", comm_sector_deg, " (degrees)")
        self._params = {
            "K": ("array.antennas", self.K), "S": ("ofdm.subcarriers", self.S), "fc": ("array.carrier_hz", fc),
            "eta": ("transmitter.eta", eta), "phi": ("transmitter.phi_rad", phi),
            "power": ("transmitter.power", power),
            "sensing_sector_deg": ("scene.target_sector_deg", list(sensing_sector_deg)),
            "comm_sector_deg": ("scene.comm_sector_deg", list(comm_sector_deg)),
            "beam_grid": ("transmitter.beam_grid", beam_grid), "beam_rcond": ("transmitter.beam_rcond", beam_rcond),
        }
        self.scenario = c.scenario(NAME, self._params)
        #: the transmitter's array: None = nominal (baseline), else the learned one
        self.array = c.learned_array(NAME, weights, self.scenario) if weights else None
        self._lock = threading.Lock()
        self._f = baseline_precoder(self.scenario, self.array)
        self._announce = True
        gr.sync_block.__init__(self, name=NAME, in_sig=[(np.complex64, self.S)],
                               out_sig=[(np.complex64, self.K * self.S)])
        self.message_port_register_in(pmt.intern("config"))
        self.set_msg_handler(pmt.intern("config"), self.handle_config)

    # --- configuration ---------------------------------------------------------------
    def precoder(self) -> np.ndarray:
        """The current f (K,), complex64."""
        with self._lock:
            return self._f.copy()

    def reconfigure(self, **changes) -> None:
        """Apply parameter changes (names of the constructor) and recompute f. Raises
        BlockParameterError (and keeps the old f) when a value is invalid."""
        params = dict(self._params)
        for name, value in changes.items():
            if name not in ("eta", "phi", "power", "sensing_sector_deg", "comm_sector_deg"):
                raise c.error(NAME, name, "cannot be changed at run time")
            if name.endswith("sector_deg"):
                value = c.interval(NAME, name, value, " (degrees)")
            params[name] = (params[name][0], value)
        scenario = c.scenario(NAME, params)
        f = baseline_precoder(scenario, self.array)
        with self._lock:
            self._params, self.scenario, self._f, self._announce = params, scenario, f, True

    def set_eta(self, eta: float) -> None:
        self.reconfigure(eta=eta)

    def set_phi(self, phi: float) -> None:
        self.reconfigure(phi=phi)

    def set_power(self, power: float) -> None:
        self.reconfigure(power=power)

    def set_sensing_sector(self, sector_deg) -> None:
        self.reconfigure(sensing_sector_deg=sector_deg)

    def set_comm_sector(self, sector_deg) -> None:
        self.reconfigure(comm_sector_deg=sector_deg)

    def handle_config(self, msg) -> None:
        """``config`` port: PMT dict with eta, phi, power, sector_deg, comm_sector_deg.
        Invalid messages are logged and ignored."""
        keys = {"eta": "eta", "phi": "phi", "power": "power", "sector_deg": "sensing_sector_deg",
                "sensing_sector_deg": "sensing_sector_deg", "comm_sector_deg": "comm_sector_deg"}
        try:
            items = c.to_python(msg)
            unknown = sorted(set(items) - set(keys))
            if unknown:
                raise ValueError(f"unknown keys {unknown}; known: {', '.join(sorted(keys))}")
            changes = {keys[k]: (list(np.asarray(v, dtype=float)) if k.endswith("sector_deg") else float(v))
                       for k, v in items.items()}
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
        output_items[0][:n] = array_frame(f, x[:n]).reshape(n, self.K * self.S)
        if announce:
            self.add_item_tag(0, self.nitems_written(0), pmt.intern(PRECODER_TAG), c.c32(f))
        return n
