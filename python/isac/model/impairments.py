"""Element impairments of the array beyond the spacing errors of Example 1 (Sec. II-D: "mutual
coupling, array gain errors, or antenna displacement errors"), composable with the spacing model.

The true steering vector of an impaired array is

    a(theta) = C diag(g) a_pos(theta),        [a_pos(theta)]_k = exp(-j 2 pi p_k sin(theta) / lambda),

with the element positions p of the spacing model (model.array: Example 1 "spacing" or
"cumulative", the nominal lambda/2 ULA when array.spacing_std_m = 0) and

* per-element complex gains (gain errors, dead or weak elements)

      g_k = m_k 10^(A_k / 20) exp(j phi_k),   A_k ~ N(0, sigma_A^2) dB (array.gain_std_db),
                                              phi_k ~ N(0, sigma_phi^2) (array.phase_std_deg),
      m_k = array.weak_gain for the dead or weak elements (array.dead_elements drawn at random,
            or array.dead_list), 1 for the others;

* mutual coupling: C (K x K) banded symmetric Toeplitz, C_ij = c_|i-j| for |i - j| <= L
  (array.coupling_taps), c_0 = 1, c_l = beta^l exp(j psi_l), beta = 10^(array.coupling_db / 20),
  psi_l ~ U[0, 2 pi), zero beyond the band.

Every model is off by default (then C = I, g = 1 and the array is model.array.PositionArray,
bit for bit as before). Each model draws from its own stream of array.impairment_seed, so
turning one model on does not change the draw of another, and one scenario has one array.

Impairment learning learns the parameters of the active models (:func:`learned_models`); the
same composition with learned parameters is :class:`ImpairedArray` (weights.Weights.array).
Units: gains dimensionless (amplitudes in dB where named), phases in rad, positions in m.
"""

from __future__ import annotations

import numpy as np

from .array import ArrayModel, PositionArray

#: the impairment models of an array, in the order of the composition a = C diag(g) a_pos
MODELS = ("spacing", "gain", "coupling", "dead")
#: the models acting on the element responses (beyond the positions)
ELEMENT_MODELS = ("gain", "coupling", "dead")

#: SeedSequence tags of the draws (the spacings use 0x5A11 in model.array.draw_spacings)
_TAG_GAIN, _TAG_COUPLING, _TAG_DEAD = 0x6A1, 0xC0C, 0xDEAD


# --- which models a scenario uses ---------------------------------------------------------------
def active_models(scenario) -> tuple[str, ...]:
    """The impairment models of the scenario's true array: "spacing" (array.spacing_std_m > 0),
    "gain" (gain_std_db or phase_std_deg > 0), "coupling" (coupling_taps > 0), "dead"
    (dead_elements > 0 or a dead_list)."""
    a = scenario.array
    on = {
        "spacing": a["spacing_std_m"] > 0,
        "gain": a["gain_std_db"] > 0 or a["phase_std_deg"] > 0,
        "coupling": a["coupling_taps"] > 0,
        "dead": a["dead_elements"] > 0 or bool(a["dead_list"]),
    }
    return tuple(m for m in MODELS if on[m])


def element_models(scenario) -> tuple[str, ...]:
    """The active models beyond the positions (ELEMENT_MODELS)."""
    return tuple(m for m in active_models(scenario) if m in ELEMENT_MODELS)


def learned_models(scenario) -> tuple[str, ...]:
    """The models whose parameters impairment learning learns on ``scenario`` (and that its
    weights hold): the active element models, plus the spacings when the spacing model is on
    or when no element model is (the paper's impairment learning of Sec. IV-A, as before
    these models existed)."""
    elements = element_models(scenario)
    spacing = scenario.array["spacing_std_m"] > 0 or not elements
    return (("spacing",) if spacing else ()) + elements


# --- the draws (one per model, each from its own stream of the impairment seed) ------------------
def _rng(seed: int, tag: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), tag]))


def draw_gain_errors(
    antennas: int, gain_std_db: float, phase_std_deg: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(A (K,) dB, phi (K,) rad): A_k ~ N(0, gain_std_db^2), phi_k ~ N(0, phase_std_deg^2)
    converted to rad; reproducible from ``seed``. Zero stds give zeros."""
    if not (gain_std_db >= 0 and phase_std_deg >= 0):
        raise ValueError(f"gain and phase stds must be >= 0, got {gain_std_db} dB, {phase_std_deg} deg")
    rng = _rng(seed, _TAG_GAIN)
    z = rng.standard_normal((2, antennas))
    return gain_std_db * z[0], np.deg2rad(phase_std_deg) * z[1]


def draw_dead_elements(antennas: int, count: int, seed: int) -> np.ndarray:
    """Sorted indices of ``count`` distinct dead elements among ``antennas``, drawn uniformly."""
    if not 0 <= count <= antennas - 1:
        raise ValueError(f"dead element count must be in [0, {antennas - 1}], got {count}")
    return np.sort(_rng(seed, _TAG_DEAD).choice(antennas, size=count, replace=False)).astype(np.int64)


def draw_coupling(taps: int, coupling_db: float, seed: int) -> np.ndarray:
    """Coupling coefficients c_1 .. c_L (L,) complex128: |c_l| = 10^(l coupling_db / 20),
    phases U[0, 2 pi), reproducible from ``seed``."""
    if taps < 0 or not coupling_db < 0:
        raise ValueError(f"coupling needs taps >= 0 and coupling_db < 0, got {taps}, {coupling_db}")
    psi = _rng(seed, _TAG_COUPLING).uniform(0.0, 2 * np.pi, taps)
    lag = np.arange(1, taps + 1, dtype=np.float64)
    return 10.0 ** (lag * coupling_db / 20.0) * np.exp(1j * psi)


# --- the composition ---------------------------------------------------------------------------
def element_amplitudes(antennas: int, dead: np.ndarray, weak_gain: float) -> np.ndarray:
    """m (K,): ``weak_gain`` at the indices ``dead``, 1 elsewhere."""
    m = np.ones(antennas)
    m[np.asarray(dead, dtype=np.int64)] = weak_gain
    return m


def element_gains(gain_db: np.ndarray, phase_rad: np.ndarray, amplitude: np.ndarray | None = None) -> np.ndarray:
    """g_k = m_k 10^(A_k/20) exp(j phi_k) (K,) complex128 (m = 1 when ``amplitude`` is None)."""
    g = 10.0 ** (np.asarray(gain_db, np.float64) / 20.0) * np.exp(1j * np.asarray(phase_rad, np.float64))
    return g if amplitude is None else np.asarray(amplitude, np.float64) * g


def coupling_matrix(coefficients: np.ndarray, antennas: int) -> np.ndarray:
    """The banded symmetric Toeplitz C (K x K complex128): C_ij = c_|i-j| for 1 <= |i-j| <= L
    (``coefficients`` = c_1 .. c_L), 1 on the diagonal, 0 beyond the band."""
    c = np.asarray(coefficients, dtype=np.complex128).reshape(-1)
    if c.size > max(antennas - 1, 0):
        raise ValueError(f"coupling: {c.size} taps for {antennas} elements (at most K - 1)")
    full = np.zeros(antennas, dtype=np.complex128)
    full[0] = 1.0
    full[1 : 1 + c.size] = c
    lag = np.abs(np.arange(antennas)[:, None] - np.arange(antennas)[None, :])
    return full[lag]


class ImpairedArray(ArrayModel):
    """a(theta) = C diag(g) a_pos(theta): a position array (``base``) with per-element complex
    gains ``gains`` (K,) and mutual coupling coefficients ``coupling`` (c_1 .. c_L).

    Exposes the base's ``positions_m``, ``spacings_m`` and ``wavelength_m``, and
    ``element_matrix`` M = C diag(g), so an off-grid atom is M a_pos(theta) (what a dOMP
    receiver must recompute). ``models`` lists the active models (for messages)."""

    def __init__(
        self,
        base: PositionArray,
        gains: np.ndarray | None = None,
        coupling: np.ndarray | None = None,
        models: tuple[str, ...] = (),
    ):
        K = base.antennas
        g = np.ones(K, np.complex128) if gains is None else np.asarray(gains, np.complex128).reshape(-1)
        c = np.zeros(0, np.complex128) if coupling is None else np.asarray(coupling, np.complex128).reshape(-1)
        if g.shape != (K,) or not np.all(np.isfinite(g)):
            raise ValueError(f"gains must be {K} finite complex values, got shape {g.shape}")
        if not np.all(np.isfinite(c)):
            raise ValueError("coupling coefficients must be finite")
        self.base = base
        self.gains = g
        self.coupling = c
        self.models = tuple(models)
        self.antennas = K
        self.positions_m = base.positions_m
        self.spacings_m = base.spacings_m
        self.wavelength_m = base.wavelength_m
        self.kind = f"{base.kind}+{'+'.join(self.models)}" if self.models else base.kind
        self.element_matrix = coupling_matrix(c, K) * g[None, :]  # C diag(g)

    def steering(self, angles_rad: np.ndarray) -> np.ndarray:
        """K x N steering matrix C diag(g) a_pos(theta) (complex64)."""
        a = self.base.steering(angles_rad).astype(np.complex128)
        return (self.element_matrix @ a).astype(np.complex64)


class ReceiverArray(ArrayModel):
    """What a sensing receiver matches against when it knows an impaired array: the steering
    vectors scaled to the norm sqrt(K) of a unit-modulus array, a(theta) sqrt(K) / ||a(theta)||.

    The map |Phi_a^H Y~ Phi_d^*|^2 of Algorithm 1 is the generalised likelihood ratio statistic
    for a target of unknown complex gain only when every atom has the same norm, as the unit-
    modulus steering vectors of (1) do. Gain errors keep ||a(theta)|| = ||g|| the same for
    every angle, but mutual coupling does not (interior elements see a(theta) scaled by
    1 + 2 sum_l c_l cos(l pi sin theta) for a lambda/2 array): unnormalised atoms then favour
    the angles of large norm, where the noise of the map is larger too, and a receiver that
    knows C does worse than one that ignores it. Scaling every atom to sqrt(K) restores the
    statistic; the joint LS gains (13) absorb the scale, so the estimates' gains and residuals
    are those of the physical atoms. The transmitter and the channel use the physical array."""

    def __init__(self, array: ImpairedArray):
        self.array = array
        self.antennas = array.antennas
        self.models = array.models

    def steering(self, angles_rad: np.ndarray) -> np.ndarray:
        a = self.array.steering(angles_rad).astype(np.complex128)
        norm = np.linalg.norm(a, axis=0, keepdims=True)
        return (a * (np.sqrt(self.antennas) / np.maximum(norm, 1e-300))).astype(np.complex64)


def receiver_array(array: ArrayModel) -> ArrayModel:
    """The array a sensing receiver's dictionaries are built from: ``array`` itself for a
    position array (unit-modulus atoms, the paper's receiver bit for bit), its
    :class:`ReceiverArray` for an impaired one."""
    return ReceiverArray(array) if isinstance(array, ImpairedArray) else array


def element_response(scenario) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(gains g (K,) complex128 or None, coupling c_1..c_L complex128 or None) of the scenario's
    true array; None for a model that is off."""
    a = scenario.array
    K, seed = a["antennas"], a["impairment_seed"]
    models = element_models(scenario)
    gains = None
    if "gain" in models or "dead" in models:
        gain_db, phase = draw_gain_errors(K, a["gain_std_db"], a["phase_std_deg"], seed)
        gains = element_gains(gain_db, phase, element_amplitudes(K, dead_indices(scenario), a["weak_gain"]))
    coupling = draw_coupling(a["coupling_taps"], a["coupling_db"], seed) if "coupling" in models else None
    return gains, coupling


def dead_indices(scenario) -> np.ndarray:
    """Indices of the dead or weak elements of the scenario's true array (empty when none)."""
    a = scenario.array
    if a["dead_list"]:
        return np.sort(np.asarray(a["dead_list"], np.int64))
    return draw_dead_elements(a["antennas"], a["dead_elements"], a["impairment_seed"])


def impaired_array(base: PositionArray, scenario) -> ArrayModel:
    """The scenario's true array on the position array ``base``: ``base`` itself when no
    element model is on, else an :class:`ImpairedArray`."""
    models = element_models(scenario)
    if not models:
        return base
    gains, coupling = element_response(scenario)
    return ImpairedArray(base, gains, coupling, models)


def check_domp(array: ArrayModel) -> None:
    """The dOMP receivers recompute off-grid atoms from element positions only: refuse an
    array with element gains or coupling (they would silently be ignored)."""
    if isinstance(array, (ImpairedArray, ReceiverArray)):
        raise ValueError(
            f"receiver 'domp' recomputes its atoms from the element positions only and cannot apply "
            f"the element impairments ({', '.join(array.models) or 'element response'}) of this array; "
            f"use receiver 'omp'"
        )


__all__ = [
    "ELEMENT_MODELS",
    "ImpairedArray",
    "MODELS",
    "ReceiverArray",
    "active_models",
    "check_domp",
    "coupling_matrix",
    "dead_indices",
    "draw_coupling",
    "draw_dead_elements",
    "draw_gain_errors",
    "element_amplitudes",
    "element_gains",
    "element_models",
    "element_response",
    "impaired_array",
    "learned_models",
    "receiver_array",
]
