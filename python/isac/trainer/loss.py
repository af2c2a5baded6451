"""Training losses of Sec. IV-C / V: GOSPA (18) with |P| = |P^| = T, and the single-target MSE.

The optimal assignment of (18) is found exactly by the Hungarian method (scipy's
linear_sum_assignment, as model/metrics.gospa) on the DETACHED cut-off costs; the loss is
then the differentiable sum over the chosen pairs. No permutations are enumerated (T!
grows too fast), and the assignment carries no gradient (it is piecewise constant).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


def positions(angles_rad: torch.Tensor, ranges_m: torch.Tensor) -> torch.Tensor:
    """p = [R cos(theta), R sin(theta)] (m), eq. (2); (...,) -> (..., 2). Twin of model.scene.positions."""
    return torch.stack([ranges_m * torch.cos(angles_rad), ranges_m * torch.sin(angles_rad)], dim=-1)


def gospa_equal(
    true_pos: torch.Tensor,
    est_pos: torch.Tensor,
    counts: torch.Tensor,
    cutoff: float,
    p: float = 2.0,
    eps: float = 1e-12,
) -> torch.Tensor:
    """GOSPA (18) per frame for equal-size sets: ``true_pos`` and ``est_pos`` (B, T_max, 2),
    of which the first ``counts[b]`` rows are frame b's targets / estimates.

        d_b = ( min_pi sum_{i <= T_b} min(||p_i - p^_pi(i)||, gamma)^p )^(1/p)

    Returns (B,) (0 for frames with T_b = 0). ``eps`` inside the root keeps its gradient
    finite at d = 0."""
    B, T = true_pos.shape[:2]
    diff = true_pos[:, :, None, :] - est_pos[:, None, :, :]  # (B, T, T, 2)
    dist = torch.sqrt((diff**2).sum(-1) + eps)
    cost = torch.clamp(dist, max=cutoff) ** p
    cost_np = cost.detach().cpu().numpy()
    counts_np = np.asarray(torch.as_tensor(counts).cpu(), dtype=np.int64)
    bi, ri, ci = [], [], []
    for b in range(B):
        n = int(counts_np[b])
        if n:
            r, c = linear_sum_assignment(cost_np[b, :n, :n])
            bi.extend([b] * n)
            ri.extend(r.tolist())
            ci.extend(c.tolist())
    total = torch.zeros(B, dtype=cost.dtype, device=cost.device)
    if bi:
        dev = cost.device
        picked = cost[torch.as_tensor(bi, device=dev), torch.as_tensor(ri, device=dev), torch.as_tensor(ci, device=dev)]
        total = total.index_add(0, torch.as_tensor(bi, device=dev), picked)
    has = torch.as_tensor(counts_np > 0, device=cost.device)
    return torch.where(has, (total + eps) ** (1.0 / p), torch.zeros_like(total))


def mse_single(true_pos: torch.Tensor, est_pos: torch.Tensor) -> torch.Tensor:
    """Single-target MSE loss of Sec. V-C: ||p - p^||^2 per frame; (B, 2) -> (B,)."""
    return ((true_pos - est_pos) ** 2).sum(-1)
