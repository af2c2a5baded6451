"""The torch twins of the model formulas that the NNBL networks at run time and the trainer
share (each pinned to its numpy original by a parity test, tests/test_trainer_model.py):

  steering_matrix   <->  model.array.steering_matrix   [a(theta)]_k = exp(-j 2 pi p_k sin(theta) / lambda)
  delay_vector      <->  model.ofdm.delay_vector        rho(tau), (1)
  normalise         <->  the power normalisation of (5)
  isac_beam         <->  model.beamforming.isac_beam    the ISAC precoder (5)

Conventions: angles in rad, positions in m, delays in s; complex64 signals, phases in float64.
"""

from __future__ import annotations

import math

import torch

CDTYPE = torch.complex64
RDTYPE = torch.float64


def steering_matrix(positions_m: torch.Tensor, angles_rad: torch.Tensor, wavelength_m: float) -> torch.Tensor:
    """[a(theta)]_k = exp(-j 2 pi p_k sin(theta) / lambda): positions (K,) and angles (...,)
    give (..., K) -- note: angles lead, the antenna axis is last (batched atoms).
    Use ``steering_matrix(p, grid).T`` for the K x N matrix of model.array.steering_matrix."""
    p = positions_m.to(RDTYPE)
    th = torch.as_tensor(angles_rad, dtype=RDTYPE, device=p.device)
    phase = (-2.0 * math.pi / wavelength_m) * torch.sin(th)[..., None] * p
    return torch.polar(torch.ones_like(phase), phase).to(CDTYPE)


def delay_vector(delays_s: torch.Tensor, subcarriers: int, spacing_hz: float) -> torch.Tensor:
    """rho(tau): exp(-j 2 pi s Delta_f tau), s = 0..S-1; (...,) -> (..., S) complex64."""
    tau = torch.as_tensor(delays_s, dtype=RDTYPE)
    s = torch.arange(subcarriers, dtype=RDTYPE, device=tau.device)
    phase = (-2.0 * math.pi * spacing_hz) * tau[..., None] * s
    return torch.polar(torch.ones_like(phase), phase).to(CDTYPE)


def normalise(f: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """sqrt(P) f / ||f|| along the last axis."""
    return math.sqrt(power) * f / torch.linalg.vector_norm(f, dim=-1, keepdim=True)


def isac_beam(f_r: torch.Tensor, f_c: torch.Tensor, eta, phi, power: float = 1.0) -> torch.Tensor:
    """ISAC precoder (5), batched: eta, phi scalars or (B,) tensors; f_r, f_c (..., K)."""
    eta = torch.as_tensor(eta, dtype=RDTYPE, device=f_r.device)
    phi = torch.as_tensor(phi, dtype=RDTYPE, device=f_r.device)
    if eta.ndim:
        eta, phi = eta[..., None], phi[..., None]
    mix = torch.sqrt(eta) * f_r + torch.sqrt(1.0 - eta) * torch.polar(torch.ones_like(phi), phi) * f_c
    return normalise(mix, power)


__all__ = ["CDTYPE", "RDTYPE", "delay_vector", "isac_beam", "normalise", "steering_matrix"]
