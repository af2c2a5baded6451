"""isac.metrics: running p_md (20), p_fa (21), GOSPA (17), SER (22) and RMSEs of a stream of
frames, accumulated as evaluation.Scores does."""
from __future__ import annotations

import threading
import time

import numpy as np
import pmt
from gnuradio import gr

from ..scoring import Scores
from . import _common as c

NAME = "isac_metrics"
#: unmatched truth / detections messages kept per port before the oldest are dropped
MAX_PENDING = 1000


def score_frame(scores: Scores, truth: dict, detections: dict) -> None:
    """Add one frame's sensing outcome to ``scores`` from the ``truth`` and ``detections``
    message dicts (angles in degrees, ranges in m)."""
    def vec(msg, key):
        return np.atleast_1d(np.asarray(msg.get(key, []), dtype=np.float64))

    scores.add_sensing(np.deg2rad(vec(truth, "angle_deg")), vec(truth, "range_m"),
                       np.deg2rad(vec(detections, "angle_deg")), vec(detections, "range_m"))


class metrics(gr.sync_block):
    """Message in ``truth`` (from isac.ula_channel) and ``detections`` (from isac.omp_receiver),
    stream in 0: true messages, in 1: detected messages (vlen S, int32). Out: PMT dict on
    ``metrics`` after every work call that scored frames, with p_md, p_fa, gospa, ser,
    angle_rmse_deg, range_rmse_m, frames (sensing frames scored), comm_frames,
    skipped_frames (detections with valid = False); a log line every ``log_every`` frames
    and at stop.

    Sensing is scored when both messages of a frame have arrived (matched by ``frame``). With
    ``wait_for_messages`` (default), stream frame i is consumed only once frame i's sensing is
    scored, so the block ends after the last frame's messages (set it False when the
    message ports are not connected)."""

    @classmethod
    def from_scenario(cls, scenario, **kwargs) -> "metrics":
        """The block for ``scenario`` (its parameters taken from it), plus ``kwargs``."""
        return cls(**c.scenario_parameters(cls, scenario), **kwargs)

    def __init__(self, S: int = 256, max_targets: int = 5, gospa_c_m: float = 90.0, gospa_p: float = 2.0,
                 gospa_mu: float = 2.0, log_every: int = 100, wait_for_messages: bool = True):
        self.S = c.positive_int(NAME, "S", S)
        sc = c.scenario(NAME, dict(max_targets=max_targets, gospa_c_m=gospa_c_m, gospa_p=gospa_p,
                                   gospa_mu=gospa_mu))
        if int(log_every) != log_every or log_every < 0:
            raise c.error(NAME, "log_every", f"must be an integer >= 0 (0 = only at stop), got {log_every!r}")
        self.log_every = int(log_every)
        self.wait_for_messages = bool(wait_for_messages)
        self.scores = Scores.for_scenario(sc)
        self.skipped_frames = 0
        self.comm_frames = 0
        self.dropped_messages = 0
        self._truth: dict[int, dict] = {}
        self._detections: dict[int, dict] = {}
        self._sensed: dict[int, tuple[dict, dict]] = {}
        #: optional ``on_frame(frame, truth, detections, symbol_errors)``, called once per frame
        #: when the frame is fully scored (only with ``wait_for_messages``); for apps and tests
        self.on_frame = None
        self._lock = threading.Lock()
        gr.sync_block.__init__(self, name=NAME, in_sig=[(np.int32, self.S), (np.int32, self.S)], out_sig=None)
        for port, handler in (("truth", self.handle_truth), ("detections", self.handle_detections)):
            self.message_port_register_in(pmt.intern(port))
            self.set_msg_handler(pmt.intern(port), handler)
        self.message_port_register_out(pmt.intern("metrics"))

    # --- messages -------------------------------------------------------------------
    def handle_truth(self, msg) -> None:
        self._store(self._truth, msg, "truth")

    def handle_detections(self, msg) -> None:
        self._store(self._detections, msg, "detections")

    def _store(self, table: dict, msg, port: str) -> None:
        try:
            item = c.to_python(msg)
            frame = int(item["frame"])
        except (ValueError, KeyError, TypeError) as exc:
            self.logger.error(f"{port} message ignored (needs a dict with 'frame'): {exc}")
            return
        with self._lock:
            table[frame] = item
            if frame in self._truth and frame in self._detections:
                truth, det = self._truth.pop(frame), self._detections.pop(frame)
                if det.get("valid", True):
                    score_frame(self.scores, truth, det)
                else:
                    self.skipped_frames += 1
                if self.wait_for_messages:
                    self._sensed[frame] = (truth, det)
            elif len(table) > MAX_PENDING:  # the other message of these frames never came
                oldest = sorted(table)[: len(table) - MAX_PENDING]
                for f in oldest:
                    del table[f]
                first = self.dropped_messages == 0
                self.dropped_messages += len(oldest)
                if first or self.dropped_messages % MAX_PENDING < len(oldest):
                    self.logger.warn(f"{port}: {self.dropped_messages} messages without a partner dropped "
                                     f"(is the other message port connected?)")

    # --- results --------------------------------------------------------------------
    def summary(self) -> dict:
        with self._lock:
            out = self.scores.summary()
            out["comm_frames"] = self.comm_frames
            out["skipped_frames"] = self.skipped_frames
        return out

    def _log(self, s: dict) -> None:
        self.logger.info(f"{s['frames']} frames: p_md={s['p_md']:.4f} p_fa={s['p_fa']:.4f} "
                         f"GOSPA={s['gospa']:.2f} m SER={s['ser']:.2e} "
                         f"angle RMSE={s['angle_rmse_deg']:.3f} deg range RMSE={s['range_rmse_m']:.3f} m "
                         f"({s['comm_frames']} comm frames, {s['skipped_frames']} skipped)")

    def stop(self) -> bool:
        self._log(self.summary())
        return True

    # --- stream ---------------------------------------------------------------------
    def work(self, input_items, output_items):
        m, m_hat = input_items
        n = len(m)
        start = self.nitems_read(0)
        done = 0
        reports = []
        with self._lock:
            for i in range(n):
                frame = start + i
                if self.wait_for_messages:
                    if frame not in self._sensed:
                        break
                    truth, det = self._sensed.pop(frame)
                errors = int(np.count_nonzero(m[i] != m_hat[i]))
                self.scores.add_symbols(errors, self.S)
                self.comm_frames += 1
                done += 1
                if self.on_frame is not None and self.wait_for_messages:
                    reports.append((frame, truth, det, errors))
        for report in reports:  # outside the lock: the callback may read summary()
            self.on_frame(*report)
        if done == 0:
            time.sleep(0.001)  # waiting for messages; they are handled between work calls
            return 0
        s = self.summary()
        self.message_port_pub(pmt.intern("metrics"), c.make_dict(s))
        if self.log_every and (start + done) // self.log_every > start // self.log_every:
            self._log(s)
        return done
