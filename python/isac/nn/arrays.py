"""Differentiable torch twins of the model formulas that gradients flow through.

Only what the trainer differentiates is re-written here; each function mirrors one numpy
function of ``gnuradio.isac.model`` and is pinned to it by a parity test
(tests/test_trainer_model.py):

  positions_example1 / positions_cumulative   <->  model.array.positions_*
  steering_matrix                             <->  model.array.steering_matrix
  ls_beam                                     <->  model.beamforming.ls_beam (7)
  isac_beam                                   <->  model.beamforming.isac_beam (5)
  delay_vector                                <->  model.ofdm.delay_vector
  sensing_echo                                <->  model.channels.sensing_echo (1) (noiseless part)
  reciprocal_filter                           <->  model.reciprocal.reciprocal_filter (3)

Learnable arrays (Sec. IV-A), all sharing one angle grid over [-90, 90] deg with the
precoder (parameter sharing between transmitter and receiver):

  SpacingArray     impairment learning: K spacings d, stored dimensionless as
                   u = d / (lambda/2) (initialised at 1 = nominal ULA), or, with
                   ``parameterisation="position"``, as element positions in units of
                   lambda/2 (same array model, better conditioned for Adam: see docs/trainer.md)
  ImpairmentArray  impairment learning of every model a scenario turns on
                   (model.impairments.learned_models): a(theta) = diag(g) C a_pos(theta) with
                   the spacings (a SpacingArray) when learned and the parameters each element
                   model of model.impairments learns (its ``initial`` and ``torch_factor``):
                   twin of model.impairments.ImpairedArray
  DictionaryArray  dictionary learning: a free K x N_theta complex dictionary initialised
                   from the nominal steering matrix on the grid
  ReceiverView     the atoms a sensing receiver matches an ImpairmentArray with, scaled to
                   norm sqrt(K): twin of model.impairments.ReceiverArray

Conventions: angles in rad, positions and spacings in m (or lambda/2 units where said),
delays in s; complex64 signals; phases computed in float64.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..model import array as np_array
from ..model import impairments as np_impairments
from ..model import reciprocal as _np_reciprocal
from ..model.grids import full_angle_grid
from .twins import CDTYPE, RDTYPE, delay_vector, isac_beam, normalise, steering_matrix  # noqa: F401 (shared)


# --- array geometry -------------------------------------------------------------------
def centred_index(antennas: int, device=None) -> torch.Tensor:
    """k - (K-1)/2 for k = 0..K-1 (float64); twin of model.array.centred_index."""
    return torch.as_tensor(np_array.centred_index(antennas), dtype=RDTYPE, device=device)


def positions_example1(spacings: torch.Tensor) -> torch.Tensor:
    """Example 1: p_k = (k - (K-1)/2) d_k (same unit as ``spacings``)."""
    return centred_index(spacings.shape[-1], spacings.device) * spacings


def positions_cumulative(spacings: torch.Tensor) -> torch.Tensor:
    """Cumulative array: p_0 = 0, p_k = sum_{j<k} d_j, centred on the mean position."""
    zero = torch.zeros(spacings.shape[:-1] + (1,), dtype=spacings.dtype, device=spacings.device)
    p = torch.cat([zero, torch.cumsum(spacings[..., :-1], dim=-1)], dim=-1)
    return p - p.mean(dim=-1, keepdim=True)


def positions_from_spacings(spacings: torch.Tensor, impairment: str) -> torch.Tensor:
    if impairment == "spacing":
        return positions_example1(spacings)
    if impairment == "cumulative":
        return positions_cumulative(spacings)
    raise ValueError(f"impairment must be 'spacing' or 'cumulative', got {impairment!r}")


class LearnableArray(torch.nn.Module):
    """Interface of the learnable arrays: ``grid_rad`` (N_theta,) float64 buffer,
    ``dictionary()`` K x N_theta on the grid, ``atoms(angles)`` (..., K) off the grid."""

    antennas: int
    wavelength_m: float

    def dictionary(self) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def atoms(self, angles_rad: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def grid_columns(self, index: torch.Tensor) -> torch.Tensor:
        """Dictionary columns at grid indices (...,) -> (..., K). Structured arrays
        recompute only these columns; the dictionary array gathers them."""
        return self.atoms(self.grid_rad[index])

    def weight_tensors(self) -> dict[str, np.ndarray]:  # pragma: no cover - interface
        """The learned array as the tensors of its weights file (transceiver.save_weights)."""
        raise NotImplementedError


class SpacingArray(LearnableArray):
    """Impairment learning (Sec. IV-A): the structured array a_pert(theta; d) with K learnable
    spacings. ``impairment``: "spacing" (Example 1) or "cumulative".

    ``parameterisation``:
      "spacing"   parameter u = d / (lambda/2) (K,), initialised at 1
      "position"  parameter q = p / (lambda/2) (K,), the element positions of the same model,
                  initialised at the nominal positions; d is recovered from q (Example 1:
                  d_k = p_k / (k - (K-1)/2); cumulative: d_k = p_{k+1} - p_k). Under Adam this
                  gives every element the same phase step, whatever its distance to the centre.
    """

    #: the array models it learns (model.impairments.learned_models): the element positions only
    models = (np_impairments.POSITION_MODEL,)

    def __init__(
        self,
        antennas: int,
        wavelength_m: float,
        grid_points: int = 720,
        impairment: str = "spacing",
        parameterisation: str = "spacing",
        spacings_m: np.ndarray | None = None,
    ):
        super().__init__()
        if impairment not in ("spacing", "cumulative"):
            raise ValueError(f"impairment must be 'spacing' or 'cumulative', got {impairment!r}")
        if parameterisation not in ("spacing", "position"):
            raise ValueError(f"parameterisation must be 'spacing' or 'position', got {parameterisation!r}")
        self.antennas = int(antennas)
        self.wavelength_m = float(wavelength_m)
        self.impairment = impairment
        self.parameterisation = parameterisation
        self.register_buffer("grid_rad", torch.as_tensor(full_angle_grid(grid_points), dtype=RDTYPE))
        d = np.full(antennas, wavelength_m / 2) if spacings_m is None else np.asarray(spacings_m, np.float64)
        if d.shape != (antennas,) or not np.all(np.isfinite(d)):
            raise ValueError(f"spacings_m must be {antennas} finite values")
        half = wavelength_m / 2
        if parameterisation == "spacing":
            self.u = torch.nn.Parameter(torch.as_tensor(d / half, dtype=RDTYPE))
        else:
            pos = np_array.positions_example1(d) if impairment == "spacing" else np_array.positions_cumulative(d)
            self.q = torch.nn.Parameter(torch.as_tensor(pos / half, dtype=RDTYPE))
            if impairment == "cumulative":  # the last spacing is not part of the cumulative model
                self.register_buffer("last_spacing", torch.as_tensor(d[-1] / half, dtype=RDTYPE))

    def positions_m(self) -> torch.Tensor:
        half = self.wavelength_m / 2
        if self.parameterisation == "spacing":
            return positions_from_spacings(self.u * half, self.impairment)
        return self.q * half

    def spacings_m(self) -> torch.Tensor:
        """The spacing vector d (m) of the model (K,)."""
        half = self.wavelength_m / 2
        if self.parameterisation == "spacing":
            return self.u * half
        if self.impairment == "spacing":
            return self.q * half / centred_index(self.antennas, self.q.device)
        return torch.cat([torch.diff(self.q), self.last_spacing[None]]) * half

    def load_spacings(self, spacings_m: np.ndarray) -> None:
        """Set the parameters from a spacing vector d (m)."""
        d = np.asarray(spacings_m, np.float64)
        half = self.wavelength_m / 2
        with torch.no_grad():
            if self.parameterisation == "spacing":
                self.u.copy_(torch.as_tensor(d / half))
            else:
                pos = (
                    np_array.positions_example1(d) if self.impairment == "spacing" else np_array.positions_cumulative(d)
                )
                self.q.copy_(torch.as_tensor(pos / half))
                if self.impairment == "cumulative":
                    self.last_spacing.copy_(torch.as_tensor(d[-1] / half))

    def atoms(self, angles_rad: torch.Tensor) -> torch.Tensor:
        return steering_matrix(self.positions_m(), angles_rad, self.wavelength_m)

    def weight_tensors(self) -> dict[str, np.ndarray]:
        """spacings_m, positions_m (K,) [m] and angle_grid_rad (N_theta,) [rad], float64."""
        with torch.no_grad():
            return {
                "spacings_m": self.spacings_m().cpu().numpy().astype(np.float64),
                "positions_m": self.positions_m().cpu().numpy().astype(np.float64),
                "angle_grid_rad": self.grid_rad.cpu().numpy(),
            }

    def dictionary(self) -> torch.Tensor:
        return self.atoms(self.grid_rad).T


class ImpairmentArray(LearnableArray):
    """Impairment learning of the models ``models`` (as model.impairments.learned_models gives
    them): a(theta) = diag(g) C a_pos(theta), twin of model.impairments.ImpairedArray.

    The spacings, when learned, are a SpacingArray submodule ``positions`` (u = d / (lambda/2),
    initialised at 1); otherwise the nominal positions are a fixed buffer. Each element model of
    model.impairments learns the parameters its ``initial(scenario)`` gives (at "no impairment"),
    in ``learned[model][name]``, and gives its factor of the element matrix by ``torch_factor``.
    ``atoms`` / ``dictionary`` are the physical responses (the transmitter's LS synthesis); the
    receiver matches ``ReceiverView(self)``."""

    def __init__(
        self,
        scenario,
        models: tuple[str, ...] = ("spacing",),
        grid_points: int = 720,
        parameterisation: str = "spacing",
    ):
        super().__init__()
        known = np_impairments.models()
        if not models or any(m not in known for m in models):
            raise ValueError(f"models must be a non-empty subset of {known}, got {models!r}")
        K = scenario.array["antennas"]
        self.antennas = int(K)
        self.wavelength_m = float(scenario.wavelength_m)
        self.models = tuple(m for m in known if m in models)
        self.register_buffer("grid_rad", torch.as_tensor(full_angle_grid(grid_points), dtype=RDTYPE))
        if np_impairments.POSITION_MODEL in self.models:
            self.positions = SpacingArray(
                K, self.wavelength_m, grid_points, scenario.array["impairment"], parameterisation
            )
        else:
            self.positions = None
            nominal = np_array.positions_example1(np.full(K, self.wavelength_m / 2))
            self.register_buffer("nominal_positions_m", torch.as_tensor(nominal, dtype=RDTYPE))
        self.learned = torch.nn.ModuleDict(
            {
                name: torch.nn.ParameterDict(
                    {
                        k: torch.nn.Parameter(torch.as_tensor(v, dtype=RDTYPE))
                        for k, v in np_impairments.element_model(name).initial(scenario).items()
                    }
                )
                for name in self.element_models
            }
        )

    @property
    def element_models(self) -> tuple[str, ...]:
        return tuple(m for m in self.models if m != np_impairments.POSITION_MODEL)

    def parameter_groups(self) -> dict[str, tuple[list[torch.nn.Parameter], float]]:
        """Parameter group -> (its learnable parameters, its learning rate in units of the run's
        lr): "spacing", and "MODEL.NAME" for each element model's parameter (the model's lr_scale)."""
        out = {}
        if self.positions is not None:
            out["spacing"] = (list(self.positions.parameters()), 1.0)
        for model in self.element_models:
            scales = np_impairments.element_model(model).lr_scale
            for name, param in self.learned[model].items():
                out[f"{model}.{name}"] = ([param], float(scales.get(name, 1.0)))
        return out

    def positions_m(self) -> torch.Tensor:
        return self.positions.positions_m() if self.positions is not None else self.nominal_positions_m

    def spacings_m(self) -> torch.Tensor:
        if self.positions is not None:
            return self.positions.spacings_m()
        return torch.full((self.antennas,), self.wavelength_m / 2, dtype=RDTYPE, device=self.grid_rad.device)

    def element_matrix(self) -> torch.Tensor:
        """M = diag(g) C (K x K complex128): g the product of the chain models' factors, C of the
        antenna models' (twin of model.impairments.element_matrix)."""
        dev = self.grid_rad.device
        g = torch.ones(self.antennas, dtype=torch.complex128, device=dev)
        C = None
        for model in self.element_models:
            m = np_impairments.element_model(model)
            f = m.torch_factor(dict(self.learned[model].items()), self.antennas).to(torch.complex128)
            if m.stage == "chain":
                g = g * f
            else:
                C = f if C is None else C @ f
        if C is None:
            C = torch.eye(self.antennas, dtype=torch.complex128, device=dev)
        return g[:, None] * C

    def weight_tensors(self) -> dict[str, np.ndarray]:
        """spacings_m, positions_m, angle_grid_rad (SpacingArray's) and the learned element models'
        tensors (model.impairments: each model's to_weights), float64."""
        with torch.no_grad():
            out = {
                "spacings_m": self.spacings_m().cpu().numpy().astype(np.float64),
                "positions_m": self.positions_m().cpu().numpy().astype(np.float64),
                "angle_grid_rad": self.grid_rad.cpu().numpy(),
            }
            for model in self.element_models:
                learned = {k: v.detach().cpu().numpy().astype(np.float64) for k, v in self.learned[model].items()}
                out.update(np_impairments.element_model(model).to_weights(learned))
        return out

    def atoms(self, angles_rad: torch.Tensor) -> torch.Tensor:
        a = steering_matrix(self.positions_m(), angles_rad, self.wavelength_m).to(torch.complex128)  # (..., K)
        return (a @ self.element_matrix().T).to(CDTYPE)

    def dictionary(self) -> torch.Tensor:
        return self.atoms(self.grid_rad).T


class ReceiverView(LearnableArray):
    """The receiver's atoms of a learnable impaired array: ``array``'s atoms scaled to norm
    sqrt(K) (twin of model.impairments.ReceiverArray; differentiable). Shares the array's
    parameters and grid."""

    def __init__(self, array: LearnableArray):
        super().__init__()
        self.array = array
        self.antennas = array.antennas
        self.wavelength_m = array.wavelength_m

    @property
    def grid_rad(self) -> torch.Tensor:
        return self.array.grid_rad

    def _scaled(self, a: torch.Tensor, dim: int) -> torch.Tensor:
        norm = torch.linalg.vector_norm(a, dim=dim, keepdim=True).clamp_min(1e-30)
        return a * (math.sqrt(self.antennas) / norm).to(a.dtype)

    def atoms(self, angles_rad: torch.Tensor) -> torch.Tensor:
        return self._scaled(self.array.atoms(angles_rad), -1)

    def grid_columns(self, index: torch.Tensor) -> torch.Tensor:
        return self._scaled(self.array.grid_columns(index), -1)

    def dictionary(self) -> torch.Tensor:
        return self._scaled(self.array.dictionary(), 0)


def receiver_array(array: LearnableArray) -> LearnableArray:
    """What the dOMP receiver matches: the array itself, or its ReceiverView for an
    ImpairmentArray (twin of model.impairments.receiver_array)."""
    return ReceiverView(array) if isinstance(array, ImpairmentArray) else array


class DictionaryArray(LearnableArray):
    """Dictionary learning (Sec. IV-A): a free K x N_theta complex dictionary A on the fixed
    grid over [-90, 90] deg, initialised from the steering matrix of ``spacings_m`` (default:
    the nominal lambda/2 ULA). Off-grid atoms interpolate linearly between the two
    neighbouring columns (differentiable in the angle and in A)."""

    def __init__(
        self,
        antennas: int,
        wavelength_m: float,
        grid_points: int = 720,
        spacings_m: np.ndarray | None = None,
        dictionary: np.ndarray | None = None,
    ):
        super().__init__()
        self.antennas = int(antennas)
        self.wavelength_m = float(wavelength_m)
        grid = full_angle_grid(grid_points)
        self.register_buffer("grid_rad", torch.as_tensor(grid, dtype=RDTYPE))
        if dictionary is None:
            d = np.full(antennas, wavelength_m / 2) if spacings_m is None else np.asarray(spacings_m, np.float64)
            dictionary = np_array.steering_matrix(np_array.positions_example1(d), grid, wavelength_m)
        dictionary = np.asarray(dictionary, np.complex64)
        if dictionary.shape != (antennas, grid_points):
            raise ValueError(f"dictionary must be {antennas} x {grid_points}, got {dictionary.shape}")
        self.A = torch.nn.Parameter(torch.as_tensor(dictionary))

    def dictionary(self) -> torch.Tensor:
        return self.A

    def grid_columns(self, index: torch.Tensor) -> torch.Tensor:
        return self.A.T[index]

    def weight_tensors(self) -> dict[str, np.ndarray]:
        """dictionary (K, N_theta) complex64 and angle_grid_rad (N_theta,) [rad]."""
        with torch.no_grad():
            return {
                "dictionary": self.A.cpu().numpy().astype(np.complex64),
                "angle_grid_rad": self.grid_rad.cpu().numpy(),
            }

    def atoms(self, angles_rad: torch.Tensor) -> torch.Tensor:
        th = torch.as_tensor(angles_rad, dtype=RDTYPE, device=self.A.device)
        g = self.grid_rad
        step = (g[-1] - g[0]) / (g.shape[0] - 1)
        x = ((th - g[0]) / step).clamp(0, g.shape[0] - 1)
        i0 = torch.floor(x).long().clamp(max=g.shape[0] - 2)
        t = (x - i0).to(torch.float32)[..., None]
        cols = self.A.T
        return (1 - t) * cols[i0] + t * cols[i0 + 1]


# --- transmitter: LS beam (7) and ISAC beam (5) ---------------------------------------------
def ls_beam(steering: torch.Tensor, desired: torch.Tensor, rcond: float = 0.1) -> torch.Tensor:
    """LS beampattern synthesis (7), argmin_f ||b - A^T f||^2, differentiable, batched over b.

    ``steering`` A (K x N) complex, ``desired`` b (..., N) real or complex -> f (..., K)
    complex128, not normalised. Twin of model.beamforming.ls_beam (truncated-SVD LS with
    relative cut-off ``rcond`` on the singular values of A^T).

    With G = A* A^T (K x K, eigenvalues = squared singular values of A^T), the kept
    eigenvectors V_r (eigenvalues > rcond^2 * max) are found without gradient and
    f = V_r (V_r^H G V_r)^-1 V_r^H A* b. At the current A this is exactly the truncated-SVD
    solution (and, when nothing is truncated, (A* A^T)^-1 A* b of (7)); its gradient holds
    the kept subspace fixed, which avoids the unstable eigenvector derivatives of nearly
    degenerate singular values."""
    A = steering.to(torch.complex128)
    b = desired.to(torch.complex128)
    G = A.conj() @ A.T
    rhs = b @ A.conj().T  # (..., K) = (A* b)^T
    with torch.no_grad():
        w, V = torch.linalg.eigh(G.detach())
        keep = w > (rcond**2) * w.max()
    if bool(keep.all()):
        return torch.linalg.solve(G, rhs.unsqueeze(-1)).squeeze(-1)
    Vr = V[:, keep]
    Gr = Vr.conj().T @ G @ Vr
    coeff = torch.linalg.solve(Gr, (rhs @ Vr.conj()).unsqueeze(-1)).squeeze(-1)  # (..., r)
    return coeff @ Vr.T


def desired_beampattern(grid_rad: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, antennas: int) -> torch.Tensor:
    """b of (6) for a batch of intervals: lo, hi (B,) rad -> (B, N): K inside [lo, hi], else 0.
    Twin of model.beamforming.desired_beampattern (not differentiated)."""
    g = grid_rad[None, :]
    inside = (g >= lo[:, None]) & (g <= hi[:, None])
    return inside.to(RDTYPE) * float(antennas)


def sector_beams(array: LearnableArray, lo: torch.Tensor, hi: torch.Tensor, rcond: float = 0.1) -> torch.Tensor:
    """Unit-norm LS beams (6)-(7) of the learnable array towards intervals [lo, hi] (B,),
    synthesised on the array's grid (shared with the receiver). (B, K) complex128."""
    b = desired_beampattern(array.grid_rad, lo, hi, array.antennas)
    return normalise(ls_beam(array.dictionary(), b, rcond))


# --- OFDM and the sensing echo -----------------------------------------------------------------
def sensing_echo(
    true_positions_m: torch.Tensor,
    wavelength_m: float,
    precoder: torch.Tensor,
    symbols: torch.Tensor,
    angles_rad: torch.Tensor,
    delays_s: torch.Tensor,
    gains: torch.Tensor,
    present: torch.Tensor,
    spacing_hz: float,
    element_matrix: torch.Tensor | None = None,
) -> torch.Tensor:
    """Noiseless sensing echo (1) through the TRUE array, batched with up to T_max targets:

        Y_r = 1/sqrt(S) sum_t psi_t a(theta_t) a(theta_t)^T f [x (.) rho(tau_t)]^T

    precoder f (B, K), symbols x (B, S), angles/delays/gains (B, T), present (B, T) bool
    -> (B, K, S) complex64. Differentiable in the precoder. ``element_matrix`` M = diag(g) C
    (K x K) of an impaired true array (model.impairments.ImpairedArray): a = M a_pos."""
    S = symbols.shape[-1]
    a = steering_matrix(true_positions_m, angles_rad, wavelength_m)  # (B, T, K)
    if element_matrix is not None:
        a = (a.to(torch.complex128) @ element_matrix.to(torch.complex128).T).to(CDTYPE)
    gain_tx = (a.to(torch.complex128) * precoder[:, None, :].to(torch.complex128)).sum(-1)  # a^T f (B, T)
    alpha = gains.to(torch.complex128) * gain_tx / math.sqrt(S) * present
    rho = delay_vector(delays_s, S, spacing_hz) * symbols[:, None, :].to(CDTYPE)  # (B, T, S)
    return torch.einsum("btk,bt,bts->bks", a, alpha.to(CDTYPE), rho)


def reciprocal_filter(y_sensing: torch.Tensor, symbols: torch.Tensor) -> torch.Tensor:
    """Reciprocal filtering (3): Y~ = Y_r (/) 1 x^T, (B, K, S) / (B, S), differentiable in Y_r.
    Training symbols are QPSK (|x| = 1): zero symbols, which model.reciprocal rejects or
    nulls, cannot occur, and are refused here too."""
    if bool((symbols.abs() < _np_reciprocal.MIN_SYMBOL_MAGNITUDE).any()):
        raise ValueError("reciprocal_filter: zero transmitted symbols")
    return y_sensing / symbols[..., None, :]
