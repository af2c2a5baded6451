"""scoring.Scores keeps running statistics (O(1) per frame) that give the same metrics and 95 %
intervals as the per-frame-list formulas it replaced: p_md (20), p_fa (21) and SER (22) and
their counts exactly, mean GOSPA (17) and RMSEs to rounding, the intervals to 1e-9."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from gnuradio.isac.experiments.common import mean_interval, rmse_interval, wilson_interval
from gnuradio.isac.model.metrics import false_alarm_probability, gospa_assignment, misdetection_probability, rmse
from gnuradio.isac.model.scene import positions
from gnuradio.isac.scoring import RunningMean, Scores, normal_interval

T_MAX, CUTOFF, P, MU = 5, 90.0, 2.0, 2.0


class ListScores:
    """The list-based reference: per-frame lists and the formulas applied to them at the end."""

    def __init__(self):
        self.true_counts, self.est_counts, self.gospa, self.angle_err_deg, self.range_err_m = [], [], [], [], []

    def add_sensing(self, ta, tr, ea, er):
        d, pairs = gospa_assignment(positions(ta, tr), positions(ea, er), CUTOFF, P, MU)
        self.gospa.append(d)
        for i, j in pairs:
            self.angle_err_deg.append(np.rad2deg(ea[j] - ta[i]))
            self.range_err_m.append(er[j] - tr[i])
        self.true_counts.append(len(ta))
        self.est_counts.append(len(ea))


def random_frames(rng, n):
    """``n`` frames of 0..T_MAX true targets and 0..T_MAX detections near or away from them."""
    for _ in range(n):
        t, e = rng.integers(0, T_MAX + 1, size=2)
        ta, tr = rng.uniform(-1.0, 1.0, t), rng.uniform(10.0, 190.0, t)
        ea, er = rng.uniform(-1.0, 1.0, e), rng.uniform(10.0, 190.0, e)
        k = min(t, e)
        ea[:k] = ta[:k] + rng.normal(0.0, 0.01, k)  # most detections near a target
        er[:k] = tr[:k] + rng.normal(0.0, 2.0, k)
        yield ta, tr, ea, er


def both(seed, n):
    rng = np.random.default_rng(seed)
    new, ref = Scores(T_MAX, CUTOFF, P, MU), ListScores()
    for ta, tr, ea, er in random_frames(rng, n):
        new.add_sensing(ta, tr, ea, er)
        ref.add_sensing(ta, tr, ea, er)
    errors = rng.integers(0, 50, n)
    for e in errors:
        new.add_symbols(int(e), 256)
    return new, ref, int(errors.sum()), 256 * n


def close(a, b, rel):
    return all((x != x and y != y) or x == pytest.approx(y, rel=rel, abs=0.0) for x, y in zip(a, b))


@pytest.mark.parametrize("seed, n", [(1, 1), (2, 2), (3, 57), (4, 3000)])
def test_summary_equals_the_list_formulas(seed, n):
    new, ref, errors, symbols = both(seed, n)
    s = new.summary()
    t, e = ref.true_counts, ref.est_counts
    assert s["p_md"] == misdetection_probability(t, e) or (math.isnan(s["p_md"]) and sum(t) == 0)
    assert s["p_fa"] == false_alarm_probability(t, e, T_MAX)
    assert s["ser"] == errors / symbols
    assert s["frames"] == len(ref.gospa) == n
    assert s["gospa"] == pytest.approx(float(np.mean(ref.gospa)), rel=1e-12, abs=0.0)
    for key, errs in (("angle_rmse_deg", ref.angle_err_deg), ("range_rmse_m", ref.range_err_m)):
        want = rmse(errs)
        assert (math.isnan(s[key]) and not errs) or s[key] == pytest.approx(want, rel=1e-12, abs=0.0), key


@pytest.mark.parametrize("seed, n", [(5, 2), (6, 40), (7, 5000)])
def test_counts_and_intervals_equal_the_list_formulas(seed, n):
    """The counts behind the Wilson intervals exactly; GOSPA and RMSE intervals to 1e-9."""
    new, ref, errors, symbols = both(seed, n)
    t, e = np.asarray(ref.true_counts, np.float64), np.asarray(ref.est_counts, np.float64)
    assert new.true_targets == t.sum() and new.missed == (t - np.minimum(t, e)).sum()
    assert new.false_alarms == (np.maximum(t, e) - t).sum() and new.false_alarm_room == (T_MAX - t).sum()
    assert (new.symbol_errors, new.symbols) == (errors, symbols)
    assert new.matched == len(ref.angle_err_deg) == len(ref.range_err_m)
    assert wilson_interval(new.missed, new.true_targets) == wilson_interval((t - np.minimum(t, e)).sum(), t.sum())
    assert close(new.gospa_interval(), mean_interval(ref.gospa), 1e-9)
    assert close(new.rmse_interval("angle"), rmse_interval(ref.angle_err_deg), 1e-9)
    assert close(new.rmse_interval("range"), rmse_interval(ref.range_err_m), 1e-9)
    if n > 2:  # real intervals, not NaN placeholders
        g, lo, hi = new.gospa_interval()
        assert lo < g < hi


def test_rmse_interval_names_the_allowed_kinds():
    with pytest.raises(ValueError, match="kind must be 'angle', 'range' or 'speed', got 'velocity'"):
        Scores(T_MAX, CUTOFF, P, MU).rmse_interval("velocity")


def test_empty_scores_are_nan_not_errors():
    s = Scores(T_MAX, CUTOFF, P, MU)
    out = s.summary()
    assert out["frames"] == 0
    assert all(math.isnan(out[k]) for k in ("p_md", "p_fa", "gospa", "ser", "angle_rmse_deg", "range_rmse_m"))
    assert all(math.isnan(v) for v in s.gospa_interval() + s.rmse_interval("range"))


@pytest.mark.parametrize("offset, spread", [(0.0, 1.0), (1e6, 1e-3), (-50.0, 30.0), (1e-9, 1e-12)])
def test_running_mean_equals_numpy(offset, spread):
    """Mean and sample standard deviation (ddof 1) of a stream, also with a spread far below
    the mean (where a naive sum of squares cancels)."""
    x = offset + spread * np.random.default_rng(8).standard_normal(20000)
    r = RunningMean()
    for v in x:
        r.add(v)
    assert r.n == x.size
    assert r.mean() == pytest.approx(float(x.mean()), rel=1e-12)
    assert r.std() == pytest.approx(float(x.std(ddof=1)), rel=1e-9)
    assert close(r.interval(), mean_interval(x), 1e-9)


def test_normal_interval_is_the_closed_form():
    m, lo, hi = normal_interval(3.0, 2.0, 16, z=1.5)
    assert (m, lo, hi) == (3.0, 3.0 - 1.5 * 2.0 / 4.0, 3.0 + 1.5 * 2.0 / 4.0)
    assert math.isnan(normal_interval(3.0, float("nan"), 1)[1])


def deep_size(obj, seen=None) -> int:
    """Bytes held by ``obj`` and everything it references (containers, attributes, slots)."""
    if isinstance(obj, (int, float)) and abs(obj) < 2**62:  # a machine word, whatever its value
        return 8
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        size += sum(deep_size(v, seen) for v in obj)
    elif isinstance(obj, np.ndarray):
        size += obj.nbytes
    if hasattr(obj, "__dict__"):
        size += deep_size(vars(obj), seen)
    for slot in getattr(type(obj), "__slots__", ()):
        if hasattr(obj, slot):
            size += deep_size(getattr(obj, slot), seen)
    return size


def test_memory_does_not_grow_with_frames():
    """The scores hold running statistics only: the same bytes after 200 and after 4000 frames."""
    rng = np.random.default_rng(9)
    s = Scores(T_MAX, CUTOFF, P, MU)
    sizes = []
    for i, (ta, tr, ea, er) in enumerate(random_frames(rng, 4000), 1):
        s.add_sensing(ta, tr, ea, er)
        s.add_symbols(3, 256)
        if i in (200, 4000):
            sizes.append(deep_size(s))
    assert s.matched > 4000  # many pairs were scored
    assert sizes[1] == sizes[0]


class SequentialRunningMean:
    """The per-value update of RunningMean as first written (compensated sum, Welford M2), the
    reference of its batched form."""

    def __init__(self):
        self.n, self.total, self.comp, self.m2 = 0, 0.0, 0.0, 0.0

    def add(self, x):
        x = float(x)
        old = (self.total + self.comp) / self.n if self.n else 0.0
        self.n += 1
        t = self.total + x
        self.comp += (self.total - t) + x if abs(self.total) >= abs(x) else (x - t) + self.total
        self.total = t
        self.m2 += (x - old) * (x - (self.total + self.comp) / self.n)

    def state(self):
        return self.n, self.total, self.comp, self.m2


def state(r: RunningMean):
    return r.n, r._sum, r._comp, r._m2


def test_running_mean_add_many_is_the_sequential_update_bit_for_bit():
    rng = np.random.default_rng(4)
    values = np.concatenate([rng.normal(1e6, 1e-3, 300), rng.exponential(5.0, 300), [0.0, -1e-300, 1e300, -1e300]])
    ref, one, many = SequentialRunningMean(), RunningMean(), RunningMean()
    for v in values:
        ref.add(v)
        one.add(v)
    many.add_many(values[:100])
    many.add_many(values[100:])
    assert state(one) == ref.state()
    assert state(many) == ref.state()


def test_add_sensing_batch_equals_frame_by_frame_scoring_bit_for_bit():
    """Batched scoring (padded rows, garbage beyond the counts) reproduces the per-frame
    GOSPA assignment and the running statistics exactly, in frame order."""
    rng = np.random.default_rng(11)
    frames = list(random_frames(rng, 400))
    ref = {"gospa": SequentialRunningMean(), "angle": SequentialRunningMean(), "range": SequentialRunningMean()}
    counts = [0, 0, 0, 0]
    for ta, tr, ea, er in frames:  # the per-frame code the batch replaced
        d, pairs = gospa_assignment(positions(ta, tr), positions(ea, er), CUTOFF, P, MU)
        ref["gospa"].add(d)
        for i, j in pairs:  # squares as x * x (numpy's scalar ** 2 calls pow: 1 ulp off at times)
            a, r = np.rad2deg(ea[j] - ta[i]), er[j] - tr[i]
            ref["angle"].add(a * a)
            ref["range"].add(r * r)
        t, e = len(ta), len(ea)
        counts = [counts[0] + t, counts[1] + min(t, e), counts[2] + max(t, e) - t, counts[3] + T_MAX - t]
    batched = Scores(T_MAX, CUTOFF, P, MU)
    width = T_MAX + 2
    for start in range(0, len(frames), 37):  # uneven batches
        chunk = frames[start : start + 37]
        arrays = rng.uniform(-1e3, 1e3, (4, len(chunk), width))  # garbage beyond each count
        nt = np.array([len(f[0]) for f in chunk])
        ne = np.array([len(f[2]) for f in chunk])
        for b, f in enumerate(chunk):
            for q in range(4):
                arrays[q, b, : len(f[q])] = f[q]
        g = batched.add_sensing_batch(arrays[0], arrays[1], nt, arrays[2], arrays[3], ne)
        assert g.shape == (len(chunk),)
    assert state(batched.gospa_stats) == ref["gospa"].state()
    assert state(batched.angle_sq) == ref["angle"].state()
    assert state(batched.range_sq) == ref["range"].state()
    assert [batched.true_targets, batched.detected_targets, batched.false_alarms, batched.false_alarm_room] == counts
    assert batched.angle_sq.n > 100  # the frames do have assigned pairs


def test_add_sensing_batch_refuses_counts_beyond_the_rows():
    s = Scores(T_MAX, CUTOFF, P, MU)
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match="exceeds its row width"):
        s.add_sensing_batch(z, z, [1, 4], z, z, [0, 0])
    with pytest.raises(ValueError, match="negative"):
        s.add_sensing_batch(z, z, [1, -1], z, z, [0, 0])
    with pytest.raises(ValueError, match="2 true counts but 1 detection counts"):
        s.add_sensing_batch(z, z, [1, 1], z, z, [0])
    assert s.frames == 0
    assert s.add_sensing_batch(z[:0], z[:0], [], z[:0], z[:0], []).shape == (0,)


def test_padded_rows_lays_ragged_rows_out_with_their_lengths():
    from gnuradio.isac.scoring import padded_rows

    out, lengths = padded_rows([[1.0, 2.0], [], 3.5, np.array([4.0, 5.0, 6.0])])
    np.testing.assert_array_equal(lengths, [2, 0, 1, 3])
    np.testing.assert_array_equal(out, [[1, 2, 0], [0, 0, 0], [3.5, 0, 0], [4, 5, 6]])
    out, lengths = padded_rows([[], []])
    assert out.shape == (2, 1) and not out.any() and lengths.tolist() == [0, 0]
    assert padded_rows([])[0].shape == (0, 1)


# --- merging the scores of chunks (isac-eval --workers N) ------------------------------------------------


def scored(frames, errors):
    s = Scores(T_MAX, CUTOFF, P, MU)
    for (ta, tr, ea, er), e in zip(frames, errors):
        s.add_sensing(ta, tr, ea, er)
        s.add_symbols(int(e), 256)
    return s


@pytest.mark.parametrize("chunks", [(1,), (1, 1), (3, 4), (1, 999, 2000), (500,) * 6, (0, 7, 0)])
def test_merged_chunks_equal_one_pass(chunks):
    """Scores.merge of the chunks of a stream, in order, against one pass over the same frames:
    every count exactly, the running means, spreads and intervals (GOSPA, RMSEs) to 1e-12."""
    rng = np.random.default_rng(sum(chunks) + len(chunks))
    frames = list(random_frames(rng, sum(chunks)))
    errors = rng.integers(0, 50, len(frames))
    one = scored(frames, errors)
    merged, first = Scores(T_MAX, CUTOFF, P, MU), 0
    for n in chunks:
        merged.merge(scored(frames[first : first + n], errors[first : first + n]))
        first += n
    for name in ("true_targets", "detected_targets", "false_alarms", "false_alarm_room", "symbol_errors", "symbols"):
        assert getattr(merged, name) == getattr(one, name), name
    for stats in ("gospa_stats", "angle_sq", "range_sq"):
        a, b = getattr(merged, stats), getattr(one, stats)
        assert a.n == b.n and a.n > 0, stats
        assert close((a.mean(), a.std()), (b.mean(), b.std()), 1e-12), stats
    assert merged.summary()["frames"] == one.summary()["frames"] == len(frames)
    assert close(list(merged.summary().values()), list(one.summary().values()), 1e-12)
    assert close(merged.gospa_interval(), one.gospa_interval(), 1e-12)
    assert close(
        merged.rmse_interval("angle") + merged.rmse_interval("range"),
        one.rmse_interval("angle") + one.rmse_interval("range"),
        1e-12,
    )


@pytest.mark.parametrize("offset, spread", [(0.0, 1.0), (1e6, 1e-3), (-50.0, 30.0)])
def test_merged_running_means_equal_numpy(offset, spread):
    """RunningMean.merge of uneven pieces (one empty) against numpy over the whole stream, with a
    spread far below the mean too (Chan's update keeps it, a merge of sums of squares would not)."""
    x = offset + spread * np.random.default_rng(3).standard_normal(20000)
    merged = RunningMean()
    for piece in np.split(x, [0, 1, 700, 7000, 7000, 19999]):
        part = RunningMean()
        part.add_many(piece)
        merged.merge(part)
    assert merged.n == x.size
    assert merged.mean() == pytest.approx(float(x.mean()), rel=1e-12)
    assert merged.std() == pytest.approx(float(x.std(ddof=1)), rel=1e-9)


def test_merge_refuses_scores_of_other_parameters():
    s = Scores(T_MAX, CUTOFF, P, MU)
    with pytest.raises(
        ValueError,
        match=r"\(T_max, gamma, p, mu, w\) must be equal, got \(5, 90.0, 2.0, 2.0, 0.0\) here "
        r"and \(5, 60.0, 2.0, 2.0, 0.0\)",
    ):
        s.merge(Scores(T_MAX, 60.0, P, MU))
    s.merge(Scores(T_MAX, CUTOFF, P, MU))  # nothing scored on either side: still nothing
    assert (s.frames, s.true_targets, s.symbols, s.matched) == (0, 0, 0, 0) and math.isnan(s.summary()["gospa"])
