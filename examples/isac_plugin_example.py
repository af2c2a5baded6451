"""An example gr-isac plug-in: one module, outside the package, that adds one of each kind of
plug-in by registering one class.

  cable        an array impairment model: each receive chain's cable delays the signal by
               delta_k ~ N(0, sigma^2) (key array.cable_delay_std_ps, sigma in ps), a phase
               g_k = exp(-j 2 pi f_c delta_k) behind the antennas. The true array, "perfect"
               knowledge, impairment learning, weights and recordings take it up.
  peaks        a sensing receiver: the T_max largest cells of the angle-delay map (10) of Y~ on
               the OMP dictionaries (8), without the successive cancellation (14) of OMP. Its
               first detection is OMP's; later ones may be side lobes of a strong target.
  calibration  a learned method: K complex chain gains c on the nominal lambda/2 array,
               a(theta) = diag(c) a_nom(theta), learned end to end with differentiable OMP at
               the transmitter and the receiver (parameter sharing, Sec. IV-A).

Use it with ``--plugin examples/isac_plugin_example.py`` in isac-eval, isac-sim and isac-train,
with ``import`` in Python, or with an Import block in GNU Radio Companion. The tests in
tests/test_plugins.py run every path.
"""

from __future__ import annotations

import math

import numpy as np

from gnuradio.isac import transceiver
from gnuradio.isac.config_schema import Key
from gnuradio.isac.model import impairments
from gnuradio.isac.model.angle_delay import angle_delay_map_complex
from gnuradio.isac.model.array import ArrayModel, scenario_nominal_array
from gnuradio.isac.model.dictionaries import omp_dictionaries
from gnuradio.isac.model.grids import full_angle_grid
from gnuradio.isac.model.omp import OmpResult
from gnuradio.isac.transceiver import LearnedArrayMethod, Receiver
from gnuradio.isac.weights import expect, expect_only


# --- an array impairment model ------------------------------------------------------------------
class CableDelays(impairments.ElementModel):
    """Cable delay errors of the receive chains: g_k = exp(j phi_k), phi_k = -2 pi f_c delta_k."""

    name, stage, tag = "cable", "chain", 0xCAB1E
    keys = (
        Key(
            "array",
            "cable_delay_std_ps",
            0.0,
            "ps",
            "standard deviation of the receive chains' cable delay errors (0 = off)",
            "(plug-in example)",
            minimum=0.0,
            maximum=1000.0,
            hash_default=False,
        ),
    )
    uses = ("array.cable_delay_std_ps", "array.carrier_hz")
    lr_scale = {"phase": 10.0}
    units = {"cable_phase_rad": "rad"}

    def active(self, scenario) -> bool:
        return scenario.get("array.cable_delay_std_ps") > 0

    def draw(self, scenario, rng):
        K = scenario.get("array.antennas")
        delays_s = rng.normal(0.0, scenario.get("array.cable_delay_std_ps") * 1e-12, K)
        return {"cable_phase_rad": -2.0 * math.pi * scenario.get("array.carrier_hz") * delays_s}

    def factor(self, params, antennas):
        return np.exp(1j * np.asarray(params["cable_phase_rad"], np.float64))

    def weight_shapes(self, antennas, scenario=None, tensors=None):
        return {"cable_phase_rad": (antennas,)}

    def initial(self, scenario):
        return {"phase": np.zeros(scenario.get("array.antennas"))}

    def torch_factor(self, learned, antennas):
        import torch

        return torch.polar(torch.ones_like(learned["phase"]), learned["phase"])

    def to_weights(self, learned):
        return {"cable_phase_rad": np.asarray(learned["phase"], np.float64)}


impairments.register(CableDelays())


# --- a sensing receiver -------------------------------------------------------------------------
class PeakPickingReceiver(Receiver):
    """The T_max largest cells of the map L = |Phi_a^H Y~ Phi_d^*|^2 (10), in decreasing order;
    gains: each cell's single-atom LS gain M / (||a||^2 ||rho||^2)."""

    name = "peaks"
    summary = "the T_max largest angle-delay map cells (10), no successive cancellation"
    kernels = ("numpy",)

    def __init__(self, scenario, array, kernel=None, temperature=0.1):
        super().__init__(scenario, array, kernel, temperature)
        self.dictionaries = omp_dictionaries(scenario, array)

    def estimate(self, y):
        D, T = self.dictionaries, self.max_targets
        m = angle_delay_map_complex(y, D.phi_a, D.phi_d)  # (B, Na, Nd)
        B, Nd = m.shape[0], m.shape[2]
        power = (m.real.astype(np.float64) ** 2 + m.imag.astype(np.float64) ** 2).reshape(B, -1)
        cells = np.argsort(-power, axis=1, kind="stable")[:, :T]
        ai, di = np.divmod(cells, Nd)
        norms = (np.abs(D.phi_a) ** 2).sum(0)[ai] * (np.abs(D.phi_d) ** 2).sum(0)[di]
        single = m.reshape(B, -1)[np.arange(B)[:, None], cells] / norms
        gains = np.zeros((B, T, T), np.complex128)
        for i in range(T):
            gains[:, i, : i + 1] = single[:, : i + 1]
        return OmpResult(ai, di, D.angles_rad[ai], D.delays_s[di], np.take_along_axis(power, cells, 1), gains)


transceiver.register_receiver(PeakPickingReceiver)


# --- a learned method ---------------------------------------------------------------------------
class CalibratedArray(ArrayModel):
    """The nominal array with complex chain gains c: a(theta) = diag(c) a_nom(theta)."""

    def __init__(self, nominal: ArrayModel, gains: np.ndarray):
        self.nominal, self.gains = nominal, np.asarray(gains, np.complex128)
        self.antennas = nominal.antennas

    def steering(self, angles_rad):
        return (self.gains[:, None] * self.nominal.steering(angles_rad)).astype(np.complex64)


def learnable_calibration(scenario, grid_points: int):
    """The trainer's learnable array of the method (torch): log-amplitudes and phases of c."""
    import torch

    from gnuradio.isac.nn import arrays as tm

    class LearnableCalibration(tm.LearnableArray):
        def __init__(self):
            super().__init__()
            nominal = scenario_nominal_array(scenario)
            self.antennas, self.wavelength_m = nominal.antennas, nominal.wavelength_m
            self.register_buffer("grid_rad", torch.as_tensor(full_angle_grid(grid_points), dtype=tm.RDTYPE))
            self.register_buffer("nominal_positions", torch.as_tensor(nominal.positions_m, dtype=tm.RDTYPE))
            self.log_amplitude = torch.nn.Parameter(torch.zeros(self.antennas, dtype=tm.RDTYPE))
            self.phase = torch.nn.Parameter(torch.zeros(self.antennas, dtype=tm.RDTYPE))

        def gains(self):
            return torch.polar(torch.exp(self.log_amplitude), self.phase)

        def atoms(self, angles_rad):
            a = tm.steering_matrix(self.nominal_positions, angles_rad, self.wavelength_m)
            return (a * self.gains()).to(tm.CDTYPE)

        def dictionary(self):
            return self.atoms(self.grid_rad).T

        def weight_tensors(self):
            with torch.no_grad():
                c = self.gains().cpu().numpy()
                return {"gains": np.stack([c.real, c.imag], -1), "angle_grid_rad": self.grid_rad.cpu().numpy()}

    return LearnableCalibration()


class Calibration(LearnedArrayMethod):
    name = "calibration"
    summary = "learned complex chain gains on the nominal array at both ends (plug-in example)"
    receivers = ("omp", "peaks")  # dOMP recomputes atoms from element positions only
    learning_rate = {"paper": 1e-2, "quick": 1e-2}

    def array(self, weights, scenario):
        pairs = weights.tensors["gains"]
        return CalibratedArray(scenario_nominal_array(scenario), pairs[:, 0] + 1j * pairs[:, 1])

    def validate_tensors(self, weights, scenario):
        expect(weights, "gains", (weights.antennas, 2))
        expect_only(weights, ("angle_grid_rad", "gains"))

    def learnable_array(self, scenario, options):
        return learnable_calibration(scenario, scenario.transmitter["beam_grid"])


transceiver.register(Calibration())
