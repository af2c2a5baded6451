"""Scoring of a sensing and communication link (Sec. V-B): one accumulator of per-frame
outcomes, used by the offline evaluation (``evaluation``), the experiments and the streaming
metrics block alike.

Per frame: GOSPA (17) between the true and the detected positions (2), with its optimal
assignment; the angle and range errors of the assigned pairs (for the RMSEs); the true and
detected counts (for p_md (20) and p_fa (21)); symbol errors of the ML detector (for the SER (22)).

Everything is kept as running statistics (integer counts, and count / mean / spread of the
GOSPA values and of the squared errors), so adding a frame and reading the summary or an
interval cost O(1) time and memory however many frames were scored. Scores of chunks of a
stream scored apart (on Dask workers: isac-eval --workers N) merge into the scores of the
whole stream (Scores.merge: the counts exact, the means and spreads to rounding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .model.metrics import check_gospa_parameters, gospa_costs, gospa_from_costs
from .model.scene import positions

#: two-sided 95 % normal quantile used by every confidence interval of the experiments
Z95 = 1.959963984540054


def normal_interval(mean: float, std: float, n: int, z: float = Z95) -> tuple[float, float, float]:
    """(mean, lower, upper): the normal confidence interval mean +- z std / sqrt(n) of a mean of
    ``n`` samples with sample standard deviation ``std`` (ddof 1); NaN bounds when n < 2, all
    NaN when n = 0."""
    if n <= 0:
        return float("nan"), float("nan"), float("nan")
    half = z * std / math.sqrt(n) if n > 1 else float("nan")
    return mean, mean - half, mean + half


def root_interval(interval: tuple[float, float, float]) -> tuple[float, float, float]:
    """(sqrt m, sqrt max(lo, 0), sqrt hi) of an interval (m, lo, hi) of a mean squared error:
    the interval of the RMSE (NaN stays NaN)."""
    m, lo, hi = interval
    return math.sqrt(m), math.sqrt(max(lo, 0.0)), math.sqrt(hi)


def padded_rows(rows) -> tuple[np.ndarray, np.ndarray]:
    """((B, W) float64, (B,) int64): each of the B ``rows`` (sequences of numbers, a scalar
    counting as one) in the first entries of its row, zeros after, W the longest (at least 1);
    and the rows' lengths: the layout :meth:`Scores.add_sensing_batch` takes."""
    rows = [np.atleast_1d(np.asarray(r, dtype=np.float64)) for r in rows]
    lengths = np.array([r.shape[0] for r in rows], dtype=np.int64)
    out = np.zeros((len(rows), max(int(lengths.max(initial=0)), 1)))
    for b, r in enumerate(rows):
        out[b, : r.shape[0]] = r
    return out, lengths


class RunningMean:
    """Count, mean and sample variance of a stream of numbers in O(1) memory.

    The sum is Neumaier-compensated (the mean is as accurate as a pairwise ``np.mean``); the sum
    of squared deviations M2 follows Welford's update M2 += (x - mean_old)(x - mean_new), which
    stays accurate when the spread is small against the mean."""

    __slots__ = ("n", "_sum", "_comp", "_m2")

    def __init__(self) -> None:
        self.n = 0
        self._sum = 0.0
        self._comp = 0.0
        self._m2 = 0.0

    def add(self, x: float) -> None:
        """Add one number: the compensated sum and Welford's M2 update (see the class)."""
        self.add_many((x,))

    def add_many(self, values) -> None:
        """:meth:`add` of each value in order (the same arithmetic, with fewer lookups)."""
        n, total, comp, m2 = self.n, self._sum, self._comp, self._m2
        for x in values:
            x = float(x)
            old = (total + comp) / n if n else 0.0
            n += 1
            t = total + x
            if abs(total) >= abs(x):
                comp += (total - t) + x
            else:
                comp += (x - t) + total
            total = t
            m2 += (x - old) * (x - (total + comp) / n)
        self.n, self._sum, self._comp, self._m2 = n, total, comp, m2

    def merge(self, other: "RunningMean") -> None:
        """Add the numbers ``other`` has seen, as if they had been added here after this one's
        (counts exact; mean and spread to rounding). The compensated sums add with one more
        Neumaier step; the spreads combine with Chan, Golub and LeVeque's pairwise update
        M2 = M2_a + M2_b + d^2 n_a n_b / n, d = mean_b - mean_a."""
        if other.n == 0:
            return
        if self.n == 0:
            self.n, self._sum, self._comp, self._m2 = other.n, other._sum, other._comp, other._m2
            return
        n_a, n_b = self.n, other.n
        d = other.mean() - self.mean()
        t = self._sum + other._sum
        if abs(self._sum) >= abs(other._sum):
            err = (self._sum - t) + other._sum
        else:
            err = (other._sum - t) + self._sum
        self.n = n_a + n_b
        self._sum = t
        self._comp = self._comp + other._comp + err
        self._m2 = self._m2 + other._m2 + d * d * (n_a * n_b / self.n)

    def mean(self) -> float:
        """The mean (NaN when empty)."""
        return (self._sum + self._comp) / self.n if self.n else float("nan")

    def std(self) -> float:
        """The sample standard deviation, ddof 1 (NaN below two samples)."""
        return math.sqrt(max(self._m2, 0.0) / (self.n - 1)) if self.n > 1 else float("nan")

    def interval(self, z: float = Z95) -> tuple[float, float, float]:
        """(mean, lower, upper): :func:`normal_interval` of the mean."""
        return normal_interval(self.mean(), self.std(), self.n, z)

    def __repr__(self) -> str:
        return f"RunningMean(n={self.n}, mean={self.mean()!r}, std={self.std()!r})"


#: the integer counts of Scores (added exactly by Scores.merge)
COUNTS = ("true_targets", "detected_targets", "false_alarms", "false_alarm_room", "symbol_errors", "symbols")


def _ratio(num: int, den: int) -> float:
    return num / den if den > 0 else float("nan")


@dataclass
class Scores:
    """Accumulates per-frame outcomes as running statistics; :meth:`summary` gives the metrics of
    Sec. V-B, the ``*_interval`` methods their 95 % confidence intervals.

    ``max_targets`` T_max, ``cutoff`` gamma (m), ``p`` and ``mu`` of GOSPA (17). Counts over the
    scored frames i: ``true_targets`` sum T_i, ``detected_targets`` sum min(T_i, T^_i) (so
    ``missed`` = the numerator of p_md (20)), ``false_alarms`` sum max(T_i, T^_i) - T_i and
    ``false_alarm_room`` sum T_max - T_i (numerator and denominator of p_fa (21)),
    ``symbol_errors`` of ``symbols`` (SER (22)).

    Moving targets (frames of M OFDM symbols): ``speed_sq`` the squared speed errors (m/s)^2 of
    the assigned pairs whose estimate has a speed; ``speed_weight`` w (s) > 0 scores the
    velocity-aware GOSPA, a target and an estimate then being sqrt(||p - p^||^2 + (w (v - v^))^2)
    apart (w = 0: the paper's GOSPA (17) on positions)."""

    max_targets: int
    cutoff: float
    p: float
    mu: float
    speed_weight: float = 0.0
    true_targets: int = 0
    detected_targets: int = 0
    false_alarms: int = 0
    false_alarm_room: int = 0
    symbol_errors: int = 0
    symbols: int = 0
    gospa_stats: RunningMean = field(default_factory=RunningMean)  # GOSPA (m) per frame
    angle_sq: RunningMean = field(default_factory=RunningMean)  # squared angle error (deg^2) per assigned pair
    range_sq: RunningMean = field(default_factory=RunningMean)  # squared range error (m^2) per assigned pair
    speed_sq: RunningMean = field(default_factory=RunningMean)  # squared speed error ((m/s)^2) per assigned pair

    @classmethod
    def for_scenario(cls, scenario) -> "Scores":
        """Empty scores with T_max and the GOSPA parameters of ``scenario``."""
        rx = scenario.receiver
        return cls(
            scenario.scene["max_targets"],
            rx["gospa_c_m"],
            rx["gospa_p"],
            rx["gospa_mu"],
            float(scenario.get("receiver.gospa_speed_weight_s")),
        )

    # --- accumulation ---------------------------------------------------------------
    def add_sensing(self, true_angles_rad, true_ranges_m, est_angles_rad, est_ranges_m) -> float:
        """Score one frame's detections (angles in rad, ranges in m) against its truth;
        returns the frame's GOSPA (m)."""
        ta, tr = np.atleast_1d(true_angles_rad), np.atleast_1d(true_ranges_m)
        ea, er = np.atleast_1d(est_angles_rad), np.atleast_1d(est_ranges_m)
        return float(self.add_sensing_batch(ta[None], tr[None], [ta.shape[0]], ea[None], er[None], [ea.shape[0]])[0])

    def add_sensing_batch(
        self,
        true_angles_rad,
        true_ranges_m,
        true_counts,
        est_angles_rad,
        est_ranges_m,
        est_counts,
        true_speeds_mps=None,
        est_speeds_mps=None,
    ) -> np.ndarray:
        """Score B frames at once, in order: row b of the (B, W) angle (rad) and range (m) arrays
        holds frame b's ``true_counts[b]`` targets and ``est_counts[b]`` detections in its first
        entries (the rest of the row is ignored). The same results as B calls of
        :meth:`add_sensing`, bit for bit; the distances and costs of all frames are computed in
        one vectorised step, the optimal assignment frame by frame. Returns the (B,) GOSPA (m).
        With the speeds (m/s, (B, W) each; NaN for an estimate without one) the speed errors of
        the assigned pairs are kept (``speed_sq``) and, with ``speed_weight`` > 0, enter the
        distances of the GOSPA."""
        nt = np.asarray(true_counts, dtype=np.int64).reshape(-1)
        ne = np.asarray(est_counts, dtype=np.int64).reshape(-1)
        B = nt.shape[0]
        if ne.shape[0] != B:
            raise ValueError(f"Scores.add_sensing_batch: {B} true counts but {ne.shape[0]} detection counts")
        out = np.empty(B, dtype=np.float64)
        if B == 0:
            return out
        check_gospa_parameters(self.cutoff, self.p, self.mu)
        ta = np.asarray(true_angles_rad, dtype=np.float64).reshape(B, -1)
        tr = np.asarray(true_ranges_m, dtype=np.float64).reshape(B, -1)
        ea = np.asarray(est_angles_rad, dtype=np.float64).reshape(B, -1)
        er = np.asarray(est_ranges_m, dtype=np.float64).reshape(B, -1)
        if (
            nt.max() > min(ta.shape[1], tr.shape[1])
            or ne.max() > min(ea.shape[1], er.shape[1])
            or min(nt.min(), ne.min()) < 0
        ):
            raise ValueError("Scores.add_sensing_batch: a count is negative or exceeds its row width")
        pt, pe = positions(ta, tr), positions(ea, er)
        speeds = est_speeds_mps is not None and true_speeds_mps is not None
        if speeds:
            tv = np.asarray(true_speeds_mps, dtype=np.float64).reshape(B, -1)
            ev = np.asarray(est_speeds_mps, dtype=np.float64).reshape(B, -1)
            if self.speed_weight > 0:  # velocity-aware GOSPA: the speed as a third coordinate (m)
                pt = np.concatenate([pt, self.speed_weight * tv[..., None]], axis=-1)
                pe = np.concatenate([pe, self.speed_weight * np.nan_to_num(ev)[..., None]], axis=-1)
        dist, cost = gospa_costs(pt, pe, self.cutoff, self.p)
        # errors of every (true, detected) pair; the assigned ones are taken below
        angle_sq = np.rad2deg(ea[:, None, :] - ta[:, :, None]) ** 2
        range_sq = (er[:, None, :] - tr[:, :, None]) ** 2
        speed_sq = (ev[:, None, :] - tv[:, :, None]) ** 2 if speeds else None
        assigned = []  # (frame, true index, detection index) of the pairs within the cut-off, in order
        for b in range(B):
            n, m = int(nt[b]), int(ne[b])
            out[b], pairs = gospa_from_costs(dist[b, :n, :m], cost[b, :n, :m], self.cutoff, self.p, self.mu)
            assigned += [(b, i, j) for i, j in pairs]
        self.gospa_stats.add_many(out)
        if assigned:
            b, i, j = np.array(assigned).T
            self.angle_sq.add_many(angle_sq[b, i, j])
            self.range_sq.add_many(range_sq[b, i, j])
            if speed_sq is not None:
                sq = speed_sq[b, i, j]
                self.speed_sq.add_many(sq[np.isfinite(sq)])  # estimates with a speed (M > 1 symbols)
        self.true_targets += int(nt.sum())
        self.detected_targets += int(np.minimum(nt, ne).sum())
        self.false_alarms += int((np.maximum(nt, ne) - nt).sum())
        self.false_alarm_room += int((self.max_targets - nt).sum())
        return out

    def add_symbols(self, errors: int, symbols: int) -> None:
        """Count ``errors`` symbol errors out of ``symbols`` detected symbols."""
        self.symbol_errors += int(errors)
        self.symbols += int(symbols)

    def add(self, frames, result, threshold: float, detected_messages: np.ndarray) -> None:
        """Score a batch: ``frames`` (simulation.Frames, with the truth), the sensing receiver's
        ``result`` (OmpResult) cut at ``threshold``, and the detected messages (B, S)."""
        ta, nt = padded_rows([scene.angles_rad for scene in frames.scenes])
        tr, _ = padded_rows([scene.ranges_m for scene in frames.scenes])
        speeds = getattr(result, "speeds_mps", None)  # measured over M > 1 symbols
        tv = padded_rows([scene.speeds_mps for scene in frames.scenes])[0] if speeds is not None else None
        self.add_sensing_batch(ta, tr, nt, result.angles_rad, result.ranges_m, result.counts(threshold), tv, speeds)
        self.add_symbols(np.sum(detected_messages != frames.messages), frames.messages.size)

    def merge(self, other: "Scores") -> None:
        """Add the frames ``other`` scored (e.g. another chunk of the same stream, scored on
        another worker), as if they had been scored here after this one's: every count exact,
        the mean GOSPA and the RMSEs and their spreads to rounding (RunningMean.merge). Scores
        of other GOSPA parameters or T_max are refused, naming both."""
        mine = (self.max_targets, self.cutoff, self.p, self.mu, self.speed_weight)
        theirs = (other.max_targets, other.cutoff, other.p, other.mu, other.speed_weight)
        if mine != theirs:
            raise ValueError(
                f"Scores.merge: (T_max, gamma, p, mu, w) must be equal, got {mine} here and {theirs} in the merged "
                "scores"
            )
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.gospa_stats.merge(other.gospa_stats)
        self.angle_sq.merge(other.angle_sq)
        self.range_sq.merge(other.range_sq)
        self.speed_sq.merge(other.speed_sq)

    # --- results --------------------------------------------------------------------
    @property
    def frames(self) -> int:
        """Sensing frames scored."""
        return self.gospa_stats.n

    @property
    def missed(self) -> int:
        """Missed targets, sum_i T_i - min(T_i, T^_i): the numerator of p_md (20)."""
        return self.true_targets - self.detected_targets

    @property
    def matched(self) -> int:
        """Assigned (true, detected) pairs within the GOSPA cut-off: the samples of the RMSEs."""
        return self.angle_sq.n

    def gospa_interval(self, z: float = Z95) -> tuple[float, float, float]:
        """(mean GOSPA, lower, upper) in m: the normal interval of the per-frame GOSPA (17) mean."""
        return self.gospa_stats.interval(z)

    def rmse_interval(self, kind: str, z: float = Z95) -> tuple[float, float, float]:
        """(RMSE, lower, upper) of the ``kind`` = "angle" (deg) or "range" (m) errors of the
        assigned pairs: the normal interval of the mean squared error, square-rooted."""
        stats = {"angle": self.angle_sq, "range": self.range_sq, "speed": self.speed_sq}.get(kind)
        if stats is None:
            raise ValueError(f"Scores.rmse_interval: kind must be 'angle', 'range' or 'speed', got {kind!r}")
        return root_interval(stats.interval(z))

    def summary(self) -> dict:
        """p_md (20), p_fa (21), mean GOSPA (17) (m), SER (22), angle RMSE (deg), range RMSE (m)
        and the number of sensing frames; a metric with nothing to average over is NaN."""
        return {
            "p_md": 1.0 - self.detected_targets / self.true_targets if self.true_targets > 0 else float("nan"),
            "p_fa": _ratio(self.false_alarms, self.false_alarm_room),
            "gospa": self.gospa_stats.mean(),
            "ser": _ratio(self.symbol_errors, self.symbols),
            "angle_rmse_deg": math.sqrt(self.angle_sq.mean()) if self.angle_sq.n else float("nan"),
            "range_rmse_m": math.sqrt(self.range_sq.mean()) if self.range_sq.n else float("nan"),
            "speed_rmse_mps": math.sqrt(self.speed_sq.mean()) if self.speed_sq.n else float("nan"),
            "frames": self.frames,
        }


def add_sensing_records(scores: Scores, pairs) -> None:
    """Add the sensing outcome of frames to ``scores``, in order, from their (truth, detections)
    records (messages.Truth, messages.Detections): one :meth:`Scores.add_sensing_batch` call."""
    if not pairs:
        return
    (ta, nt), (tr, _), (tv, _), (ea, ne), (er, _), (ev, _) = (
        padded_rows([getattr(pair[i], key) for pair in pairs])
        for i in (0, 1)
        for key in ("angle_rad", "range_m", "speed_mps")
    )
    scores.add_sensing_batch(ta, tr, nt, ea, er, ne, tv, ev)


__all__ = ["RunningMean", "Scores", "Z95", "add_sensing_records", "normal_interval", "padded_rows", "root_interval"]
