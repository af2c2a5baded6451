"""isac.metrics: running p_md (20), p_fa (21), GOSPA (17), SER (22) and RMSEs of a stream of
frames, accumulated as scoring.Scores does (running statistics: O(1) time and memory per frame)."""

from __future__ import annotations

import heapq
import threading
import time

import numpy as np
import pmt
from gnuradio import gr

from .. import config_schema
from ..messages import Detections, MessageError, Truth, to_pmt
from ..scoring import Scores, add_sensing_records
from . import base
from .comm_receiver import INVALID_TAG as INVALID_COMM_TAG

NAME = "isac_metrics"
#: unmatched truth / detections messages kept per port before the oldest are dropped
MAX_PENDING = 1000
#: message input ports whose messages are paired by frame to score sensing
SENSING_PORTS = ("truth", "detections")
#: default seconds a frame may wait for its messages, or the stream may stand still, before the
#: block stops the flowgraph
STALL_LIMIT_S = config_schema.STALL_LIMIT_S
#: seconds ``work`` sleeps when its next frame's messages have not arrived (they are handled
#: between work calls, in the block's thread): long enough that waiting costs little CPU
#: (polling every 1 ms cost ~0.1 ms of CPU per frame at ~650 frames/s), short against the
#: stream buffers (128 frames) and the end of a run
WAIT_POLL_S = 0.01


class metrics(base.FrameBlock, gr.sync_block):
    """Message in ``truth`` (messages.Truth, from isac.ula_channel) and ``detections``
    (messages.Detections, from isac.omp_receiver), stream in 0: true message frames, in 1: detected
    message frames (int32). Out: PMT dict on ``metrics`` after every work call that scored frames,
    with p_md, p_fa, gospa, ser, angle_rmse_deg, range_rmse_m, frames (sensing frames scored),
    comm_frames, skipped_frames (detections with valid = False), skipped_comm_frames (detected
    message frames tagged ``invalid_comm`` by isac.comm_receiver: not in the SER); a log line every ``log_every``
    frames and at stop. The ``scenario`` gives T_max and the GOSPA parameters (17).

    Sensing is scored when both messages of a frame have arrived (matched by ``frame``). With
    ``wait_for_messages`` (default), stream frame i is consumed only once frame i's sensing is
    scored, so the block ends after the last frame's messages; set it False to score the stream
    alone (SER only, e.g. with the message ports unconnected). A frame that has waited
    ``stall_limit_s`` seconds for its messages (0 = forever) means the block that sends them
    stopped delivering (its thread ended on an error, or the port is not connected): the block
    then stops the flowgraph with one line naming the missing message port (base.FrameBlock:
    ``fatal_error``, ``on_fatal``). So does ``stall_limit_s`` seconds without a work call: no frame
    reached the stream inputs (a block upstream, e.g. on the comm path, stopped: GNU Radio ends the
    thread of a block whose ``work`` raises, and the blocks after it wait for ever); a watch thread
    notices it, since ``work`` is not called then.

    All state is bounded: the scores are running statistics, unmatched messages are kept up to
    MAX_PENDING per port, and scored frames wait for the stream only while in flight. A frame
    whose message was dropped is not waited for (its comm part is still scored)."""

    NAME = NAME

    def __init__(
        self,
        scenario=None,
        log_every: int = 100,
        wait_for_messages: bool = True,
        stall_limit_s: float = STALL_LIMIT_S,
    ):
        self.setup(scenario)
        self.log_every = base.parameter(NAME, "log_every", log_every)
        self.stall_limit_s = base.parameter(NAME, "stall_limit_s", stall_limit_s)
        self.wait_for_messages = bool(wait_for_messages)
        self.scores = Scores.for_scenario(self.scenario)
        self.skipped_frames = 0
        self.comm_frames = 0
        self.skipped_comm_frames = 0  # detected message frames flagged invalid_comm: not scored
        self.dropped_messages = 0
        self._truth: dict[int, Truth] = {}
        self._detections: dict[int, Detections] = {}
        self._sensed: dict[int, tuple[Truth, Detections]] = {}
        self._unscored: list[tuple[Truth, Detections]] = []  # paired valid frames not yet in scores
        self._position = 0  # the next stream frame to consume
        #: per port, the largest frame whose message was dropped (every older pending one went too)
        self._dropped_through = {"truth": -1, "detections": -1}
        self._waiting_since: tuple[int, float] | None = None  # (frame waited for, since (monotonic s))
        self._last_call = time.monotonic()  # of work (the watch thread's measure of the stream)
        self._watch: tuple[threading.Thread, threading.Event] | None = None
        #: optional ``on_frame(frame, truth, detections, symbol_errors)`` (messages records; symbol_errors
        #: None for a comm frame flagged invalid), called once per frame when it is fully scored (only
        #: with ``wait_for_messages``); for apps and tests
        self.on_frame = None
        self._lock = threading.Lock()
        n = self.geometry.symbol_items
        gr.sync_block.__init__(self, name=NAME, in_sig=[(np.int32, n), (np.int32, n)], out_sig=None)
        for port, handler in (("truth", self.handle_truth), ("detections", self.handle_detections)):
            self.message_port_register_in(pmt.intern(port))
            self.set_msg_handler(pmt.intern(port), handler)
        self.message_port_register_out(pmt.intern("metrics"))

    # --- messages -------------------------------------------------------------------
    def handle_truth(self, msg) -> None:
        self._store(self._truth, msg, "truth", Truth)

    def handle_detections(self, msg) -> None:
        self._store(self._detections, msg, "detections", Detections)

    def _store(self, table: dict, msg, port: str, kind) -> None:
        try:
            item = kind.from_pmt(msg)
        except (MessageError, ValueError, TypeError) as exc:
            self.logger.error(f"{port} message ignored (not a {port} message): {exc}")
            return
        frame = item.frame
        with self._lock:
            if self.wait_for_messages and (frame < self._position or self._hopeless(frame)):
                self.dropped_messages += 1  # its frame has left the stream, or its partner was dropped
                return
            table[frame] = item
            if frame in self._truth and frame in self._detections:
                truth, det = self._truth.pop(frame), self._detections.pop(frame)
                if det.valid and truth.valid:
                    self._unscored.append((truth, det))  # scored in a batch by _score_pending
                else:
                    self.skipped_frames += 1
                if self.wait_for_messages:
                    self._sensed[frame] = (truth, det)
            elif len(table) > MAX_PENDING:  # the other message of these frames never came
                oldest = heapq.nsmallest(len(table) - MAX_PENDING, table)
                for f in oldest:
                    del table[f]
                self._dropped_through[port] = max(self._dropped_through[port], oldest[-1])
                first = self.dropped_messages == 0
                self.dropped_messages += len(oldest)
                if first or self.dropped_messages % MAX_PENDING < len(oldest):
                    self.logger.warn(
                        f"{port}: {self.dropped_messages} messages without a partner dropped "
                        f"(is the other message port connected?)"
                    )

    def _hopeless(self, frame: int) -> bool:
        """Frame ``frame`` can no longer be paired: one of its messages is not pending although
        that port dropped pending messages up to a later frame (each port's messages arrive in
        frame order, from one sender)."""
        return any(
            frame not in table and frame <= self._dropped_through[port]
            for port, table in (("truth", self._truth), ("detections", self._detections))
        )

    # --- results --------------------------------------------------------------------
    def _score_pending(self) -> None:
        """Add the paired frames to the scores (one batch; call with the lock held)."""
        if self._unscored:
            pairs, self._unscored = self._unscored, []
            add_sensing_records(self.scores, pairs)

    def summary(self) -> dict:
        with self._lock:
            self._score_pending()
            out = self.scores.summary()
            out["comm_frames"] = self.comm_frames
            out["skipped_frames"] = self.skipped_frames
            out["skipped_comm_frames"] = self.skipped_comm_frames
        return out

    def _log(self, s: dict) -> None:
        self.logger.info(
            f"{s['frames']} frames: p_md={s['p_md']:.4f} p_fa={s['p_fa']:.4f} "
            f"GOSPA={s['gospa']:.2f} m SER={s['ser']:.2e} "
            f"angle RMSE={s['angle_rmse_deg']:.3f} deg range RMSE={s['range_rmse_m']:.3f} m "
            + (f"speed RMSE={s['speed_rmse_mps']:.3f} m/s " if self.geometry.symbols > 1 else "")
            + f"({s['comm_frames']} comm frames, {s['skipped_frames']} skipped, "
            f"{s['skipped_comm_frames']} comm frames skipped)"
        )

    def start(self) -> bool:
        super().start()
        self._waiting_since = None
        self._position = self.nitems_read(0)
        self._last_call = time.monotonic()
        if self.stall_limit_s and self._watch is None:
            done = threading.Event()
            thread = threading.Thread(target=self._watch_stream, args=(done,), name=f"{NAME}_watch", daemon=True)
            self._watch = (thread, done)
            thread.start()
        return True

    def stop(self) -> bool:
        if self._watch is not None:  # a daemon thread: it sees the event within a poll and ends
            self._watch[1].set()
            self._watch = None
        self._log(self.summary())
        return super().stop()

    def _watch_stream(self, done: threading.Event) -> None:
        """Between start and stop: give up when ``work`` has not been called for ``stall_limit_s``
        (GNU Radio calls it when a frame is on both stream inputs, and again while it waits for
        messages), i.e. the stream stopped before this block."""
        poll = min(1.0, max(WAIT_POLL_S, self.stall_limit_s / 10))
        while not done.wait(poll):
            idle = time.monotonic() - self._last_call
            if idle >= self.stall_limit_s and self.fatal_error is None and not done.is_set():
                self.stop_flowgraph(
                    f"{self.alias()}: no frame has reached its stream inputs for {idle:.0f} s (frame "
                    f"{self._position} is the next): the block feeding stream input 0 (messages m) or 1 "
                    f"(detected messages) stopped delivering (did a block before it fail? stall_limit_s=0 "
                    f"waits for ever)"
                )
                return

    def _check_stall(self, frame: int) -> None:
        """base.GiveUp when stream frame ``frame`` has waited ``stall_limit_s`` for its messages."""
        now = time.monotonic()
        if self._waiting_since is None or self._waiting_since[0] != frame:
            self._waiting_since = (frame, now)
            return
        waited = now - self._waiting_since[1]
        if self.stall_limit_s and waited >= self.stall_limit_s:
            with self._lock:
                missing = [p for p, t in (("truth", self._truth), ("detections", self._detections)) if frame not in t]
            ports, s = " and ".join(f"'{p}'" for p in missing), "s" if len(missing) > 1 else ""
            raise base.GiveUp(
                f"{self.alias()}: frame {frame} has waited {waited:.0f} s for its {' and '.join(missing)} "
                f"message{s}: the block feeding message port{s} {ports} stopped delivering (did it fail, or is "
                f"the port not connected? wait_for_messages=False scores the stream without sensing)"
            )

    # --- stream ---------------------------------------------------------------------
    def work_frames(self, input_items, output_items):
        self._last_call = time.monotonic()
        m, m_hat = input_items
        n = len(m)
        start = self.nitems_read(0)
        done = 0
        reports = []
        with self._lock:
            sensed = []  # (index in this call, truth, detections) of the frames to report
            if not self.wait_for_messages:
                done = n
            else:
                for i in range(n):
                    frame = start + i
                    if frame in self._sensed:
                        truth, det = self._sensed.pop(frame)
                        sensed.append((i, truth, det))
                    elif not self._hopeless(frame):  # else a message of it was dropped: SER only
                        break
                    done += 1
            errors = np.count_nonzero(m[:done] != m_hat[:done], axis=1)  # per frame
            valid = np.ones(done, dtype=bool)  # detected messages not flagged invalid by the comm receiver
            if done:
                for tag in self.get_tags_in_window(1, 0, done, pmt.intern(INVALID_COMM_TAG)):
                    valid[tag.offset - start] = False
            good = int(np.count_nonzero(valid))
            self.scores.add_symbols(int(errors[valid].sum()), self.geometry.symbol_items * good)
            self.comm_frames += good
            self.skipped_comm_frames += done - good
            self._position = start + done
            if self.on_frame is not None:
                reports = [(start + i, truth, det, int(errors[i]) if valid[i] else None) for i, truth, det in sensed]
        for report in reports:  # outside the lock: the callback may read summary()
            self.on_frame(*report)
        if done == 0:
            self._check_stall(start)
            time.sleep(WAIT_POLL_S)  # waiting for messages; they are handled between work calls
            return 0
        s = self.summary()
        self.message_port_pub(pmt.intern("metrics"), to_pmt(s))
        if self.log_every and (start + done) // self.log_every > start // self.log_every:
            self._log(s)
        return done
