"""isac.metrics: running p_md (20), p_fa (21), GOSPA (17), SER (22) and RMSEs of a stream of
frames, accumulated as scoring.Scores does (running statistics: O(1) time and memory per frame)."""

from __future__ import annotations

import gc
import heapq
import threading
import time

import numpy as np
import pmt
from gnuradio import gr

from ..scoring import Scores, padded_rows
from . import _common as c
from ._thread_state import HeldThreadState

NAME = "isac_metrics"
#: unmatched truth / detections messages kept per port before the oldest are dropped
MAX_PENDING = 1000
#: message input ports whose messages are paired by frame to score sensing
SENSING_PORTS = ("truth", "detections")
#: seconds a frame may wait for its messages before a warning
STALL_WARNING_S = 30.0
#: seconds ``work`` sleeps when its next frame's messages have not arrived (they are handled
#: between work calls, in the block's thread): long enough that waiting costs little CPU
#: (polling every 1 ms cost ~0.1 ms of CPU per frame at ~650 frames/s), short against the
#: stream buffers (128 frames) and the end of a run
WAIT_POLL_S = 0.01


def _edge_ends(edge_list: str) -> list[tuple[str, str, str, str]]:
    """(source block, source port, destination block, destination port) of each line
    "src:port->dst:port" of a top block's edge_list() / msg_edge_list()."""
    ends = []
    for line in edge_list.splitlines():
        src, arrow, dst = line.strip().partition("->")
        if arrow:
            (sb, _, sp), (db, _, dp) = src.rpartition(":"), dst.rpartition(":")
            ends.append((sb, sp, db, dp))
    return ends


def connected_message_inputs(block) -> set[str] | None:
    """Names of ``block``'s message input ports fed by a msg_connect, or None when unknown.

    GNU Radio 3.10 keeps message subscriptions on the sending blocks only, with no query from
    the receiving side; the connections are read instead from the edge lists of the Python top
    block holding ``block`` as a direct child (found among the live objects by its stream
    edges, by the block's alias). None when no such top block, or more than one, is found (a
    C++ top block, a block inside a hierarchical block)."""
    alias = block.alias()
    holders = []
    for obj in gc.get_objects():
        if gr.top_block in type(obj).__mro__:
            try:
                streams, msgs = obj.edge_list(), obj.msg_edge_list()
            except Exception:  # noqa: BLE001 - a half-built or closed top block: not ours
                continue
            if any(alias in (sb, db) for sb, _, db, _ in _edge_ends(streams)):
                holders.append(msgs)
    if len(holders) != 1:
        return None
    return {dp for _, _, db, dp in _edge_ends(holders[0]) if db == alias}


def score_frames(scores: Scores, pairs: list[tuple[dict, dict]]) -> None:
    """Add the sensing outcome of frames to ``scores``, in order, from their (``truth``,
    ``detections``) message dicts (angles in degrees, ranges in m): one
    :meth:`Scores.add_sensing_batch` call for all of them."""
    if not pairs:
        return
    (ta, nt), (tr, ntr), (ea, ne), (er, ner) = (
        padded_rows([pair[msg].get(key, ()) for pair in pairs]) for msg in (0, 1) for key in ("angle_deg", "range_m")
    )
    bad = np.nonzero((nt != ntr) | (ne != ner))[0]
    if bad.size:
        b = bad[0]
        raise ValueError(
            f"angle_deg and range_m differ in length: truth {nt[b]} / {ntr[b]}, detections {ne[b]} / {ner[b]}"
        )
    scores.add_sensing_batch(np.deg2rad(ta), tr, nt, np.deg2rad(ea), er, ne)


def score_frame(scores: Scores, truth: dict, detections: dict) -> None:
    """Add one frame's sensing outcome to ``scores`` (see :func:`score_frames`)."""
    score_frames(scores, [(truth, detections)])


class metrics(HeldThreadState, gr.sync_block):
    """Message in ``truth`` (from isac.ula_channel) and ``detections`` (from isac.omp_receiver),
    stream in 0: true messages, in 1: detected messages (vlen S, int32). Out: PMT dict on
    ``metrics`` after every work call that scored frames, with p_md, p_fa, gospa, ser,
    angle_rmse_deg, range_rmse_m, frames (sensing frames scored), comm_frames,
    skipped_frames (detections with valid = False); a log line every ``log_every`` frames
    and at stop.

    Sensing is scored when both messages of a frame have arrived (matched by ``frame``). With
    ``wait_for_messages`` (default), stream frame i is consumed only once frame i's sensing is
    scored, so the block ends after the last frame's messages (set it False when the
    message ports are not connected). At start, a ``truth`` or ``detections`` port found
    unconnected (see :func:`connected_message_inputs`) is reported with a warning and the block
    does not wait (the stream is scored alone: SER only). A frame that waits longer than
    STALL_WARNING_S for its messages is reported once (e.g. when the connections cannot be read).

    All state is bounded: the scores are running statistics, unmatched messages are kept up to
    MAX_PENDING per port, and scored frames wait for the stream only while in flight. A frame
    whose message was dropped is not waited for (its comm part is still scored)."""

    @classmethod
    def from_scenario(cls, scenario, **kwargs) -> "metrics":
        """The block for ``scenario`` (its parameters taken from it), plus ``kwargs``."""
        return cls(**c.scenario_parameters(cls, scenario), **kwargs)

    def __init__(
        self,
        S: int = 256,
        max_targets: int = 5,
        gospa_c_m: float = 90.0,
        gospa_p: float = 2.0,
        gospa_mu: float = 2.0,
        log_every: int = 100,
        wait_for_messages: bool = True,
    ):
        self.S = c.positive_int(NAME, "S", S)
        sc = c.scenario(NAME, dict(max_targets=max_targets, gospa_c_m=gospa_c_m, gospa_p=gospa_p, gospa_mu=gospa_mu))
        if int(log_every) != log_every or log_every < 0:
            raise c.error(NAME, "log_every", f"must be an integer >= 0 (0 = only at stop), got {log_every!r}")
        self.log_every = int(log_every)
        self.wait_for_messages = bool(wait_for_messages)
        self._waiting = self.wait_for_messages  # this run's: False when a sensing port is unconnected
        self._ignored_ports: set[str] = set()
        self._stall = (None, 0.0, False)  # (frame waited for, since (monotonic s), warned)
        self.scores = Scores.for_scenario(sc)
        self.skipped_frames = 0
        self.comm_frames = 0
        self.dropped_messages = 0
        self._truth: dict[int, dict] = {}
        self._detections: dict[int, dict] = {}
        self._sensed: dict[int, tuple[dict, dict]] = {}
        self._unscored: list[tuple[dict, dict]] = []  # paired valid frames not yet in scores
        self._position = 0  # the next stream frame to consume
        #: per port, the largest frame whose message was dropped (every older pending one went too)
        self._dropped_through = {"truth": -1, "detections": -1}
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
        if self._ignored_ports:  # the other sensing port is unconnected: no frame can be paired
            return
        try:
            item = c.to_python(msg)
            frame = int(item["frame"])
            lengths = {np.size(item.get(k, [])) for k in ("angle_deg", "range_m")}
            if len(lengths) > 1:
                raise ValueError(f"angle_deg and range_m differ in length ({sorted(lengths)})")
        except (ValueError, KeyError, TypeError) as exc:
            self.logger.error(
                f"{port} message ignored (needs a dict with 'frame' and angle_deg / range_m of equal lengths): {exc}"
            )
            return
        with self._lock:
            if self._waiting and (frame < self._position or self._hopeless(frame)):
                self.dropped_messages += 1  # its frame has left the stream, or its partner was dropped
                return
            table[frame] = item
            if frame in self._truth and frame in self._detections:
                truth, det = self._truth.pop(frame), self._detections.pop(frame)
                if det.get("valid", True):
                    self._unscored.append((truth, det))  # scored in a batch by _score_pending
                else:
                    self.skipped_frames += 1
                if self._waiting:
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
            score_frames(self.scores, pairs)

    def summary(self) -> dict:
        with self._lock:
            self._score_pending()
            out = self.scores.summary()
            out["comm_frames"] = self.comm_frames
            out["skipped_frames"] = self.skipped_frames
        return out

    def _log(self, s: dict) -> None:
        self.logger.info(
            f"{s['frames']} frames: p_md={s['p_md']:.4f} p_fa={s['p_fa']:.4f} "
            f"GOSPA={s['gospa']:.2f} m SER={s['ser']:.2e} "
            f"angle RMSE={s['angle_rmse_deg']:.3f} deg range RMSE={s['range_rmse_m']:.3f} m "
            f"({s['comm_frames']} comm frames, {s['skipped_frames']} skipped)"
        )

    def start(self) -> bool:
        """Check that the sensing message ports are connected before waiting on them."""
        super().start()
        self._waiting = self.wait_for_messages
        self._ignored_ports = set()
        self._stall = (None, 0.0, False)
        self._position = self.nitems_read(0)
        if self.wait_for_messages:
            connected = connected_message_inputs(self)
            missing = [] if connected is None else [p for p in SENSING_PORTS if p not in connected]
            if missing:
                self._waiting = False
                self._ignored_ports = set(SENSING_PORTS)
                with self._lock:
                    self._sensed.clear()
                self.logger.warn(
                    f"message port{'s' if len(missing) > 1 else ''} {' and '.join(missing)} "
                    f"not connected: sensing is not scored and the stream does not wait for "
                    f"messages (only SER; connect truth and detections, or set "
                    f"wait_for_messages=False)"
                )
        return True

    def stop(self) -> bool:
        self._log(self.summary())
        return super().stop()

    def _note_stall(self, frame: int) -> None:
        """Warn once when ``frame`` has waited STALL_WARNING_S for its messages."""
        waited, since, warned = self._stall
        now = time.monotonic()
        if waited != frame:
            self._stall = (frame, now, warned)
        elif not warned and now - since >= STALL_WARNING_S:
            with self._lock:
                have = [p for p, t in (("truth", self._truth), ("detections", self._detections)) if frame in t]
            missing = [p for p in SENSING_PORTS if p not in have]
            self.logger.warn(
                f"frame {frame} has waited {now - since:.0f} s for its {' and '.join(missing)} "
                f"message{'s' if len(missing) > 1 else ''}: is that message port connected? "
                f"(wait_for_messages=False scores the stream without waiting)"
            )
            self._stall = (frame, since, True)

    # --- stream ---------------------------------------------------------------------
    def work(self, input_items, output_items):
        m, m_hat = input_items
        n = len(m)
        start = self.nitems_read(0)
        done = 0
        reports = []
        with self._lock:
            sensed = []  # (index in this call, truth, detections) of the frames to report
            if not self._waiting:
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
            self.scores.add_symbols(int(errors.sum()), self.S * done)
            self.comm_frames += done
            self._position = start + done
            if self.on_frame is not None:
                reports = [(start + i, truth, det, int(errors[i])) for i, truth, det in sensed]
        for report in reports:  # outside the lock: the callback may read summary()
            self.on_frame(*report)
        if done == 0:
            self._note_stall(start)
            time.sleep(WAIT_POLL_S)  # waiting for messages; they are handled between work calls
            return 0
        s = self.summary()
        self.message_port_pub(pmt.intern("metrics"), c.make_dict(s))
        if self.log_every and (start + done) // self.log_every > start // self.log_every:
            self._log(s)
        return done
