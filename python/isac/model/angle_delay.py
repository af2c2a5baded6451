"""The angle-delay map of Algorithm 1, line 5 (numpy reference of the C++ kernel):

    M = Phi_a^H Y~ Phi_d^*            (complex, N_theta x N_tau)
    L_ij = |M_ij|^2 = |[Phi_a]_{:,i}^H Y~ [Phi_d]_{:,j}^*|^2

computed in the cheaper product order (Y~ Phi_d^* first: 3.9x fewer MACs for the
paper's sizes; same map to rounding). For a frame of M OFDM symbols the map has a third, speed,
axis: :func:`angle_delay_doppler_map_complex`."""

from __future__ import annotations

import numpy as np


def _check(y: np.ndarray, phi_a: np.ndarray, phi_d: np.ndarray) -> None:
    if y.ndim < 2:
        raise ValueError(f"angle_delay_map: Y must be K x S or B x K x S, got shape {y.shape}")
    K, S = y.shape[-2:]
    if phi_a.ndim != 2 or phi_a.shape[0] != K:
        raise ValueError(f"angle_delay_map: Phi_a must be K x N_theta with K = {K}, got shape {phi_a.shape}")
    if phi_d.ndim != 2 or phi_d.shape[0] != S:
        raise ValueError(f"angle_delay_map: Phi_d must be S x N_tau with S = {S}, got shape {phi_d.shape}")


def angle_delay_map_complex(y: np.ndarray, phi_a: np.ndarray, phi_d: np.ndarray) -> np.ndarray:
    """Complex map M = Phi_a^H Y Phi_d^* for Y of shape (K, S) or (B, K, S) (complex64)."""
    y = np.asarray(y, dtype=np.complex64)
    phi_a = np.asarray(phi_a, dtype=np.complex64)
    phi_d = np.asarray(phi_d, dtype=np.complex64)
    _check(y, phi_a, phi_d)
    return phi_a.conj().T @ (y @ phi_d.conj())


def angle_delay_map(y: np.ndarray, phi_a: np.ndarray, phi_d: np.ndarray) -> np.ndarray:
    """Power map L = |Phi_a^H Y Phi_d^*|^2 (float32), Algorithm 1 line 5."""
    m = angle_delay_map_complex(y, phi_a, phi_d)
    return (m.real**2 + m.imag**2).astype(np.float32)


def map_argmax(power_map: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row index i, column index j and value of the maximum of L (eq. 10), per frame
    for a (B, N_theta, N_tau) stack."""
    L = np.asarray(power_map)
    flat = L.reshape(L.shape[:-2] + (-1,))
    k = np.argmax(flat, axis=-1)
    value = np.take_along_axis(flat, k[..., None], axis=-1)[..., 0]
    i, j = np.unravel_index(k, L.shape[-2:])
    return i, j, value


def angle_delay_doppler_map_complex(
    y: np.ndarray, phi_a: np.ndarray, phi_d: np.ndarray, phi_v: np.ndarray
) -> np.ndarray:
    """The map of a frame of M OFDM symbols over angle, delay and speed, mode by mode:

        M[i, j, l] = sum_m sum_k sum_s conj(Phi_a[k, i]) Y~[m, k, s] conj(Phi_d[s, j]) conj(Phi_v[m, l]),

    the correlation of Y~ (M, K, S) or (B, M, K, S) with the separable atom
    a(theta_i) (x) rho(tau_j) (x) d(v_l) (model/doppler.py), never formed as a matrix: the Doppler
    mode first (Y~ contracted with Phi_v^* over the symbols: (B, N_v, K, S)), then the angle-delay
    map (10) of each of the N_v slices. Returns (B, N_theta, N_tau, N_v) complex64 ((N_theta,
    N_tau, N_v) for one frame). For M = 1 and the one speed 0 it is the map (10)."""
    y = np.asarray(y, dtype=np.complex64)
    one = y.ndim == 3
    if one:
        y = y[None]
    if y.ndim != 4:
        raise ValueError(f"angle_delay_doppler_map: Y must be M x K x S or B x M x K x S, got shape {y.shape}")
    phi_v = np.asarray(phi_v, dtype=np.complex64)
    if phi_v.ndim != 2 or phi_v.shape[0] != y.shape[1]:
        raise ValueError(
            f"angle_delay_doppler_map: Phi_v must be M x N_v with M = {y.shape[1]}, got shape {phi_v.shape}"
        )
    z = np.einsum("bmks,ml->blks", y, phi_v.conj(), optimize=True)  # Doppler mode: (B, N_v, K, S)
    m = angle_delay_map_complex(z, phi_a, phi_d)  # (B, N_v, N_theta, N_tau)
    out = np.ascontiguousarray(np.moveaxis(m, 1, -1))
    return out[0] if one else out


def angle_delay_doppler_map(y: np.ndarray, phi_a: np.ndarray, phi_d: np.ndarray, phi_v: np.ndarray) -> np.ndarray:
    """Power map |M|^2 (float32) of :func:`angle_delay_doppler_map_complex`: (B, N_theta, N_tau,
    N_v), or (N_theta, N_tau, N_v) for one frame (the numpy reference of the C++ power map)."""
    m = angle_delay_doppler_map_complex(y, phi_a, phi_d, phi_v)
    return (m.real**2 + m.imag**2).astype(np.float32)


def map_views(power: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two pictures of an angle-delay-Doppler power map (..., N_theta, N_tau, N_v):

    - the angle-delay view, its maximum over the speeds (..., N_theta, N_tau): cell (i, j) is the
      strongest echo at angle i and delay j whatever its speed (for M = 1 and the one speed 0, the
      map (10) itself);
    - the range-velocity view, its maximum over the angles, speed-major (..., N_v, N_tau): cell
      (l, j) is the strongest echo at speed l and delay j whatever its angle.

    Both keep the map's scale (a maximum, not a sum)."""
    p = np.asarray(power)
    return p.max(axis=-1), np.swapaxes(p.max(axis=-3), -1, -2)
