"""Differentiable OMP (Sec. IV-B, Fig. 4), batched over frames and multi-target.

Per iteration I (T iterations, one target each):

  1. the complex angle-delay map of the residual, M = Phi_a^H Y~(I) Phi_d^*, on the FULL
     angle grid of the learnable array (N_theta = 720 over [-90, 90] deg, shared with the
     precoder) and the delay grid over [R_min, R_max] -- without gradient. The map of the
     input is computed once in the cheap product order (Y~ Phi_d^* first) and updated for
     each residual by rank-one terms (the map is linear in Y~), as model/omp.py does;
  2. argmax of |M|^2, restricted to the a-priori angular sector [theta_min, theta_max] of
     each frame (the receiver knows it, Sec. II-A; without the restriction a spurious lobe
     of an impaired array can win and training diverges, see docs/trainer.md);
  3. a window of half-widths floor(delta_theta / Delta_theta) x floor(delta_R / Delta_R)
     pixels around the argmax (resolutions (16): delta_theta = 2/K rad, delta_R =
     c / (2 S Delta_f)); there the map is recomputed WITH gradient (through the learnable
     array and through Y~ into the precoder);
  4. softmax over the window of the map normalised to its argmax cell, L / L(i0, j0),
     divided by a temperature;
  5. weighted sums of the grid angles and delays -> off-grid (theta^_I, tau^_I), which carry
     the gradient;
  6. atoms a(theta^_I) (learnable array) and rho(tau^_I) recomputed, joint LS gains (13)
     from the small t x t Gram system (a_s^H a_t)(rho_s^H rho_t), residual (14) -- all
     without gradient (Fig. 4: gradient flows neither through the argmax nor the residual).

The loss (GOSPA (18)) therefore sees the soft estimates (theta^, tau^) only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import SPEED_OF_LIGHT
from ..model import domp as _np_domp
from ..nn.arrays import CDTYPE, RDTYPE, LearnableArray, delay_vector

#: default softmax temperature on the window of the map normalised to its maximum (shared
#: with the numpy reference model/domp.py). With T = 0.1 the weights are ~exp(-(1 - L/max)/0.1):
#: the half-power points of the lobe weigh e^-5 of the peak, so the estimate is the centroid
#: of the top of the lobe (about +-1 pixel), far from the window edges: no pull towards the
#: window centre for off-grid targets.
DEFAULT_TEMPERATURE = _np_domp.DEFAULT_TEMPERATURE
#: window half-widths from the resolutions (16): the numpy reference's rule, one definition.
window_halfwidths = _np_domp.window_half_widths


@dataclass
class DompResult:
    """T iterations on B frames. ``angles_rad`` / ``delays_s`` (B, T) carry the gradient;
    ``peaks`` (B, T) are the residual map maxima in the sector (for thresholds), ``gains``
    (B, T) the final joint LS gains, ``angle_index`` / ``delay_index`` the argmax cells."""

    angles_rad: torch.Tensor
    delays_s: torch.Tensor
    peaks: torch.Tensor
    gains: torch.Tensor
    angle_index: torch.Tensor
    delay_index: torch.Tensor

    @property
    def ranges_m(self) -> torch.Tensor:
        return 0.5 * SPEED_OF_LIGHT * self.delays_s


class DifferentiableOmp(torch.nn.Module):
    """Differentiable OMP on a learnable array (see the module docstring).

    ``delays_s`` (N_tau,) delay grid over [R_min, R_max]; the angle grid is ``array.grid_rad``.
    ``temperature`` of the softmax (float, may be changed between steps for a schedule)."""

    def __init__(
        self,
        array: LearnableArray,
        delays_s,
        subcarriers: int,
        spacing_hz: float,
        temperature: float = DEFAULT_TEMPERATURE,
        halfwidths: tuple[int, int] | None = None,
    ):
        super().__init__()
        self.array = array
        self.subcarriers = int(subcarriers)
        self.spacing_hz = float(spacing_hz)
        delays = torch.as_tensor(delays_s, dtype=RDTYPE)
        self.register_buffer("delays_s", delays)
        self.register_buffer("phi_d", delay_vector(delays, subcarriers, spacing_hz).T.contiguous())  # S x N_tau
        self.temperature = float(temperature)
        self.halfwidths = halfwidths or window_halfwidths(
            array.antennas, subcarriers, spacing_hz, array.grid_rad.cpu().numpy(), delays.numpy()
        )

    def forward(
        self,
        y: torch.Tensor,
        iterations: int,
        sector_lo: torch.Tensor | None = None,
        sector_hi: torch.Tensor | None = None,
    ) -> DompResult:
        """Run ``iterations`` dOMP iterations on reciprocal-filtered frames Y~ (B, K, S);
        ``sector_lo``/``sector_hi`` (B,) rad restrict the argmax (None: whole grid)."""
        if y.ndim != 3:
            raise ValueError(f"dOMP: Y must be B x K x S, got shape {tuple(y.shape)}")
        if iterations < 1:
            raise ValueError(f"dOMP: iterations must be >= 1, got {iterations}")
        B, K, S = y.shape
        dev = y.device
        grid = self.array.grid_rad
        n_a, n_d = grid.shape[0], self.delays_s.shape[0]
        wa, wd = self.halfwidths
        rows = torch.arange(B, device=dev)
        off_a = torch.arange(-wa, wa + 1, device=dev)
        off_d = torch.arange(-wd, wd + 1, device=dev)
        phi_d = self.phi_d
        with torch.no_grad():
            phi_a = self.array.dictionary().detach()  # K x N_theta
            rows_idx, rows_ok = sector_rows(grid, sector_lo, sector_hi, B)  # (B, R)
            phi_sec = phi_a.T[rows_idx]  # (B, R, K): the map rows inside each frame's sector
            phi_sec_h = phi_sec.conj().resolve_conj()
            phi_d_conj = phi_d.conj().resolve_conj()
            m0 = phi_sec_h @ (y.detach() @ phi_d_conj)  # (B, R, N_tau), cheap order
            pa = torch.zeros(B, rows_idx.shape[1], 0, dtype=CDTYPE, device=dev)
            pd = torch.zeros(B, n_d, 0, dtype=CDTYPE, device=dev)
        resid_map = m0
        thetas, taus, peaks, ai, di = [], [], [], [], []
        sel_a = torch.zeros(B, 0, K, dtype=CDTYPE, device=dev)
        sel_d = torch.zeros(B, 0, S, dtype=CDTYPE, device=dev)
        alpha = torch.zeros(B, 0, dtype=CDTYPE, device=dev)
        for _ in range(iterations):
            with torch.no_grad():
                power = resid_map.real**2 + resid_map.imag**2
                power = power.masked_fill(~rows_ok[:, :, None], -1.0)
                peak, k = power.reshape(B, -1).max(dim=1)
                i, j = rows_idx[rows, torch.div(k, n_d, rounding_mode="floor")], k % n_d
            # window around the argmax, recomputed with gradient
            ii = i[:, None] + off_a  # (B, Wa)
            jj = j[:, None] + off_d  # (B, Wd)
            valid = ((ii >= 0) & (ii < n_a))[:, :, None] & ((jj >= 0) & (jj < n_d))[:, None, :]
            ii = ii.clamp(0, n_a - 1)
            jj = jj.clamp(0, n_d - 1)
            a_win = self.array.grid_columns(ii)  # (B, Wa, K), learnable
            d_win = phi_d.T[jj]  # (B, Wd, S)
            d_win_h = d_win.conj().resolve_conj().transpose(1, 2)  # (B, S, Wd)
            y_d = y @ d_win_h  # Y~ Phi_d^* on the window (B, K, Wd)
            if sel_a.shape[1]:
                # minus the (gradient-free) fitted atoms sum_t alpha_t a_t rho_t^T
                y_d = y_d - (sel_a.transpose(1, 2) * alpha[:, None, :]) @ (sel_d @ d_win_h)
            m_win = a_win.conj() @ y_d  # (B, Wa, Wd)
            l_win = m_win.real**2 + m_win.imag**2
            # normalised to the argmax cell (the window centre), as model/domp.py: with a sector a
            # window cell outside it may exceed the peak; the softmax tolerates logits > 1/T
            l_max = l_win[:, wa, wd].reshape(B, 1, 1).clamp_min(1e-30)
            logits = (l_win / l_max / self.temperature).masked_fill(~valid, float("-inf"))
            w = torch.softmax(logits.reshape(B, -1), dim=1).reshape(logits.shape).to(RDTYPE)
            theta = (w.sum(2) * grid[ii]).sum(1)
            tau = (w.sum(1) * self.delays_s[jj]).sum(1)
            thetas.append(theta)
            taus.append(tau)
            peaks.append(peak)
            ai.append(i)
            di.append(j)
            with torch.no_grad():
                a_new = self.array.atoms(theta.detach())  # (B, K)
                d_new = delay_vector(tau.detach(), S, self.spacing_hz)  # (B, S)
                sel_a = torch.cat([sel_a, a_new[:, None, :]], dim=1)
                sel_d = torch.cat([sel_d, d_new[:, None, :]], dim=1)
                alpha = joint_ls_gains(y.detach(), sel_a, sel_d).to(CDTYPE)
                # projections of the new atoms on the dictionaries: Phi_a^H a (sector rows), Phi_d^H rho
                pa = torch.cat([pa, (phi_sec_h @ a_new[:, :, None])], dim=2)  # (B, R, t)
                pd = torch.cat([pd, (d_new @ phi_d_conj)[:, :, None]], dim=2)  # (B, N_tau, t)
                resid_map = torch.baddbmm(m0, pa * alpha[:, None, :], pd.transpose(1, 2), alpha=-1)
        return DompResult(
            torch.stack(thetas, 1),
            torch.stack(taus, 1),
            torch.stack(peaks, 1),
            alpha.detach(),
            torch.stack(ai, 1),
            torch.stack(di, 1),
        )


def joint_ls_gains(y: torch.Tensor, atoms_a: torch.Tensor, atoms_d: torch.Tensor) -> torch.Tensor:
    """Joint LS gains (13) of separable atoms a_t rho_t^T (atoms_a (B, t, K), atoms_d (B, t, S))
    against Y (B, K, S) from the t x t Gram system G_st = (a_s^H a_t)(rho_s^H rho_t),
    c_s = a_s^H Y rho_s^*. A pseudo-inverse keeps repeated atoms well defined (as model/omp.py)."""
    yd = (y @ atoms_d.conj().transpose(1, 2)).transpose(1, 2)  # (B, t, K): Y rho_t^*
    rhs = (atoms_a.conj() * yd).sum(-1).to(torch.complex128)  # a_t^H Y rho_t^*
    a = atoms_a.to(torch.complex128)
    d = atoms_d.to(torch.complex128)
    gram = (a.conj() @ a.transpose(1, 2)) * (d.conj() @ d.transpose(1, 2))
    return (torch.linalg.pinv(gram, rtol=1e-6, hermitian=True) @ rhs[..., None])[..., 0]


def sector_rows(grid: torch.Tensor, lo: torch.Tensor | None, hi: torch.Tensor | None, batch: int):
    """Grid indices of the angles inside each frame's sector [lo, hi] (rad): (B, R) indices
    (padded by repeating the last one) and a (B, R) validity mask; R = widest sector.
    A sector narrower than a grid step gets its nearest grid angle. None: the whole grid."""
    n = grid.shape[0]
    dev = grid.device
    if lo is None:
        idx = torch.arange(n, device=dev).expand(batch, n)
        return idx, torch.ones(batch, n, dtype=torch.bool, device=dev)
    lo = torch.as_tensor(lo, dtype=grid.dtype, device=dev)
    hi = torch.as_tensor(hi, dtype=grid.dtype, device=dev)
    first = torch.searchsorted(grid, lo, side="left")  # first grid angle >= lo
    last = torch.searchsorted(grid, hi, side="right") - 1  # last grid angle <= hi
    empty = last < first
    if bool(empty.any()):
        nearest = torch.argmin((grid[None, :] - (0.5 * (lo + hi))[:, None]).abs(), dim=1)
        first = torch.where(empty, nearest, first)
        last = torch.where(empty, nearest, last)
    width = int((last - first).max()) + 1
    idx = first[:, None] + torch.arange(width, device=dev)
    ok = idx <= last[:, None]
    return torch.minimum(idx, last[:, None]), ok
