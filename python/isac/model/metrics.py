"""Performance metrics of Sec. V-B: p_md (20), p_fa (21), GOSPA (17), SER (22), RMSE,
and calibration of the OMP threshold delta to a target false-alarm rate."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def misdetection_probability(true_counts, est_counts) -> float:
    """p_md = 1 - sum_i min(T_i, T^_i) / sum_i T_i, eq. (20). NaN when no targets."""
    t = np.asarray(true_counts, dtype=np.float64)
    e = np.asarray(est_counts, dtype=np.float64)
    total = t.sum()
    return float(1.0 - np.minimum(t, e).sum() / total) if total > 0 else float("nan")


def false_alarm_probability(true_counts, est_counts, max_targets: int) -> float:
    """p_fa = sum_i (max(T_i, T^_i) - T_i) / sum_i (T_max - T_i), eq. (21)."""
    t = np.asarray(true_counts, dtype=np.float64)
    e = np.asarray(est_counts, dtype=np.float64)
    room = (max_targets - t).sum()
    return float((np.maximum(t, e) - t).sum() / room) if room > 0 else float("nan")


def check_gospa_parameters(cutoff: float, p: float, mu: float) -> None:
    """ValueError unless the GOSPA (17) cut-off gamma > 0, order p >= 1 and 0 < mu <= 2."""
    if cutoff <= 0 or p < 1 or not (0 < mu <= 2):
        raise ValueError(f"gospa: need cutoff > 0, p >= 1, 0 < mu <= 2; got {cutoff}, {p}, {mu}")


def gospa_costs(true_pos: np.ndarray, est_pos: np.ndarray, cutoff: float, p: float = 2.0):
    """Distances ||x_i - y_j|| (m) and GOSPA assignment costs min(d, gamma)^p of every pair of
    positions (..., n, 2) and (..., m, 2), batched over the leading axes: (dist, cost), each
    (..., n, m)."""
    P = np.asarray(true_pos, dtype=np.float64)
    Q = np.asarray(est_pos, dtype=np.float64)
    dist = np.linalg.norm(P[..., :, None, :] - Q[..., None, :, :], axis=-1)
    return dist, np.minimum(dist, cutoff) ** p


def gospa_from_costs(dist: np.ndarray, cost: np.ndarray, cutoff: float, p: float = 2.0, mu: float = 2.0):
    """GOSPA (17) of one frame from its n x m ``dist`` and ``cost`` (:func:`gospa_costs`): the
    optimal assignment of the costs (scipy's linear_sum_assignment) plus gamma^p / mu per
    unassigned position, to the power 1/p. Returns (distance, pairs below the cut-off)."""
    n, m = cost.shape
    pairs: list[tuple[int, int]] = []
    total = cutoff**p / mu * abs(n - m)
    if n and m:
        r, c = linear_sum_assignment(cost)
        total += cost[r, c].sum()
        pairs = [(int(i), int(j)) for i, j in zip(r, c) if dist[i, j] < cutoff]
    return float(total ** (1.0 / p)), pairs


def gospa_assignment(true_pos: np.ndarray, est_pos: np.ndarray, cutoff: float, p: float = 2.0, mu: float = 2.0):
    """GOSPA distance (17) between two finite sets of positions (n x 2 and m x 2, m) with
    cut-off gamma = ``cutoff`` (m), order p and cardinality weight mu, computed with an exact
    optimal assignment (Hungarian method, scipy's linear_sum_assignment).

    Returns (distance, pairs) where pairs is a list of (true index, estimate index) of the
    optimal assignment whose distance is below the cut-off."""
    P = np.asarray(true_pos, dtype=np.float64).reshape(-1, 2)
    Q = np.asarray(est_pos, dtype=np.float64).reshape(-1, 2)
    check_gospa_parameters(cutoff, p, mu)
    return gospa_from_costs(*gospa_costs(P, Q, cutoff, p), cutoff, p, mu)


def gospa(true_pos, est_pos, cutoff: float, p: float = 2.0, mu: float = 2.0) -> float:
    """GOSPA distance (17) (m); see :func:`gospa_assignment`."""
    return gospa_assignment(true_pos, est_pos, cutoff, p, mu)[0]


def symbol_error_rate(messages, detected) -> float:
    """SER = mean over frames and subcarriers of 1{m != m^}, eq. (22)."""
    m = np.asarray(messages)
    d = np.asarray(detected)
    if m.shape != d.shape:
        raise ValueError(f"symbol_error_rate: shapes differ: {m.shape} vs {d.shape}")
    return float(np.mean(m != d)) if m.size else float("nan")


def rmse(errors) -> float:
    """Root mean squared error of a sequence of errors (NaN when empty)."""
    e = np.asarray(errors, dtype=np.float64)
    return float(np.sqrt(np.mean(e**2))) if e.size else float("nan")


def counts_for_threshold(peaks: np.ndarray, threshold: float) -> np.ndarray:
    """Detected counts when OMP stops at the first map maximum <= threshold (Alg. 1, line 6)."""
    return np.cumprod(np.asarray(peaks) > threshold, axis=-1).sum(axis=-1)


def calibrate_threshold(peaks: np.ndarray, true_counts: np.ndarray, max_targets: int, p_fa: float) -> float:
    """Smallest threshold delta whose false-alarm rate (21) on calibration frames is <= p_fa.

    ``peaks`` (B, T_max) are the map maxima of T_max OMP iterations per frame. The count for
    delta is the number of leading peaks > delta, i.e. the number of entries of the running
    minimum m_b of the peaks above delta (m_b is non-increasing). Frame b's false alarms,
    max(count - T_b, 0), are therefore the entries m_{b,i}, i >= T_b, above delta, so
    p_fa(delta) = #{e in E : e > delta} / sum_b (T_max - T_b) with E = {m_{b,i} : i >= T_b}.
    With n = floor(p_fa * room) allowed false alarms, the smallest such threshold is the
    (n+1)-th largest element of E (0 when E has at most n elements): exact, O(B T log(B T))."""
    if not 0 < p_fa < 1:
        raise ValueError(f"p_fa must be in (0, 1), got {p_fa}")
    pk = np.asarray(peaks, dtype=np.float64)
    t = np.asarray(true_counts, dtype=np.int64)
    room = (max_targets - t).sum()
    if room <= 0:
        raise ValueError("calibrate_threshold: every calibration frame has T_max targets; no false alarm is possible")
    run_min = np.minimum.accumulate(pk, axis=1)
    beyond = np.arange(pk.shape[1])[None, :] >= t[:, None]
    excess = np.sort(run_min[beyond])[::-1]  # E, descending
    allowed = int(np.floor(p_fa * room + 1e-9))
    return float(excess[allowed]) if excess.size > allowed else 0.0
