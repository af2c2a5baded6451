"""Metrics of Sec. V-B (python/isac/model/metrics.py): p_md (20), p_fa (21), GOSPA (17),
SER (22), RMSE, and calibration of the OMP threshold to a target false-alarm rate."""

import itertools
import math

import numpy as np
import pytest

from gnuradio.isac.model.metrics import (
    calibrate_threshold,
    counts_for_threshold,
    false_alarm_probability,
    gospa,
    gospa_assignment,
    misdetection_probability,
    rmse,
    symbol_error_rate,
)

# --- p_md (20) and p_fa (21) ------------------------------------------------------------


def test_misdetection_probability_hand_computed():
    # T = (2, 3, 0, 1), T^ = (1, 4, 2, 0): sum min = 1 + 3 + 0 + 0 = 4, sum T = 6
    assert misdetection_probability([2, 3, 0, 1], [1, 4, 2, 0]) == pytest.approx(1 - 4 / 6)
    assert misdetection_probability([3, 1], [3, 1]) == 0.0
    assert misdetection_probability([3, 1], [0, 0]) == 1.0
    assert misdetection_probability([3, 1], [5, 5]) == 0.0  # over-detection is not a misdetection
    assert math.isnan(misdetection_probability([0, 0], [1, 2]))
    assert math.isnan(misdetection_probability([], []))


def test_false_alarm_probability_hand_computed():
    # T_max = 5, T = (2, 3, 0, 1), T^ = (1, 4, 2, 0)
    # sum max(T, T^) - T = 0 + 1 + 2 + 0 = 3; sum T_max - T = 3 + 2 + 5 + 4 = 14
    assert false_alarm_probability([2, 3, 0, 1], [1, 4, 2, 0], 5) == pytest.approx(3 / 14)
    assert false_alarm_probability([2, 3], [0, 0], 5) == 0.0  # under-detection is not a false alarm
    assert false_alarm_probability([0, 0], [5, 5], 5) == 1.0
    # the T_max of the denominator matters: T_max = 3 gives 3 / (1 + 0 + 3 + 2)
    assert false_alarm_probability([2, 3, 0, 1], [1, 4, 2, 0], 3) == pytest.approx(3 / 6)
    assert math.isnan(false_alarm_probability([5, 5], [5, 5], 5))


def test_detection_metrics_match_the_sums_of_the_paper_on_random_counts():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 6, 500)
    e = rng.integers(0, 6, 500)
    md = 1 - sum(min(a, b) for a, b in zip(t, e)) / sum(t)
    fa = sum(max(a, b) - a for a, b in zip(t, e)) / sum(5 - a for a in t)
    assert misdetection_probability(t, e) == pytest.approx(md, rel=1e-12)
    assert false_alarm_probability(t, e, 5) == pytest.approx(fa, rel=1e-12)
    assert 0 < md < 1 and 0 < fa < 1


# --- GOSPA (17) -------------------------------------------------------------------------


def gospa_brute_force(P, Q, gamma, p=2.0, mu=2.0):
    """Eq. (17) written out: for |P| <= |P^|, the minimum over all permutations pi of
    {1..|P^|} of sum_{i <= |P|} d^(gamma)(p_i, p^_pi(i))^p, plus gamma^p / mu (|P^| - |P|),
    to the power 1/p; symmetric when |P| > |P^|."""
    P = [np.asarray(x, float) for x in P]
    Q = [np.asarray(x, float) for x in Q]
    if len(P) > len(Q):
        P, Q = Q, P
    best = math.inf
    for pi in itertools.permutations(range(len(Q))):
        s = sum(min(float(np.linalg.norm(P[i] - Q[pi[i]])), gamma) ** p for i in range(len(P)))
        best = min(best, s)
    return (best + gamma**p / mu * (len(Q) - len(P))) ** (1.0 / p)


def random_set(rng, n, spread=100.0):
    return rng.uniform(-spread, spread, size=(n, 2))


def test_gospa_hand_computed():
    # one pair 3-4-5 apart, gamma = 90, p = 2: d = 5
    assert gospa([[0, 0]], [[3, 4]], 90) == pytest.approx(5.0)
    # plus one missed target: (25 + 90^2 / 2)^(1/2)
    assert gospa([[0, 0], [50, 50]], [[3, 4]], 90) == pytest.approx(math.sqrt(25 + 90**2 / 2))
    # pair beyond the cut-off costs gamma^p, not the distance
    assert gospa([[0, 0]], [[300, 400]], 90) == pytest.approx(90.0)
    # empty sets
    assert gospa(np.zeros((0, 2)), np.zeros((0, 2)), 90) == 0.0
    assert gospa(np.zeros((0, 2)), [[1, 2], [3, 4], [5, 6]], 90) == pytest.approx(math.sqrt(3 * 90**2 / 2))
    assert gospa([[1, 2]], [], 10, p=1, mu=1) == pytest.approx(10.0)
    # p = 1, mu = 1: |d| + gamma per cardinality mismatch
    assert gospa([[0, 0], [10, 0]], [[0, 1]], 20, p=1, mu=1) == pytest.approx(1 + 20)


def test_gospa_uses_the_optimal_assignment_not_the_greedy_one():
    # greedy (closest pair first) pairs (1,0)-(0.6,0) and then (0,0)-(1.9,0): 0.16 + 3.61;
    # the optimal assignment (0,0)-(0.6,0), (1,0)-(1.9,0) costs 0.36 + 0.81
    P = [[0.0, 0.0], [1.0, 0.0]]
    Q = [[0.6, 0.0], [1.9, 0.0]]
    d, pairs = gospa_assignment(P, Q, 90)
    assert d == pytest.approx(math.sqrt(0.36 + 0.81))
    assert sorted(pairs) == [(0, 0), (1, 1)]
    assert d == pytest.approx(gospa_brute_force(P, Q, 90))


@pytest.mark.parametrize("p, mu", [(2.0, 2.0), (1.0, 1.0), (3.0, 0.5)])
def test_gospa_equals_brute_force_over_all_permutations(p, mu):
    rng = np.random.default_rng(17)
    checked_cutoff = 0
    for n in range(6):
        for m in range(6):
            for trial in range(3):
                # mixture of near and far points so that both sides of the cut-off occur
                P = random_set(rng, n)
                Q = np.concatenate(
                    [P[: min(n, m)] + rng.normal(0, 20, (min(n, m), 2)), random_set(rng, max(0, m - n), 300)]
                )[rng.permutation(m)]
                gamma = float(rng.choice([15.0, 60.0, 90.0]))
                d, pairs = gospa_assignment(P, Q, gamma, p, mu)
                assert d == pytest.approx(gospa_brute_force(P, Q, gamma, p, mu), rel=1e-10, abs=1e-10)
                assert gospa(P, Q, gamma, p, mu) == d
                dist = np.linalg.norm(P[:, None] - Q[None], axis=-1) if n and m else np.zeros((n, m))
                checked_cutoff += int(np.any(dist >= gamma) and np.any(dist < gamma))
    assert checked_cutoff > 20  # the cut-off was active in many cases


def test_gospa_is_symmetric_in_the_arguments():
    rng = np.random.default_rng(3)
    for _ in range(100):
        P, Q = random_set(rng, rng.integers(0, 6)), random_set(rng, rng.integers(0, 6))
        assert gospa(P, Q, 90) == pytest.approx(gospa(Q, P, 90), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("p, mu", [(2.0, 2.0), (1.0, 1.0), (2.0, 0.5)])
def test_gospa_is_a_metric(p, mu):
    rng = np.random.default_rng(5)
    for _ in range(300):
        X, Y, Z = (random_set(rng, rng.integers(0, 6), 60) for _ in range(3))
        dxy, dyz, dxz = gospa(X, Y, 40, p, mu), gospa(Y, Z, 40, p, mu), gospa(X, Z, 40, p, mu)
        assert gospa(X, X, 40, p, mu) == 0.0  # identity
        assert gospa(X, X[::-1], 40, p, mu) == pytest.approx(0.0, abs=1e-12)  # sets: order is irrelevant
        assert dxy == pytest.approx(gospa(Y, X, 40, p, mu), rel=1e-12, abs=1e-12)  # symmetry
        assert dxz <= dxy + dyz + 1e-9  # triangle inequality
        assert dxy >= 0
        if len(X) != len(Y) or not np.allclose(np.sort(X, axis=0), np.sort(Y, axis=0)):
            assert dxy > 0  # distinct sets are at a positive distance


def test_gospa_assignment_pairs_are_optimal_and_below_the_cutoff():
    rng = np.random.default_rng(11)
    saw_excluded = False
    for _ in range(200):
        n, m = rng.integers(0, 6, 2)
        P, Q = random_set(rng, n), random_set(rng, m)
        gamma = 50.0
        d, pairs = gospa_assignment(P, Q, gamma)
        assert len(pairs) <= min(n, m)
        assert len({i for i, _ in pairs}) == len(pairs) and len({j for _, j in pairs}) == len(pairs)
        for i, j in pairs:
            assert 0 <= i < n and 0 <= j < m
            assert np.linalg.norm(P[i] - Q[j]) < gamma
        # the distance is reproduced from the pairs: paired terms + gamma^p for every other point / mu,
        # where an assigned-but-cut pair costs gamma^p = 2 * gamma^p / mu (mu = 2)
        paired = sum(float(np.linalg.norm(P[i] - Q[j])) ** 2 for i, j in pairs)
        unpaired = (n - len(pairs)) + (m - len(pairs))
        assert d == pytest.approx(math.sqrt(paired + gamma**2 / 2 * unpaired), rel=1e-10, abs=1e-10)
        saw_excluded |= len(pairs) < min(n, m)
    assert saw_excluded


def test_gospa_accepts_flat_positions_and_rejects_bad_parameters():
    assert gospa([0, 0, 3, 4], [[0, 0], [3, 4]], 90) == 0.0
    for cutoff, p, mu in [(0, 2, 2), (-1, 2, 2), (90, 0.5, 2), (90, 2, 0), (90, 2, 2.5)]:
        with pytest.raises(ValueError, match="gospa"):
            gospa([[0, 0]], [[1, 1]], cutoff, p, mu)


# --- SER (22) and RMSE ------------------------------------------------------------------


def test_symbol_error_rate_hand_computed():
    m = np.array([[0, 1, 2, 3], [3, 2, 1, 0]])
    d = np.array([[0, 1, 2, 0], [3, 3, 1, 1]])
    assert symbol_error_rate(m, d) == pytest.approx(3 / 8)  # (1/(BS)) sum 1{m != m^}
    assert symbol_error_rate(m, m) == 0.0
    assert symbol_error_rate(m, (m + 1) % 4) == 1.0
    assert math.isnan(symbol_error_rate(np.zeros((0, 4)), np.zeros((0, 4))))
    with pytest.raises(ValueError, match="shapes differ"):
        symbol_error_rate(m, d[:, :3])


def test_rmse_hand_computed():
    assert rmse([3.0, -4.0]) == pytest.approx(math.sqrt(12.5))
    assert rmse([2.0]) == 2.0
    assert rmse(np.array([-1.0, 1.0, -1.0, 1.0])) == 1.0
    assert math.isnan(rmse([]))


# --- threshold calibration ------------------------------------------------------------------


def test_counts_for_threshold_stops_at_the_first_peak_not_above_it():
    peaks = np.array([[9.0, 7.0, 8.0, 1.0, 6.0], [0.5, 9.0, 9.0, 9.0, 9.0], [5.0, 5.0, 5.0, 5.0, 5.0]])
    np.testing.assert_array_equal(counts_for_threshold(peaks, 6.5), [3, 0, 0])
    np.testing.assert_array_equal(counts_for_threshold(peaks, 5.0), [3, 0, 0])  # strict >
    np.testing.assert_array_equal(counts_for_threshold(peaks, 4.99), [3, 0, 5])
    np.testing.assert_array_equal(counts_for_threshold(peaks, 0.0), [5, 5, 5])
    np.testing.assert_array_equal(counts_for_threshold(peaks, 100.0), [0, 0, 0])


def synthetic_peaks(rng, frames, t_max, integer=False):
    """Peaks like OMP's: T true targets give larger maxima, then noise; not monotone."""
    true = rng.integers(0, t_max + 1, frames)
    noise = rng.exponential(1.0, (frames, t_max))
    signal = rng.exponential(6.0, (frames, t_max)) + 1.0
    peaks = np.where(np.arange(t_max)[None] < true[:, None], signal, noise)
    if integer:
        peaks = np.floor(peaks * 2) + 1.0  # many ties, all above 0
    return peaks, true


def brute_force_threshold(peaks, true, t_max, target):
    """Smallest candidate (every peak value and 0) whose p_fa (21) is <= target."""
    candidates = np.unique(np.concatenate([peaks.ravel(), [0.0]]))
    for c in candidates:
        if false_alarm_probability(true, counts_for_threshold(peaks, c), t_max) <= target:
            return float(c)
    raise AssertionError("no candidate reaches the target")


@pytest.mark.parametrize("integer", [False, True])
@pytest.mark.parametrize("target", [1e-2, 0.05, 0.2, 0.5])
def test_calibrated_threshold_is_the_smallest_meeting_the_false_alarm_target(integer, target):
    rng = np.random.default_rng(int(target * 1000) + integer)
    t_max = 5
    minimality_checked = 0
    for _ in range(8):
        frames = int(rng.integers(20, 120))
        peaks, true = synthetic_peaks(rng, frames, t_max, integer)
        delta = calibrate_threshold(peaks, true, t_max, target)
        fa = false_alarm_probability(true, counts_for_threshold(peaks, delta), t_max)
        assert fa <= target
        assert delta == brute_force_threshold(peaks, true, t_max, target)
        # minimality: the next lower candidate (or anything just below delta) exceeds the target
        candidates = np.unique(np.concatenate([peaks.ravel(), [0.0]]))
        lower = candidates[candidates < delta]
        if lower.size:
            assert false_alarm_probability(true, counts_for_threshold(peaks, lower[-1]), t_max) > target
            below = np.nextafter(delta, -np.inf)
            assert false_alarm_probability(true, counts_for_threshold(peaks, below), t_max) > target
            minimality_checked += 1
    assert minimality_checked >= 6


def test_calibration_is_not_trivial_on_the_synthetic_peaks():
    rng = np.random.default_rng(99)
    peaks, true = synthetic_peaks(rng, 200, 5)
    delta = calibrate_threshold(peaks, true, 5, 0.05)
    fa = false_alarm_probability(true, counts_for_threshold(peaks, delta), 5)
    md = misdetection_probability(true, counts_for_threshold(peaks, delta))
    assert 0 < delta < peaks.max()
    assert 0 < fa <= 0.05 and md < 0.5
    # a looser target never needs a higher threshold
    assert calibrate_threshold(peaks, true, 5, 0.2) <= delta <= calibrate_threshold(peaks, true, 5, 0.01)


def test_calibration_hand_computed():
    # T_max = 2; room = (2-0) + (2-1) + (2-0) = 5 possible false alarms
    peaks = np.array(
        [
            [3.0, 1.0],  # T = 0
            [9.0, 2.0],  # T = 1
            [4.0, 5.0],
        ]
    )  # T = 0, running minimum (4, 4)
    true = np.array([0, 1, 0])
    # delta = 4: counts (0, 1, 0), p_fa = 0; delta = 3: counts (0, 1, 2), p_fa = 2/5;
    # delta = 2: counts (1, 1, 2) -> 3/5; delta = 1: (1, 2, 2) -> 4/5; delta = 0: (2, 2, 2) -> 5/5
    assert calibrate_threshold(peaks, true, 2, 0.1) == 4.0
    assert calibrate_threshold(peaks, true, 2, 0.4) == 3.0
    assert calibrate_threshold(peaks, true, 2, 0.7) == 2.0
    assert calibrate_threshold(peaks, true, 2, 0.99) == 1.0


@pytest.mark.parametrize("p_fa", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_calibration_rejects_p_fa_outside_the_open_unit_interval(p_fa):
    peaks, true = synthetic_peaks(np.random.default_rng(0), 10, 5)
    with pytest.raises(ValueError, match=r"p_fa must be in \(0, 1\)"):
        calibrate_threshold(peaks, true, 5, p_fa)


def test_calibration_needs_room_for_a_false_alarm():
    with pytest.raises(ValueError, match="no false alarm is possible"):
        calibrate_threshold(np.ones((3, 2)), np.array([2, 2, 2]), 2, 0.01)
