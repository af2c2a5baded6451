"""Scoring of a sensing and communication link (Sec. V-B): one accumulator of per-frame
outcomes, used by the offline evaluation (``evaluation``), the experiments and the streaming
metrics block alike.

Per frame: GOSPA (17) between the true and the detected positions (2), with its optimal
assignment; the angle and range errors of the assigned pairs (for the RMSEs); the true and
detected counts (for p_md (20) and p_fa (21)); symbol errors of the ML detector (for the SER (22)).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .model.metrics import false_alarm_probability, gospa_assignment, misdetection_probability, rmse
from .model.scene import positions


@dataclass
class Scores:
    """Accumulates per-frame outcomes; :meth:`summary` gives the metrics of Sec. V-B.

    ``max_targets`` T_max, ``cutoff`` gamma (m), ``p`` and ``mu`` of GOSPA (17)."""

    max_targets: int
    cutoff: float
    p: float
    mu: float
    true_counts: list = field(default_factory=list)
    est_counts: list = field(default_factory=list)
    gospa: list = field(default_factory=list)
    angle_err_deg: list = field(default_factory=list)
    range_err_m: list = field(default_factory=list)
    symbol_errors: int = 0
    symbols: int = 0

    @classmethod
    def for_scenario(cls, scenario) -> "Scores":
        """Empty scores with T_max and the GOSPA parameters of ``scenario``."""
        rx = scenario.receiver
        return cls(scenario.scene["max_targets"], rx["gospa_c_m"], rx["gospa_p"], rx["gospa_mu"])

    def add_sensing(self, true_angles_rad, true_ranges_m, est_angles_rad, est_ranges_m) -> float:
        """Score one frame's detections (angles in rad, ranges in m) against its truth;
        returns the frame's GOSPA (m)."""
        ta, tr = np.atleast_1d(true_angles_rad), np.atleast_1d(true_ranges_m)
        ea, er = np.atleast_1d(est_angles_rad), np.atleast_1d(est_ranges_m)
        d, pairs = gospa_assignment(positions(ta, tr), positions(ea, er), self.cutoff, self.p, self.mu)
        self.gospa.append(d)
        for i, j in pairs:
            self.angle_err_deg.append(np.rad2deg(ea[j] - ta[i]))
            self.range_err_m.append(er[j] - tr[i])
        self.true_counts.append(int(ta.shape[0]))
        self.est_counts.append(int(ea.shape[0]))
        return d

    def add_symbols(self, errors: int, symbols: int) -> None:
        """Count ``errors`` symbol errors out of ``symbols`` detected symbols."""
        self.symbol_errors += int(errors)
        self.symbols += int(symbols)

    def add(self, frames, result, threshold: float, detected_messages: np.ndarray) -> None:
        """Score a batch: ``frames`` (simulation.Frames, with the truth), the sensing receiver's
        ``result`` (OmpResult) cut at ``threshold``, and the detected messages (B, S)."""
        counts = result.counts(threshold)
        for b, scene in enumerate(frames.scenes):
            n = int(counts[b])
            self.add_sensing(scene.angles_rad, scene.ranges_m, result.angles_rad[b, :n], result.ranges_m[b, :n])
        self.add_symbols(np.sum(detected_messages != frames.messages), frames.messages.size)

    def summary(self) -> dict:
        return {
            "p_md": misdetection_probability(self.true_counts, self.est_counts),
            "p_fa": false_alarm_probability(self.true_counts, self.est_counts, self.max_targets),
            "gospa": float(np.mean(self.gospa)) if self.gospa else float("nan"),
            "ser": self.symbol_errors / self.symbols if self.symbols else float("nan"),
            "angle_rmse_deg": rmse(self.angle_err_deg),
            "range_rmse_m": rmse(self.range_err_m),
            "frames": len(self.gospa),
        }


__all__ = ["Scores"]
