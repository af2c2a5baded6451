"""Array impairment models beyond the spacing errors of Example 1 (Sec. II-D: "mutual coupling,
array gain errors, or antenna displacement errors"), one class each, in a registry that a new
model joins by :func:`register` alone.

The true steering vector of an impaired array is

    a(theta) = diag(g) C a_pos(theta),        [a_pos(theta)]_k = exp(-j 2 pi p_k sin(theta) / lambda),

with the element positions p of the spacing model (model.array: Example 1 "spacing" or
"cumulative", the nominal lambda/2 ULA when array.spacing_std_m = 0), the mutual coupling C
(K x K) between the antennas, and the complex gains g of the chains behind them (gain and
phase errors, dead or weak front ends). The order is the one of the array-calibration
literature, which models the receive chain's gain and phase behind the antennas' coupling
(C. M. S. See, "Sensor array calibration in the presence of mutual coupling and unknown sensor
gains and phases", Electronics Letters 30(5), 1994; B. Friedlander and A. J. Weiss, "Direction
finding in the presence of mutual coupling", IEEE Trans. Antennas Propag. 39(3), 1991): a
front end that fails (g_k = 0) then outputs nothing, whatever its neighbours couple into its
antenna.

Each model is an :class:`ElementModel` at one ``stage``: "chain" models give a diagonal factor
(a (K,) vector; their product, in registration order, is g), "antenna" models a K x K factor
(their product is C). Built in, in this order:

  gain      g_k = 10^(A_k / 20) exp(j phi_k), A_k ~ N(0, sigma_A^2) dB (array.gain_std_db),
            phi_k ~ N(0, sigma_phi^2) (array.phase_std_deg)
  coupling  C banded symmetric Toeplitz, C_ij = c_|i-j| for |i - j| <= L (array.coupling_taps),
            c_0 = 1, c_l = beta^l exp(j psi_l), beta = 10^(array.coupling_db / 20), psi_l ~ U[0, 2 pi)
  dead      m_k = array.weak_gain for the dead or weak front ends (array.dead_elements drawn at
            random, or array.dead_list), 1 for the others

Every model is off by default (then C = I, g = 1 and the array is model.array.PositionArray,
bit for bit). Each draws from its own stream of array.impairment_seed (its ``tag``), so turning
one on does not change another's draw, and one scenario has one array. A model's parameters
travel as real float64 arrays (complex values as [..., 2] = [Re, Im]), the same in its draw,
in a learned weights file and in a recording.

Impairment learning (Sec. IV-A) learns the parameters of the active models
(:func:`learned_models`): each model says what it learns (``initial``: the learnable parameters
at "no impairment", ``torch_factor``: the differentiable twin of ``factor``, ``to_weights``:
the learned parameters as its weights tensors, ``lr_scale``: their learning rates). Units:
gains dimensionless (amplitudes in dB where named), phases in rad, positions in m.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..config_schema import Key, register_keys
from .array import ArrayModel, PositionArray, draw_spacings, spacing_array

#: the position model of every array (model.array), first in every list of models
POSITION_MODEL = "spacing"
STAGES = ("chain", "antenna")


def _rng(seed: int, tag: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), tag]))


def _complex(pairs: np.ndarray) -> np.ndarray:
    """[..., 2] = [Re, Im] -> complex128."""
    p = np.asarray(pairs, dtype=np.float64)
    return p[..., 0] + 1j * p[..., 1]


def _pairs(values: np.ndarray) -> np.ndarray:
    """complex -> [..., 2] = [Re, Im] float64."""
    v = np.asarray(values, dtype=np.complex128)
    return np.stack([v.real, v.imag], axis=-1)


class ElementModel:
    """One impairment model of the element responses (subclass it and :func:`register` it).

    Class attributes: ``name``; ``stage`` ("chain": a diagonal factor of g, "antenna": a K x K
    factor of C); ``tag`` (its SeedSequence tag, distinct from every other model's); ``keys``
    (Key objects of the configuration keys it adds, section "array", "off" at their defaults;
    registered with it); ``uses`` (every "array.<key>" it reads, for recordings and docs);
    ``lr_scale`` (learnable parameter -> its learning rate in units of the run's lr); ``units``
    (weights tensor -> its unit)."""

    name: str = ""
    stage: str = "chain"
    tag: int = 0
    keys: tuple[Key, ...] = ()
    uses: tuple[str, ...] = ()
    lr_scale: dict[str, float] = {}
    #: weights tensor -> its unit (recorded in a weights file's metadata)
    units: dict[str, str] = {}

    # --- the true array ----------------------------------------------------------------------
    def active(self, scenario) -> bool:  # pragma: no cover - interface
        """Whether the scenario turns the model on."""
        raise NotImplementedError

    def draw(self, scenario, rng: np.random.Generator) -> dict[str, np.ndarray]:  # pragma: no cover
        """The true parameters of the scenario's array, from ``rng`` (the model's own stream)."""
        raise NotImplementedError

    def factor(self, params: dict[str, np.ndarray], antennas: int) -> np.ndarray:  # pragma: no cover
        """The model's factor of the element matrix: (K,) complex for a chain model (a diagonal),
        (K, K) complex for an antenna model."""
        raise NotImplementedError

    # --- impairment learning -----------------------------------------------------------------
    def weight_shapes(self, antennas: int, scenario=None, tensors=None) -> dict[str, tuple[int, ...]]:
        """The weights tensors of the model (name -> shape), for a scenario (or, without one, the
        file's own ``tensors``)."""
        raise NotImplementedError  # pragma: no cover

    def initial(self, scenario) -> dict[str, np.ndarray]:  # pragma: no cover - interface
        """The learnable parameters (name -> float64 array) at "no impairment"."""
        raise NotImplementedError

    def torch_factor(self, learned: dict, antennas: int):  # pragma: no cover - interface
        """The factor (torch, complex128) of the learnable parameters, differentiable: the twin of
        ``factor(to_weights(learned), antennas)``."""
        raise NotImplementedError

    def to_weights(self, learned: dict[str, np.ndarray]) -> dict[str, np.ndarray]:  # pragma: no cover
        """The learned parameters (numpy) as the model's weights tensors (float64)."""
        raise NotImplementedError

    def check_tensors(self, tensors: dict[str, np.ndarray], antennas: int) -> str | None:
        """Further rules on the model's weights tensors (their shapes are checked already): None
        when they hold, else what is wrong."""
        return None


_MODELS: dict[str, ElementModel] = {}


def register(model: ElementModel) -> ElementModel:
    """Add an element model (its ``keys`` become configuration keys, its name a valid model
    everywhere: the true array, perfect knowledge, impairment learning, weights, recordings)."""
    if not model.name or model.name == POSITION_MODEL:
        raise ValueError(f"an element model needs a name other than {POSITION_MODEL!r}, got {model.name!r}")
    if model.stage not in STAGES:
        raise ValueError(f"model {model.name!r}: stage must be one of {STAGES}, got {model.stage!r}")
    for other in _MODELS.values():
        if other.name != model.name and other.tag == model.tag:
            raise ValueError(f"model {model.name!r}: seed tag {model.tag:#x} is model {other.name!r}'s")
    register_keys(*model.keys)
    _MODELS[model.name] = model
    return model


def element_model(name: str) -> ElementModel:
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown array model {name!r}; known: {', '.join(models())}") from None


def element_models_registered() -> tuple[str, ...]:
    """The registered element models, in composition order."""
    return tuple(_MODELS)


def models() -> tuple[str, ...]:
    """Every array model: the position model "spacing", then the element models."""
    return (POSITION_MODEL,) + tuple(_MODELS)


# --- the built-in models ------------------------------------------------------------------------
class GainErrors(ElementModel):
    """Per-element gain and phase errors of the chains: g_k = 10^(A_k/20) exp(j phi_k)."""

    name, stage, tag = "gain", "chain", 0x6A1
    uses = ("array.gain_std_db", "array.phase_std_deg")
    lr_scale = {"log_gain": 1.0, "phase": 10.0}
    units = {"gain_db": "dB", "phase_rad": "rad"}

    def active(self, scenario) -> bool:
        return scenario.get("array.gain_std_db") > 0 or scenario.get("array.phase_std_deg") > 0

    def draw(self, scenario, rng):
        gain_db, phase = draw_gain_errors(
            scenario.get("array.antennas"), scenario.get("array.gain_std_db"), scenario.get("array.phase_std_deg"), rng
        )
        return {"gain_db": gain_db, "phase_rad": phase}

    def factor(self, params, antennas):
        return 10.0 ** (np.asarray(params["gain_db"], np.float64) / 20.0) * np.exp(
            1j * np.asarray(params["phase_rad"], np.float64)
        )

    def weight_shapes(self, antennas, scenario=None, tensors=None):
        return {"gain_db": (antennas,), "phase_rad": (antennas,)}

    def initial(self, scenario):
        K = scenario.get("array.antennas")
        return {"log_gain": np.zeros(K), "phase": np.zeros(K)}  # log-amplitude in nepers, phase in rad

    def torch_factor(self, learned, antennas):
        import torch

        return torch.polar(torch.exp(learned["log_gain"]), learned["phase"])

    def to_weights(self, learned):
        return {"gain_db": learned["log_gain"] * (20.0 / math.log(10.0)), "phase_rad": np.asarray(learned["phase"])}


class MutualCoupling(ElementModel):
    """Mutual coupling between the antennas: C banded symmetric Toeplitz (c_0 = 1, c_1..c_L)."""

    name, stage, tag = "coupling", "antenna", 0xC0C
    uses = ("array.coupling_taps", "array.coupling_db")
    lr_scale = {"coupling": 1.0}
    units = {"coupling": "[Re, Im] of c_1..c_L"}

    def active(self, scenario) -> bool:
        return scenario.get("array.coupling_taps") > 0

    def draw(self, scenario, rng):
        c = draw_coupling(scenario.get("array.coupling_taps"), scenario.get("array.coupling_db"), rng)
        return {"coupling": _pairs(c)}

    def factor(self, params, antennas):
        return coupling_matrix(_complex(params["coupling"]), antennas)

    def weight_shapes(self, antennas, scenario=None, tensors=None):
        if scenario is not None:
            taps = scenario.get("array.coupling_taps")
        else:
            t = (tensors or {}).get("coupling")
            taps = t.shape[0] if t is not None and t.ndim == 2 and t.shape[0] >= 1 else 1
        return {"coupling": (int(taps), 2)}

    def check_tensors(self, tensors, antennas):
        taps = tensors["coupling"].shape[0]
        return None if taps <= antennas - 1 else f"tensor 'coupling' has {taps} taps, at most K - 1 = {antennas - 1}"

    def initial(self, scenario):
        return {"coupling": np.zeros((scenario.get("array.coupling_taps"), 2))}  # C = I

    def torch_factor(self, learned, antennas):
        import torch

        c = torch.complex(learned["coupling"][:, 0], learned["coupling"][:, 1]).to(torch.complex128)
        one = torch.ones(1, dtype=torch.complex128, device=c.device)
        full = torch.cat([one, c, torch.zeros(1, dtype=torch.complex128, device=c.device)])
        k = torch.arange(antennas, device=c.device)
        return full[(k[:, None] - k[None, :]).abs().clamp(max=c.shape[0] + 1)]

    def to_weights(self, learned):
        return {"coupling": np.asarray(learned["coupling"], np.float64)}


class DeadElements(ElementModel):
    """Dead or weak front ends: amplitude m_k = array.weak_gain for them, 1 for the others."""

    name, stage, tag = "dead", "chain", 0xDEAD
    uses = ("array.dead_elements", "array.dead_list", "array.weak_gain")
    lr_scale = {"amplitude": 1.0}
    units = {"amplitude": "linear"}

    def active(self, scenario) -> bool:
        return scenario.get("array.dead_elements") > 0 or bool(scenario.get("array.dead_list"))

    def draw(self, scenario, rng):
        K = scenario.get("array.antennas")
        if scenario.get("array.dead_list"):
            dead = np.sort(np.asarray(scenario.get("array.dead_list"), np.int64))
        else:
            dead = draw_dead_elements(K, scenario.get("array.dead_elements"), rng)
        return {"amplitude": element_amplitudes(K, dead, scenario.get("array.weak_gain"))}

    def factor(self, params, antennas):
        return np.asarray(params["amplitude"], np.float64).astype(np.complex128)

    def weight_shapes(self, antennas, scenario=None, tensors=None):
        return {"amplitude": (antennas,)}

    def initial(self, scenario):
        return {"amplitude": np.ones(scenario.get("array.antennas"))}

    def torch_factor(self, learned, antennas):
        import torch

        return learned["amplitude"].to(torch.complex128)

    def to_weights(self, learned):
        return {"amplitude": np.asarray(learned["amplitude"], np.float64)}


# --- the draws ----------------------------------------------------------------------------------
def _generator(rng_or_seed, tag: int) -> np.random.Generator:
    return rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else _rng(rng_or_seed, tag)


def draw_gain_errors(antennas: int, gain_std_db: float, phase_std_deg: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """(A (K,) dB, phi (K,) rad): A_k ~ N(0, gain_std_db^2), phi_k ~ N(0, phase_std_deg^2)
    converted to rad; ``rng`` a Generator or the impairment seed. Zero stds give zeros."""
    if not (gain_std_db >= 0 and phase_std_deg >= 0):
        raise ValueError(f"gain and phase stds must be >= 0, got {gain_std_db} dB, {phase_std_deg} deg")
    z = _generator(rng, GainErrors.tag).standard_normal((2, antennas))
    return gain_std_db * z[0], np.deg2rad(phase_std_deg) * z[1]


def draw_dead_elements(antennas: int, count: int, rng) -> np.ndarray:
    """Sorted indices of ``count`` distinct dead elements among ``antennas``, drawn uniformly."""
    if not 0 <= count <= antennas - 1:
        raise ValueError(f"dead element count must be in [0, {antennas - 1}], got {count}")
    gen = _generator(rng, DeadElements.tag)
    return np.sort(gen.choice(antennas, size=count, replace=False)).astype(np.int64)


def draw_coupling(taps: int, coupling_db: float, rng) -> np.ndarray:
    """Coupling coefficients c_1 .. c_L (L,) complex128: |c_l| = 10^(l coupling_db / 20),
    phases U[0, 2 pi)."""
    if taps < 0 or not coupling_db < 0:
        raise ValueError(f"coupling needs taps >= 0 and coupling_db < 0, got {taps}, {coupling_db}")
    psi = _generator(rng, MutualCoupling.tag).uniform(0.0, 2 * np.pi, taps)
    lag = np.arange(1, taps + 1, dtype=np.float64)
    return 10.0 ** (lag * coupling_db / 20.0) * np.exp(1j * psi)


def element_amplitudes(antennas: int, dead: np.ndarray, weak_gain: float) -> np.ndarray:
    """m (K,): ``weak_gain`` at the indices ``dead``, 1 elsewhere."""
    m = np.ones(antennas)
    m[np.asarray(dead, dtype=np.int64)] = weak_gain
    return m


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


def dead_indices(scenario) -> np.ndarray:
    """Indices of the dead or weak elements of the scenario's true array (empty when none)."""
    if scenario.get("array.dead_list"):
        return np.sort(np.asarray(scenario.get("array.dead_list"), np.int64))
    return draw_dead_elements(scenario.get("array.antennas"), scenario.get("array.dead_elements"), _seed(scenario))


def _seed(scenario) -> int:
    return scenario.get("array.impairment_seed")


# --- which models a scenario uses ---------------------------------------------------------------
def active_models(scenario) -> tuple[str, ...]:
    """The models of the scenario's true array: "spacing" (array.spacing_std_m > 0), then the
    active element models in composition order."""
    spacing = (POSITION_MODEL,) if scenario.get("array.spacing_std_m") > 0 else ()
    return spacing + element_models(scenario)


def element_models(scenario) -> tuple[str, ...]:
    """The active element models."""
    return tuple(name for name, m in _MODELS.items() if m.active(scenario))


def learned_models(scenario) -> tuple[str, ...]:
    """The models impairment learning learns on ``scenario`` (and that its weights hold): the
    active element models, plus the spacings when the spacing model is on or when no element
    model is (the paper's impairment learning of Sec. IV-A)."""
    elements = element_models(scenario)
    spacing = scenario.get("array.spacing_std_m") > 0 or not elements
    return ((POSITION_MODEL,) if spacing else ()) + elements


def true_parameters(scenario) -> dict[str, dict[str, np.ndarray]]:
    """model -> its true parameters, for every active element model of the scenario, each drawn
    from its own stream of array.impairment_seed."""
    return {
        name: _MODELS[name].draw(scenario, _rng(_seed(scenario), _MODELS[name].tag))
        for name in element_models(scenario)
    }


# --- the composition ----------------------------------------------------------------------------
def element_matrix(parameters: dict[str, dict[str, np.ndarray]], antennas: int) -> np.ndarray:
    """M = diag(g) C (K x K complex128) of the element models' ``parameters`` (model -> its
    parameters): g the product of the chain factors, C of the antenna factors, each in
    registration order (identity when none)."""
    g = np.ones(antennas, np.complex128)
    C = None
    for name in _MODELS:
        if name not in parameters:
            continue
        model = _MODELS[name]
        f = model.factor(parameters[name], antennas)
        if model.stage == "chain":
            g = g * f
        else:
            C = f if C is None else C @ f
    if C is None:
        C = np.eye(antennas, dtype=np.complex128)
    return g[:, None] * C


class ImpairedArray(ArrayModel):
    """a(theta) = diag(g) C a_pos(theta): a position array (``base``) with the element models'
    ``parameters`` (model -> its parameters, as their draws or learned weights give them).

    Exposes the base's ``positions_m``, ``spacings_m`` and ``wavelength_m``, the element matrix
    M = diag(g) C (an off-grid atom is M a_pos(theta), what a dOMP receiver must recompute),
    ``gains`` (g: the product of the chain factors) and ``models`` (the element models, in
    composition order)."""

    def __init__(self, base: PositionArray, parameters: dict[str, dict[str, np.ndarray]]):
        K = base.antennas
        unknown = [name for name in parameters if name not in _MODELS]
        if unknown:
            raise ValueError(f"unknown array model(s) {unknown}; known: {', '.join(_MODELS)}")
        self.parameters = {n: {k: np.asarray(v) for k, v in p.items()} for n, p in parameters.items()}
        for name, params in self.parameters.items():
            if not all(np.all(np.isfinite(v)) for v in params.values()):
                raise ValueError(f"array model {name!r}: parameters must be finite")
        self.base = base
        self.antennas = K
        self.models = tuple(name for name in _MODELS if name in parameters)
        self.positions_m = base.positions_m
        self.spacings_m = base.spacings_m
        self.wavelength_m = base.wavelength_m
        self.kind = f"{base.kind}+{'+'.join(self.models)}" if self.models else base.kind
        self.element_matrix = element_matrix(self.parameters, K)
        g = np.ones(K, np.complex128)
        for name in self.models:
            if _MODELS[name].stage == "chain":
                g = g * _MODELS[name].factor(self.parameters[name], K)
        self.gains = g

    def steering(self, angles_rad: np.ndarray) -> np.ndarray:
        """K x N steering matrix diag(g) C a_pos(theta) (complex64)."""
        a = self.base.steering(angles_rad).astype(np.complex128)
        return (self.element_matrix @ a).astype(np.complex64)


class ReceiverArray(ArrayModel):
    """What a sensing receiver matches against when it knows an impaired array: the steering
    vectors scaled to the norm sqrt(K) of a unit-modulus array, a(theta) sqrt(K) / ||a(theta)||.

    The map |Phi_a^H Y~ Phi_d^*|^2 of Algorithm 1 is the generalised likelihood ratio statistic
    for a target of unknown complex gain only when every atom has the same norm, as the unit-
    modulus steering vectors of (1) do. Mutual coupling makes ||a(theta)|| depend on the angle
    (interior elements see a(theta) scaled by 1 + 2 sum_l c_l cos(l pi sin theta) for a lambda/2
    array): unnormalised atoms then favour the angles of large norm, where the noise of the map
    is larger too, and a receiver that knows C does worse than one that ignores it. Scaling every
    atom to sqrt(K) restores the statistic; the joint LS gains (13) absorb the scale, so the
    estimates' gains and residuals are those of the physical atoms. The transmitter and the
    channel use the physical array."""

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


def impaired_array(base: PositionArray, scenario) -> ArrayModel:
    """The scenario's true array on the position array ``base``: ``base`` itself when no
    element model is on, else an :class:`ImpairedArray` of the models' draws."""
    params = true_parameters(scenario)
    return ImpairedArray(base, params) if params else base


def true_array(scenario) -> ArrayModel:
    """The physical (possibly impaired) array of a scenario: spacings drawn from
    ``array.impairment_seed`` with std ``array.spacing_std_m`` (0 = ideal) under the spacing
    model ``array.impairment``, composed with every element model the scenario turns on."""
    lam = scenario.wavelength_m
    d = draw_spacings(scenario.get("array.antennas"), lam, scenario.get("array.spacing_std_m"), _seed(scenario))
    return impaired_array(spacing_array(d, lam, scenario.get("array.impairment")), scenario)


def check_domp(array: ArrayModel) -> None:
    """The dOMP receivers recompute off-grid atoms from element positions only: refuse an
    array with element models (they would silently be ignored)."""
    if isinstance(array, (ImpairedArray, ReceiverArray)):
        raise ValueError(
            f"receiver 'domp' recomputes its atoms from the element positions only and cannot apply "
            f"the element impairments ({', '.join(array.models) or 'element response'}) of this array; "
            f"use receiver 'omp'"
        )


def parameters_as_lists(parameters: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    """Model parameters as plain JSON lists (recordings' metadata)."""
    return {name: {k: np.asarray(v, np.float64).tolist() for k, v in p.items()} for name, p in parameters.items()}


for _model in (GainErrors(), MutualCoupling(), DeadElements()):
    register(_model)


__all__ = [
    "DeadElements",
    "ElementModel",
    "GainErrors",
    "ImpairedArray",
    "MutualCoupling",
    "POSITION_MODEL",
    "ReceiverArray",
    "active_models",
    "check_domp",
    "coupling_matrix",
    "dead_indices",
    "draw_coupling",
    "draw_dead_elements",
    "draw_gain_errors",
    "element_amplitudes",
    "element_matrix",
    "element_model",
    "element_models",
    "element_models_registered",
    "impaired_array",
    "learned_models",
    "models",
    "parameters_as_lists",
    "receiver_array",
    "register",
    "true_array",
    "true_parameters",
]
